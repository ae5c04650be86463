"""`make bench`: measurements of the running system, printed as a table and kept in docs/BENCHMARKS.md.

`TOLLGATE_BENCH_QUICK=1 make bench` (or `python -m bench --quick`) runs every phase at tiny sizes and prints
the same tables without writing docs/BENCHMARKS.md: what a test runs to keep the command working.
"""
from __future__ import annotations

import os
import sys

if "--quick" in sys.argv[1:]:
    os.environ["TOLLGATE_BENCH_QUICK"] = "1"
QUICK = os.environ.get("TOLLGATE_BENCH_QUICK", "") not in ("", "0")


def sized(full, quick):
    """A phase's size: `full` in a real run, `quick` in the quick mode (its numbers mean nothing)."""
    return quick if QUICK else full
