"""Latency histograms with log-spaced buckets: mergeable by adding counts, percentiles within one bucket."""
from __future__ import annotations

import math
from typing import Mapping

BUCKETS_PER_DOUBLING = 4  # bucket bounds grow by 2**0.25 ≈ 19 %


def bucket_of(latency_ms: float) -> int:
    """Bucket i holds latencies in [lower(i), upper(i)); bucket 0 holds everything under 1 ms."""
    if latency_ms < 1:
        return 0
    return int(math.floor(math.log2(latency_ms) * BUCKETS_PER_DOUBLING)) + 1


def lower(index: int) -> float:
    return 0.0 if index == 0 else 2 ** ((index - 1) / BUCKETS_PER_DOUBLING)


def upper(index: int) -> float:
    return 2 ** (index / BUCKETS_PER_DOUBLING)


def percentile(counts: Mapping[int, int | float], q: float) -> float | None:
    """The q-th percentile (0-100), as the upper bound of the bucket where the rank falls; None if empty."""
    total = sum(counts.values())
    if total <= 0:
        return None
    rank = max(1, math.ceil(q / 100 * total))
    running = 0
    for index in sorted(counts):
        running += counts[index]
        if running >= rank:
            return round(upper(index), 1)
    return round(upper(max(counts)), 1)
