"""Memory of a long stream: 20 MB in 2 KB events through the gateway, read incrementally by the client,
against the serving process's resident memory (the stack's; in AWS the proxy function's). Then
`over_time`: `make run`'s stack idle, under calls and under exports, and whether its memory levels off.

Before the stream the process's peak RSS is reset (`/proc/<pid>/clear_refs`, 5), so VmHWM afterwards
is the peak during the stream; VmRSS is also sampled every 5 ms as a check. Baseline: VmRSS once a
small stream has gone through.
"""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench import sized
from bench.stack import ROOT, RunningStack
from bench.stream import BODY
from bench.upstream import Upstream
from local.stack import DEFAULT_ADMIN_KEY, free_port

STREAM_MB = sized(20, 1)
EVENT_BYTES = 2048
TARGET_MB = 5


def status_kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def stream_through(client: httpx.Client) -> int:
    """Bytes of one streamed call, read chunk by chunk as they come and dropped."""
    size = 0
    with client.stream("POST", "/openai/v1/chat/completions", content=BODY) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            size += len(chunk)
    return size


def measure(stack: RunningStack, upstream: Upstream) -> list[tuple[str, str, str, str]]:
    pid = stack.process.pid
    client = httpx.Client(base_url=stack.api, timeout=120, headers={"Authorization": f"Bearer {stack.demo_key}",
                                                                     "Content-Type": "application/json"})
    stream_through(client)
    upstream.script(filler_events=STREAM_MB * 1_000_000 // EVENT_BYTES, filler_event_bytes=EVENT_BYTES)
    before = status_kb(pid, "VmRSS")
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    sampled, done = [before], threading.Event()

    def sample() -> None:
        while not done.wait(0.005):
            sampled.append(status_kb(pid, "VmRSS"))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    size = stream_through(client)
    seconds = time.perf_counter() - started
    done.set()
    sampler.join()
    peak, after = max(status_kb(pid, "VmHWM"), *sampled), status_kb(pid, "VmRSS")
    upstream.script()
    grew = (peak - before) / 1024
    return [
        (f"server RSS while {size / 1e6:.0f} MB stream ({EVENT_BYTES} B events) passes, peak over before",
         f"+{grew:.1f} MB (of {before / 1024:.0f} MB; +{(after - before) / 1024:.1f} MB after)",
         f"< {TARGET_MB} MB", "met" if grew < TARGET_MB else "MISSED"),
        ("stream throughput through the gateway", f"{size / 1e6 / seconds:.0f} MB/s", "-", ""),
    ]


# --- the stack's memory over time ---------------------------------------------------------------------------
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", sized("120", "1")))  # the probe idled 10 minutes
CALLS = sized(1000, 10)
SUMMARY_EVERY = 5  # a dashboard summary between calls, as an open dashboard asks
EXPORTS = sized(30, 2)
SAMPLES = sized(12, 3)  # per phase
NOISE_MB = 2.0  # growth this small in a third of a phase is allocator noise, not a trend
STOP_TARGET_S = 10


@dataclass
class Phase:
    name: str
    rss_mb: list[float] = field(default_factory=list)

    def thirds(self) -> tuple[float, float]:
        """Growth over the first and the last third of the phase, in MB."""
        n = len(self.rss_mb) - 1
        return self.rss_mb[n // 3] - self.rss_mb[0], self.rss_mb[-1] - self.rss_mb[n - n // 3]

    def levels_off(self) -> bool:
        first, last = self.thirds()
        return last <= max(NOISE_MB, first / 2)

    def row(self) -> tuple[str, str, str, str]:
        first, last = self.thirds()
        return (f"stack RSS over time, {self.name}", f"{self.rss_mb[0]:.0f} → {self.rss_mb[-1]:.0f} MB (+{first:.1f} MB in "
                f"the first third, +{last:.1f} MB in the last)", f"levels off (last third ≤ half the first, or "
                f"≤ {NOISE_MB:.0f} MB)", "met" if self.levels_off() else "MISSED")


def over_time() -> list[tuple[str, str, str, str]]:
    """`make run`'s stack (its own process, built-in mock upstream, pump, scheduler and snapshots on): RSS
    while idle, over CALLS calls with a summary every SUMMARY_EVERY, over EXPORTS exports of 1–2 MB, and
    the seconds SIGTERM takes to stop it."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        env.update(TOLLGATE_PORT=str(port), TOLLGATE_DATA_DIR=data_dir)
        log = Path(data_dir) / "stack.log"
        process = subprocess.Popen([sys.executable, "-m", "local.stack"], cwd=ROOT, env=env,
                                   stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            phases, stop_s = _phases(process, port, log)
        finally:
            if process.poll() is None:
                process.kill()
    return [phase.row() for phase in phases] + [
        ("stack stop on SIGTERM after those phases (finish in-flight calls, fold, evaluate, snapshot)",
         f"{stop_s:.1f} s", f"< {STOP_TARGET_S} s", "met" if stop_s < STOP_TARGET_S else "MISSED")]


def _phases(process: subprocess.Popen, port: int, log: Path) -> tuple[list[Phase], float]:
    deadline = time.monotonic() + 60
    while "ready in" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the stack did not start:\n{log.read_text()}")
        time.sleep(0.1)
    key = re.search(r"Demo key\s+(\S+)", log.read_text()).group(1)
    url = f"http://127.0.0.1:{port}"
    gateway = httpx.Client(base_url=url, timeout=120, headers={"Authorization": f"Bearer {key}"})
    dashboard = httpx.Client(base_url=url, timeout=120, headers={"X-Dashboard-Key": DEFAULT_ADMIN_KEY})
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "memory " * 40}]}

    def rss() -> float:
        return status_kb(process.pid, "VmRSS") / 1024

    def run(name: str, count: int, step) -> Phase:
        phase = Phase(name, [rss()])
        for i in range(count):
            step(i)
            if (i + 1) % max(1, count // SAMPLES) == 0:
                phase.rss_mb.append(rss())
        return phase

    print(f"measuring the stack's memory: idle {IDLE_SECONDS:.0f} s, {CALLS} calls, {EXPORTS} exports…",
          file=sys.stderr, flush=True)
    idle = run(f"idle {IDLE_SECONDS:.0f} s", SAMPLES, lambda i: time.sleep(IDLE_SECONDS / SAMPLES))

    def call(i: int) -> None:
        gateway.post("/openai/v1/chat/completions", json=body).raise_for_status()
        if i % SUMMARY_EVERY == 0:
            dashboard.get("/api/summary", params={"hours": 24}).raise_for_status()

    calls = run(f"{CALLS} calls and {CALLS // SUMMARY_EVERY} summaries", CALLS, call)
    sizes: list[int] = []

    def export(i: int) -> None:
        """One export, inline or (read too slowly for one answer) a job, waited for: one at a time."""
        answer = dashboard.get("/api/export", params={"format": "json", "hours": 24})
        if answer.status_code >= 500:  # counted: moto, answering in the same process, timed out under the read
            sizes.append(0)
            return
        answer.raise_for_status()
        if answer.status_code == 200:
            sizes.append(len(answer.content))
            return
        status = f"/api/exports/{answer.json()['export_id']}"
        while (job := dashboard.get(status).raise_for_status().json())["state"] in ("queued", "running"):
            time.sleep(0.5)
        sizes.append(job["progress"]["bytes_written"] if job["state"] == "ready" else 0)

    exports = run(f"{EXPORTS} exports", EXPORTS, export)
    exports.name += f" of up to {max(sizes) / 1e6:.1f} MB ({sizes.count(0)} failed)"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    return [idle, calls, exports], time.monotonic() - started
