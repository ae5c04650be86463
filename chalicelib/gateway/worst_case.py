"""The most a call can cost before it is sent: what a hard budget holds and a tokens-per-minute limit counts.

Pure but for the price lookup. Input: the request body's bytes, an upper bound on its tokens (every tokenizer the
providers use is byte-level BPE, where a token covers at least one byte; no provider tokenizer is available
offline here). Output: the body's own cap (`max_tokens`, `max_output_tokens`, `max_completion_tokens`, Gemini's
`generationConfig.maxOutputTokens`, Bedrock's `inferenceConfig.maxTokens`) times the choices asked for (`n`),
else the model's context window as genai-prices knows it, else DEFAULT_OUTPUT_TOKENS. Priced at the model's
prices, every input token at the dearer of the input and the cache-write price (cache reads are cheaper still).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from chalicelib.gateway.tokens import TOKENS_MAX, TokenUsage

DEFAULT_OUTPUT_TOKENS = 32_768  # a model genai-prices does not know, asked without an output cap
CHOICES_MAX = 128  # OpenAI's `n` is at most 128


@dataclass(frozen=True)
class WorstCase:
    input_tokens: int
    output_tokens: int

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens


def estimate(endpoint_path: str, body_bytes: bytes, body: dict[str, Any] | None,
             context_window: int | None) -> WorstCase:
    """The most tokens the call can use: its body's bytes in, its output cap (or the model's window) out."""
    body = body if isinstance(body, dict) else {}
    if "embed" in endpoint_path.lower():  # embeddings answer vectors, not tokens
        return WorstCase(len(body_bytes), 0)
    cap = output_cap(body)
    if cap is None:
        cap = context_window if context_window else DEFAULT_OUTPUT_TOKENS
    return WorstCase(len(body_bytes), cap * _choices(body))


def output_cap(body: dict[str, Any]) -> int | None:
    """The output tokens the caller capped the call at, if it did (in any of the wire formats' fields)."""
    nested = [body]
    for section in ("generationConfig", "inferenceConfig"):
        if isinstance(body.get(section), dict):
            nested.append(body[section])
    for holder in nested:
        for name in ("max_tokens", "max_output_tokens", "max_completion_tokens", "maxOutputTokens", "maxTokens"):
            value = holder.get(name)
            if type(value) is int and 0 <= value < TOKENS_MAX:
                return value
    return None


def _choices(body: dict[str, Any]) -> int:
    config = body.get("generationConfig")
    value = body.get("n", config.get("candidateCount") if isinstance(config, dict) else None)
    return value if type(value) is int and 1 <= value <= CHOICES_MAX else 1


def cost(provider: str, model: str | None, worst: WorstCase, at: datetime,
         service_tier: Any = None) -> Decimal | None:
    """The worst case in USD at the model's prices (None: the model has no price, so its calls cost nothing)."""
    from chalicelib.gateway import pricing  # genai-prices: loaded only for a call under a hard budget

    tier = service_tier if isinstance(service_tier, str) else None
    plain = TokenUsage(input_tokens=worst.input_tokens, output_tokens=worst.output_tokens).stated(tier)
    written = TokenUsage(cache_write_tokens=worst.input_tokens, cache_write_1h_tokens=worst.input_tokens,
                         output_tokens=worst.output_tokens).stated(tier)
    prices = [pricing.price_call(provider, model, usage, at).cost_usd for usage in (plain, written)]
    known = [p for p in prices if p is not None]
    return max(known) if known else None


def context_window(provider: str, model: str | None) -> int | None:
    """The model's context window as genai-prices knows it: no answer can be longer."""
    if not model:
        return None
    from genai_prices import Usage, calc_price

    try:
        return calc_price(Usage(), model, provider_id=provider).model.context_window
    except (LookupError, ValueError):
        return None
