"""`make bench`: measurements of the running system, printed as a table and kept in docs/BENCHMARKS.md."""
