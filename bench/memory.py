"""Memory of a long stream: 20 MB in 2 KB events through the gateway, read incrementally by the client,
against the serving process's resident memory (the stack's; in AWS the proxy function's).

Before the stream the process's peak RSS is reset (`/proc/<pid>/clear_refs`, 5), so VmHWM afterwards
is the peak during the stream; VmRSS is also sampled every 5 ms as a check. Baseline: VmRSS once a
small stream has gone through.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from bench.stack import RunningStack
from bench.stream import BODY
from bench.upstream import Upstream

STREAM_MB = 20
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
