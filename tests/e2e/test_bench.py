"""`make bench` as the README gives it, in its quick mode (TOLLGATE_BENCH_QUICK=1: every phase at tiny sizes):
it runs to the end and prints every table with its rows. Timings are never asserted, only that they are there."""
import os
import subprocess

from tests.conftest import ROOT

TABLE_ROWS = (  # a row of each table the full run writes to docs/BENCHMARKS.md, by its first cell
    "| sequential | p50 |", "| concurrent (8 workers) | p95 |", "| streamed, to the first event",
    "| streamed via Gemini, to the first event | p50 |", "| streamed via Bedrock, to the first event | p50 |",
    "| AWS requests before the first byte, caches warm |", "| stack RSS over time, idle",
    "| streamed, a hard-budgeted key against an unbudgeted one, to the first event | p50 |",  # the price of exactness
    "| AWS requests before the first byte, a hard-budgeted key, caches warm |",
    "| stack stop on SIGTERM", "| 100 |",  # rollup writes per call, batch size 100
    "one proxy process each (the deployed shape) | p95 |",  # the 8-worker rows in the deployed shape (2 in quick)
    "| cold import of app.py", "| proxy function cold call from the zip", "| and the first proxied call after ready",
    "| `/api/summary?hours=24` |", "| `/api/usage/users?days=7&account=acct-0003` |",
    "| 1,000/s | per call, every tier |", "| 10,000/s | per call, every tier |", "| 10,000/s | verdict |",
    "| gpt-4o-mini chat, 2 s (1,000 in / 300 out) |", "| claude-sonnet-4.5 agent turn",  # the cost model
)


def test_make_bench_quick_prints_every_table_and_leaves_the_docs_alone():
    docs = ROOT / "docs" / "BENCHMARKS.md"
    before = docs.read_text()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TOLLGATE_", "AWS_", "POWERTOOLS_", "BENCH_"))}
    # -o: the venv running this test is the one to use; never reinstall it from here
    done = subprocess.run(["make", "--no-print-directory", "-o", ".venv/.installed-3.13", "bench"], cwd=ROOT,
                          env={**env, "TOLLGATE_BENCH_QUICK": "1"}, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    missing = [row for row in TABLE_ROWS if row not in done.stdout]
    assert not missing, (missing, done.stdout[-3000:])
    assert "Missed targets, and why:" in done.stdout or "Every target met." in done.stdout
    assert "quick mode (TOLLGATE_BENCH_QUICK): docs/BENCHMARKS.md left as it is" in done.stdout
    assert docs.read_text() == before
