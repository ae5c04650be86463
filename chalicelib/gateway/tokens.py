"""Token usage as explicit, disjoint kinds, read from provider bodies and streams.

Kinds never overlap, so they add up to the tokens billed: `input_tokens` is uncached input
(total input = input + cache_read + cache_write) and `output_tokens` excludes reasoning
(total output = output + reasoning), whatever each provider's own convention. Audio tokens are the part of
the input (or output) that was audio, priced at the audio rate; `web_searches` counts per-request tool calls;
`service_tier` and `speed` are the variant of the price the answer says it was served at.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from genai_prices import Usage

TOKENS_MAX = 10**12  # past any real call: a count this large is a provider's bug or an attack on the bill
PRICE_VARIANT = re.compile(r"[a-z0-9_-]{1,32}")  # a service tier or speed as providers name them ("priority", "fast")


@dataclass(frozen=True)
class TokenUsage:
    input_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    cache_write_1h_tokens: int = 0  # part of cache_write_tokens held for 1 h (Anthropic)
    output_tokens: int = 0
    reasoning_tokens: int = 0
    input_audio_tokens: int = 0  # part of the total input (input + cache kinds) that was audio
    output_audio_tokens: int = 0  # part of output_tokens that was audio
    web_searches: int = 0  # server-side web searches the provider ran for the call (billed per 1,000)
    input_image_tokens: int = 0  # part of the total input that was image (GPT image models bill it apart)
    output_image_tokens: int = 0  # part of output_tokens that was image
    images: int = 0  # images generated: the unit of models billed per image (DALL-E)
    image_variant: str | None = None  # what a per-image price depends on: "<size>/<quality>" as asked
    service_tier: str | None = None  # the tier the answer says served it (OpenAI: "default", "flex", "priority")
    speed: str | None = None  # Anthropic's `usage.speed` ("standard", "fast")

    def counts(self) -> dict[str, Any]:
        """The counted kinds (tokens, searches), without the price variant."""
        return {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("service_tier", "speed", "image_variant")}

    def plausible(self) -> bool:
        """Every count a whole number in [0, 10^12), audio no more than the tokens it is part of: anything else
        is logged as `usage_invalid`, unpriced."""
        return (all(type(v) is int and 0 <= v < TOKENS_MAX for v in self.counts().values())
                and self.input_audio_tokens <= self.total_input_tokens
                and self.output_audio_tokens <= self.output_tokens
                and self.input_image_tokens <= self.total_input_tokens
                and self.output_image_tokens <= self.output_tokens)

    def price_context(self) -> dict[str, str]:
        """genai-prices' price context: which variant of the model's prices applies (a tier, a speed)."""
        return {k: v for k, v in (("service_tier", self.service_tier), ("speed", self.speed)) if v}

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
            input_audio_tokens=usage.input_audio_tokens or 0,
            output_audio_tokens=usage.output_audio_tokens or 0,
            web_searches=usage.web_searches or 0,
            input_image_tokens=usage.input_image_tokens or 0,
            output_image_tokens=usage.output_image_tokens or 0,
        )

    def stated(self, service_tier: Any = None, speed: Any = None) -> "TokenUsage":
        """This usage at the price variant the answer states; a value that is no variant name is left out."""
        return replace(self, service_tier=_variant(service_tier), speed=_variant(speed))

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
            "input_audio_tokens": self.input_audio_tokens,
            "output_audio_tokens": self.output_audio_tokens,
            "web_searches": self.web_searches,
            "input_image_tokens": self.input_image_tokens,
            "output_image_tokens": self.output_image_tokens,
        }
        if self.cache_write_1h_tokens:
            optional["cache_write_1h_tokens"] = self.cache_write_1h_tokens
            optional["cache_write_5m_tokens"] = self.cache_write_tokens - self.cache_write_1h_tokens
        values.update({k: v for k, v in optional.items() if v})
        from genai_prices import Usage  # here: app.py imports this module (reprice), and only pricing needs it

        return Usage(**values)


def _variant(value: Any) -> str | None:
    return value if isinstance(value, str) and PRICE_VARIANT.fullmatch(value) else None
