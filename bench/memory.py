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

from bench import QUICK, sized
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
# the probe idled 10 minutes (BENCH_IDLE_SECONDS=600); 3 keep make bench within its 15, 1 s in the quick mode
IDLE_SECONDS = float(os.environ.get("BENCH_IDLE_SECONDS", sized("180", "1")))
CALLS = sized(1000, 10)
SUMMARY_EVERY = 5  # a dashboard summary between calls, as an open dashboard asks
EXPORTS = sized(30, 2)
SAMPLES = sized(12, 3)  # per phase
NOISE_MB = 2.0  # growth this small in a third of a phase is allocator noise, not a trend
STOP_TARGET_S = 10
# BENCH_TRACEMALLOC=<frames>: the stack traces its allocations (local/memory_probe.py) and writes what grew, by owner,
# after its start and after each phase; the dumps are copied to BENCH_TRACE_DIR (default: a new temporary directory)
TRACE_FRAMES = int(os.environ.get("BENCH_TRACEMALLOC") or 0)


@dataclass
class Phase:
    name: str
    rss_mb: list[float] = field(default_factory=list)
    count: int = 0  # calls or exports made, for the growth per one
    unit: str = ""
    data_kb: float = 0.0  # what moto's tables grew by, as DynamoDB JSON (the stack's own snapshot files)

    def thirds(self) -> tuple[float, float]:
        """Growth over the first and the last third of the phase, in MB."""
        n = len(self.rss_mb) - 1
        return self.rss_mb[n // 3] - self.rss_mb[0], self.rss_mb[-1] - self.rss_mb[n - n // 3]

    def levels_off(self) -> bool:
        first, last = self.thirds()
        return last <= max(NOISE_MB, first / 2)

    def row(self) -> tuple[str, str, str, str]:
        first, last = self.thirds()
        grew_kb = (self.rss_mb[-1] - self.rss_mb[0]) * 1024
        each = (f"; {grew_kb / self.count:+.0f} KB per {self.unit}, moto's tables {self.data_kb / self.count:+.1f} KB per "
                f"{self.unit} as DynamoDB JSON" if self.count else "")
        curve = " ".join(f"{mb:.0f}" for mb in self.rss_mb)
        return (f"stack RSS over time, {self.name}", f"{self.rss_mb[0]:.0f} → {self.rss_mb[-1]:.0f} MB (+{first:.1f} MB in "
                f"the first third, +{last:.1f} MB in the last{each}; MB sampled: {curve})",
                f"levels off (last third ≤ half the first, or ≤ {NOISE_MB:.0f} MB)",
                "met" if self.levels_off() else "MISSED")


def over_time(after_idle=lambda: None) -> list[tuple[str, str, str, str]]:
    """`make run`'s stack (its own process, built-in mock upstream, pump, scheduler and snapshots on): RSS
    while idle, over CALLS calls with a summary every SUMMARY_EVERY, over EXPORTS exports of 1–2 MB, and
    the seconds SIGTERM takes to stop it. `after_idle` runs once the idle phase is sampled: the bench's other
    processes (the JSON API's loads) use the idle cores until then, and none of them run during the calls."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
        env.update(TOLLGATE_PORT=str(port), TOLLGATE_DATA_DIR=data_dir)
        if TRACE_FRAMES:
            env["TOLLGATE_TRACEMALLOC"] = str(TRACE_FRAMES)
        log = Path(data_dir) / "stack.log"
        process = subprocess.Popen([sys.executable, "-m", "local.stack"], cwd=ROOT, env=env,
                                   stdout=log.open("w"), stderr=subprocess.STDOUT)
        try:
            phases, stop_s = _phases(process, port, log, after_idle)
        finally:
            if process.poll() is None:
                process.kill()
    return [phase.row() for phase in phases] + [
        ("stack stop on SIGTERM after those phases (finish in-flight calls, fold, evaluate, snapshot)",
         f"{stop_s:.1f} s", f"< {STOP_TARGET_S} s", "met" if stop_s < STOP_TARGET_S else "MISSED")]


def _phases(process: subprocess.Popen, port: int, log: Path, after_idle) -> tuple[list[Phase], float]:
    deadline = time.monotonic() + 60
    while "ready in" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the stack did not start:\n{log.read_text()}")
        time.sleep(0.1)
    key = re.search(r"Demo key\s+(\S+)", log.read_text()).group(1)
    url = f"http://127.0.0.1:{port}"
    gateway = httpx.Client(base_url=url, timeout=600 if TRACE_FRAMES else 120,
                          headers={"Authorization": f"Bearer {key}"})
    dashboard = httpx.Client(base_url=url, timeout=gateway.timeout, headers={"X-Dashboard-Key": DEFAULT_ADMIN_KEY})
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "memory " * 40}]}

    def rss() -> float:
        return status_kb(process.pid, "VmRSS") / 1024

    def run(name: str, count: int, step, unit: str = "") -> Phase:
        phase, data_kb = Phase(name, [rss()], count if unit else 0, unit), tables_kb(log.parent)
        for i in range(count):
            step(i)
            if (i + 1) % max(1, count // SAMPLES) == 0:
                phase.rss_mb.append(rss())
        phase.data_kb = tables_kb(log.parent, fresh=not QUICK) - data_kb
        traced(process, log.parent, name)
        return phase

    traced(process, log.parent, "started")
    print(f"measuring the stack's memory: idle {IDLE_SECONDS:.0f} s, {CALLS} calls, {EXPORTS} exports…",
          file=sys.stderr, flush=True)
    idle = run(f"idle {IDLE_SECONDS:.0f} s", SAMPLES, lambda i: time.sleep(IDLE_SECONDS / SAMPLES))
    after_idle()

    def call(i: int) -> None:
        gateway.post("/openai/v1/chat/completions", json=body).raise_for_status()
        if i % SUMMARY_EVERY == 0:
            dashboard.get("/api/summary", params={"hours": 24}).raise_for_status()

    calls = run(f"{CALLS} calls and {CALLS // SUMMARY_EVERY} summaries", CALLS, call, "call")
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

    exports = run(f"{EXPORTS} exports", EXPORTS, export, "export")
    exports.name += f" of up to {max(sizes) / 1e6:.1f} MB ({sizes.count(0)} failed)"
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=300)
    return [idle, calls, exports], time.monotonic() - started


def tables_kb(data_dir: Path, fresh: bool = False) -> float:
    """The stack's snapshot of moto's tables (local/persist.py, every 10 s), in KB; `fresh`: one written from now."""
    files = [f for f in data_dir.glob("tollgate-*.json")]
    if fresh:
        asked = time.time()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (files and min(f.stat().st_mtime for f in files) > asked):
            time.sleep(0.5)
            files = [f for f in data_dir.glob("tollgate-*.json")]
    return sum(f.stat().st_size for f in files) / 1024


def traced(process: subprocess.Popen, data_dir: Path, name: str) -> None:
    """With BENCH_TRACEMALLOC: ask the stack for a dump of what grew (SIGUSR2), wait for it, keep and print it."""
    if not TRACE_FRAMES:
        return
    global _dumps, _trace_dir
    _dumps += 1
    _trace_dir = _trace_dir or Path(os.environ.get("BENCH_TRACE_DIR") or tempfile.mkdtemp(prefix="tollgate-memory-"))
    dump = data_dir / "memory" / f"{_dumps}.txt"
    process.send_signal(signal.SIGUSR2)
    while not dump.exists():
        time.sleep(0.5)
    kept = _trace_dir / f"{_dumps}-{re.sub(r'[^a-z0-9]+', '-', name.lower()).strip('-')}.txt"
    _trace_dir.mkdir(parents=True, exist_ok=True)
    kept.write_text(f"after: {name}\n" + dump.read_text())
    print(kept.read_text(), file=sys.stderr, flush=True)


_dumps, _trace_dir = 0, None
