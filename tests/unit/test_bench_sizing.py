"""The proxy's memory arithmetic (bench/sizing.py): Lambda's CPU share by memory, and the smallest size chosen."""
from decimal import Decimal

from bench import sizing


def test_cpu_share_grows_with_memory_up_to_one_vcpu():
    assert sizing.share(1769) == 1 and sizing.share(3538) == 1
    assert sizing.share(512) == Decimal(512) / 1769


def test_the_smallest_size_that_fits_and_meets_both_targets_is_chosen():
    # 80 MB peak → 140 MB with headroom and the adapter: 128 MB cannot hold it
    options = sizing.sizes(Decimal(80), cold_call_ms=Decimal(100), warm_cpu_ms=Decimal("0.5"))
    assert [s.memory_mb for s in options if not s.fits] == [128]
    chosen = sizing.choose(options)
    # 256 MB: 0.145 vCPU → cold call 100 × 1769/256 ≈ 691 ms > 400; 384 MB: ≈ 461 > 400; 512 MB: ≈ 345 ms, warm 1.7
    assert chosen.memory_mb == 512
    assert chosen.cold_call_ms == Decimal(100) * 1769 / 512 and chosen.warm_cpu_ms < 2
    # duration cost of a 2 s call at 512 MB: 0.5 GB × (2 s + the CPU) × the GB-second price, per million
    assert chosen.usd_per_million_2s == Decimal("0.5") * (2 + chosen.warm_cpu_ms / 1000) * sizing.GB_SECOND_ARM * 10**6


def test_no_size_meets_a_cold_call_that_is_slow_even_on_a_full_vcpu():
    options = sizing.sizes(Decimal(80), cold_call_ms=Decimal(500), warm_cpu_ms=Decimal(1))
    assert sizing.choose(options) is None
    rows = sizing.rows(80, 500, 1, configured_mb=512)
    assert rows[-1][-1] == "MISSED" and any("(configured)" in row[0] for row in rows)
