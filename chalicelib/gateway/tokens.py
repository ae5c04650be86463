"""Token usage as explicit, disjoint kinds, read from provider bodies and streams.

Kinds never overlap, so they add up to the tokens billed: `input_tokens` is uncached input
(total input = input + cache_read + cache_write) and `output_tokens` excludes reasoning
(total output = output + reasoning), whatever each provider's own convention.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genai_prices import Usage

TOKENS_MAX = 10**12  # past any real call: a count this large is a provider's bug or an attack on the bill


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # part of cache_write_tokens held for 1 h (Anthropic)
    output_tokens: int = 0
    reasoning_tokens: int = 0

    def plausible(self) -> bool:
        """Every kind a whole number in [0, 10^12): anything else is logged as `usage_invalid`, unpriced."""
        return all(type(v) is int and 0 <= v < TOKENS_MAX for v in vars(self).values())

    @property
    def total_input_tokens(self) -> int:
        return self.input_tokens + self.cache_read_tokens + self.cache_write_tokens

    @property
    def total_output_tokens(self) -> int:
        return self.output_tokens + self.reasoning_tokens

    @classmethod
    def unreadable(cls) -> "TokenUsage":
        """Usage the provider sent that cannot be read as counts (negative, not numbers): never plausible."""
        return cls(input_tokens=-1)

    @classmethod
    def from_genai(cls, usage: Usage) -> "TokenUsage":
        """genai-prices counts cache tokens inside input and reasoning inside output: split them out."""
        cache_read = usage.cache_read_tokens or 0
        cache_write = usage.cache_write_tokens or 0
        reasoning = usage.output_reasoning_tokens or 0
        return cls(
            input_tokens=(usage.input_tokens or 0) - cache_read - cache_write,
            cache_read_tokens=cache_read,
            cache_write_tokens=cache_write,
            cache_write_1h_tokens=usage.cache_write_1h_tokens or 0,
            output_tokens=(usage.output_tokens or 0) - reasoning,
            reasoning_tokens=reasoning,
        )

    def to_genai(self) -> Usage:
        """The genai-prices view: totals with cache and reasoning as subsets."""
        values: dict[str, int] = {
            "input_tokens": self.total_input_tokens,
            "output_tokens": self.total_output_tokens,
        }
        optional = {
            "cache_read_tokens": self.cache_read_tokens,
            "cache_write_tokens": self.cache_write_tokens,
            "output_reasoning_tokens": self.reasoning_tokens,
        }
        if self.cache_write_1h_tokens:
            optional["cache_write_1h_tokens"] = self.cache_write_1h_tokens
            optional["cache_write_5m_tokens"] = self.cache_write_tokens - self.cache_write_1h_tokens
        values.update({k: v for k, v in optional.items() if v})
        from genai_prices import Usage  # here: app.py imports this module (reprice), and only pricing needs it

        return Usage(**values)
