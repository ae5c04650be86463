"""The local stack's memory (issue #25 item 11), over real HTTP with the official SDK: after calls and exports, inline
and written as jobs, SIGTERM stops it within seconds (it once took 71 s), and with TOLLGATE_TRACEMALLOC a SIGUSR2
writes what grew, by owner (local/memory_probe.py). Counted and bounded, never a timing of our code's speed."""
import signal
import time

import httpx
import openai

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import RunningStack

CALLS = 20
STOP_SECONDS = 30  # the stack took 71 s; a stop that finishes its jobs takes a few here, more when loaded


def test_sigterm_after_exports_stops_in_seconds_and_a_dump_names_the_owners(tmp_path):
    # exports over 20 KB are jobs (a thread writing to S3), so both kinds run before the stop
    stack = RunningStack({"TOLLGATE_TRACEMALLOC": "8", "TOLLGATE_EXPORT_INLINE_BYTES": "20000"},
                         tmp_path / "data").start()
    try:
        client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=stack.banner_value("Demo key"))
        for n in range(CALLS):
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": f"hi {n}"}])
        dashboard = {"X-Dashboard-Key": ADMIN_KEY}
        inline = httpx.get(f"{stack.url}/api/export", params={"format": "csv", "hours": 1, "model": "gpt-4o-mini",
                                                               "user": "nobody"}, headers=dashboard, timeout=60)
        assert inline.status_code == 200 and inline.text.startswith("call_id,"), inline.text[:300]
        job = httpx.get(f"{stack.url}/api/export", params={"format": "json", "hours": 1}, headers=dashboard, timeout=60)
        assert job.status_code in (200, 202), job.text  # 202 once the calls reached the log
        stack.process.send_signal(signal.SIGUSR2)
        dump = tmp_path / "data" / "memory" / "1.txt"
        deadline = time.monotonic() + 120
        while not dump.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        text = dump.read_text()
        assert text.startswith("dump 1: RSS ") and "growth by owner (KB): " in text and "moto holds" in text
        assert "table tollgate-dev-calls: " in text
    finally:
        started = time.monotonic()
        output = stack.stop()
        took = time.monotonic() - started
    assert stack.process.returncode == 0, output[-2000:]
    assert took < STOP_SECONDS, (took, output[-2000:])
    assert "stopped in" in output
