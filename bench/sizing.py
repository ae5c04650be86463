"""The proxy's Lambda memory from measurement: the smallest size that holds its peak RSS with headroom and, at the
CPU Lambda gives that size, keeps a cold call and the warm CPU per call within their targets. Pure arithmetic."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

FULL_VCPU_MB = 1769  # Lambda gives one full vCPU at 1,769 MB, and CPU in proportion below it
CANDIDATES_MB = (128, 256, 384, 512, 768, 1024, 1536, 1769)
HEADROOM = Decimal("1.5")  # peak RSS × this, plus the adapter extension, must fit: a bigger body, a longer stream
ADAPTER_MB = 20  # the Lambda Web Adapter runs beside the proxy in the same memory
COLD_CALL_TARGET_MS = 400  # process start to the first proxied answer, upstream excluded (issue #30)
WARM_CPU_TARGET_MS = 2  # the proxy's own CPU a warm call may add (the added-latency target is floor + 2 ms)
GB_SECOND_ARM = Decimal("0.0000133334")


@dataclass(frozen=True)
class Size:
    memory_mb: int
    fits: bool  # peak RSS × headroom + the adapter fit
    cold_call_ms: Decimal  # measured cold call (ready + first call) scaled to this size's CPU share
    warm_cpu_ms: Decimal
    usd_per_million_2s: Decimal  # duration cost of a 2 s call (the wait, plus the CPU)

    @property
    def meets(self) -> bool:
        return self.fits and self.cold_call_ms <= COLD_CALL_TARGET_MS and self.warm_cpu_ms <= WARM_CPU_TARGET_MS


def share(memory_mb: int) -> Decimal:
    """The fraction of a vCPU Lambda gives `memory_mb` (a process of one thread uses at most one)."""
    return min(Decimal(1), Decimal(memory_mb) / FULL_VCPU_MB)


def sizes(peak_rss_mb: Decimal, cold_call_ms: Decimal, warm_cpu_ms: Decimal) -> list[Size]:
    """Each candidate size, from what one full core measured: CPU-bound times stretch by 1 ÷ share (an upper
    bound for the cold call, part of which waits on I/O)."""
    out = []
    for memory in CANDIDATES_MB:
        stretch = 1 / share(memory)
        warm = warm_cpu_ms * stretch
        seconds = 2 + warm / 1000
        out.append(Size(memory, peak_rss_mb * HEADROOM + ADAPTER_MB <= memory, cold_call_ms * stretch, warm,
                        Decimal(memory) / 1024 * seconds * GB_SECOND_ARM * 10**6))
    return out


def choose(options: list[Size]) -> Size | None:
    """The smallest size that meets every target, or None (then the rows say which target no size meets)."""
    return next((s for s in options if s.meets), None)


def rows(peak_rss_mb: float, cold_call_ms: float, warm_cpu_ms: float, configured_mb: int) -> list[tuple[str, ...]]:
    options = sizes(Decimal(str(round(peak_rss_mb, 1))), Decimal(str(round(cold_call_ms))),
                    Decimal(str(round(warm_cpu_ms, 2))))
    chosen = choose(options)
    out = []
    for s in options:
        mark = " (configured)" if s.memory_mb == configured_mb else ""
        out.append((f"proxy at {s.memory_mb} MB{mark}: {share(s.memory_mb):.2f} vCPU",
                    f"holds peak × {HEADROOM} + adapter: {'yes' if s.fits else 'no'}; "
                    f"cold call ~{s.cold_call_ms:.0f} ms; "
                    f"CPU a warm call ~{s.warm_cpu_ms:.1f} ms; ${s.usd_per_million_2s:.2f} per million 2 s calls",
                    f"≤ {COLD_CALL_TARGET_MS} ms, ≤ {WARM_CPU_TARGET_MS} ms",
                    "chosen" if s is chosen else ("met" if s.meets else "")))
    if chosen is None:
        fitting = [s for s in options if s.fits]
        out.append(("proxy memory: no size meets both CPU targets on this machine's numbers",
                    f"the smallest that fits is {fitting[0].memory_mb if fitting else '-'} MB", "-", "MISSED"))
    return out
