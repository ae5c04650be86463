"""The golden set (#26): 49 calls, each answer priced by hand from the providers' published per-million-token
prices and compared, exactly, with what Tollgate reads and prices.

Each case is the provider's answer as JSON (read as the proxy reads it: `upstream_json`, fractions as Decimal,
then the real adapter) and, where the provider streams, the same answer as SSE fed to the real adapter's stream
meter in random pieces (three seeds: mid-line, mid-JSON, one byte or a hundred). The expected USD is the
published rates times the counts, written out below; nothing is computed by the code under test. OpenRouter's
stated `usage.cost` is the invoice and is kept to every digit it has (21 significant digits here).

Rates (USD per million tokens; web search $10 per 1,000 searches), as published and as genai-prices 0.2.3
carries them:
- gpt-4o $2.50 in, $1.25 cached, $10 out; gpt-4o-mini $0.15, $0.075, $0.60; gpt-4.1 $2, $0.50, $8;
  gpt-4.1-nano $0.10, $0.025, $0.40; o4-mini $1.10, $0.275, $4.40; gpt-5 standard $1.25 in, $10 out, flex
  $0.625 / $5, priority $2.50 / $20; gpt-audio $2.50 text in, $10 text out, $32 audio in, $64 audio out.
- text-embedding-3-small $0.02, text-embedding-3-large $0.13, text-embedding-ada-002 $0.10.
- claude-sonnet-4-5 (and Sonnet 4, by the shipped override) $3 in, $0.30 cache read, $3.75 5-minute cache
  write, $6 1-hour cache write, $15 out; over 200K total input (uncached + cache read + cache write) the whole
  call at $6, $0.60, $7.50, $12, $22.50. claude-haiku-4-5 $1, $0.10, $1.25, $2, $5. claude-opus-4-1 $15, $1.50,
  $18.75, $30, $75. claude-opus-5-5 $4 in, $20 out; fast mode $8 / $40.
- OpenRouter openai/gpt-4o-mini $0.15 / $0.60; google/gemini-2.5-flash $0.30 in, $0.03 cache read, $2.50 out.
"""
from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

import pytest

from chalicelib.gateway.pricing import price_call
from chalicelib.gateway.providers import get_adapter
from chalicelib.gateway.providers.base import PreparedBody
from chalicelib.gateway.record import upstream_json
from chalicelib.gateway.sse import SseDecoder

AT = datetime(2026, 11, 1, 12, tzinfo=timezone.utc)
M = Decimal("0.000001")  # a token at $1 per million
SEARCH = Decimal(10) / 1000  # one web search at $10 per 1,000
SEEDS = (1, 2, 3)


def by_hand(*terms: tuple[int, str], searches: int = 0) -> Decimal:
    """Σ count × published rate per million tokens, plus the searches: the arithmetic each case writes out."""
    return sum((count * Decimal(rate) for count, rate in terms), Decimal(0)) * M + searches * SEARCH


@dataclass(frozen=True)
class Case:
    name: str
    provider: str
    path: str
    answer: dict[str, Any]
    usd: Decimal | None  # by hand; None: no price (the usage is no usage: logged usage_invalid, unpriced)
    golden: str | None  # the same amount, as a literal: the table checks its own arithmetic
    estimate: Decimal | None = None  # our own estimate beside a stated cost (OpenRouter)
    streams: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


# --- The answers ---------------------------------------------------------------------------------------------
def chat(model: str, prompt: int, completion: int, cached: int = 0, reasoning: int = 0, audio_in: int = 0,
         audio_out: int = 0, tier: str | None = None, cost: Decimal | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": audio_in},
        "completion_tokens_details": {"reasoning_tokens": reasoning, "audio_tokens": audio_out}}
    if cost is not None:
        usage["cost"] = cost
    body = {"id": "chatcmpl-golden", "object": "chat.completion", "created": 1764700000, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hello there."},
                         "finish_reason": "stop"}], "usage": usage}
    return body | ({"service_tier": tier} if tier else {})


def responses(model: str, tokens_in: int, tokens_out: int, cached: int = 0, reasoning: int = 0, searches: int = 0,
              tier: str | None = None) -> dict[str, Any]:
    output = [{"type": "web_search_call", "id": f"ws_{n}", "status": "completed",
               "action": {"type": "search", "query": "q"}} for n in range(searches)]
    output.append({"type": "message", "id": "msg_1", "status": "completed", "role": "assistant",
                   "content": [{"type": "output_text", "text": "Found it.", "annotations": []}]})
    body = {"id": "resp_golden", "object": "response", "status": "completed", "model": model, "output": output,
            "usage": {"input_tokens": tokens_in, "input_tokens_details": {"cached_tokens": cached},
                      "output_tokens": tokens_out, "output_tokens_details": {"reasoning_tokens": reasoning},
                      "total_tokens": tokens_in + tokens_out}}
    return body | ({"service_tier": tier} if tier else {})


def embedding(model: str, tokens: int) -> dict[str, Any]:
    return {"object": "list", "model": model, "data": [{"object": "embedding", "index": 0, "embedding": [0.1]}],
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def message(model: str, tokens_in: int, tokens_out: int, read: int = 0, write_5m: int = 0, write_1h: int = 0,
            searches: int = 0, speed: str | None = None) -> dict[str, Any]:
    usage: dict[str, Any] = {
        "input_tokens": tokens_in, "cache_creation_input_tokens": write_5m + write_1h, "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": write_5m, "ephemeral_1h_input_tokens": write_1h},
        "output_tokens": tokens_out, "service_tier": "standard"}
    if searches:
        usage["server_tool_use"] = {"web_search_requests": searches}
    if speed:
        usage["speed"] = speed
    return {"id": "msg_golden", "type": "message", "role": "assistant", "model": model,
            "content": [{"type": "text", "text": "Hello!"}], "stop_reason": "end_turn", "stop_sequence": None,
            "usage": usage}


CASES = [
    # --- OpenAI chat ------------------------------------------------------------------------------------------
    # 1,000 × 2.50 + 500 × 10 = 2,500 + 5,000 = 7,500 µ$
    Case("openai gpt-4o", "openai", "chat/completions", chat("gpt-4o-2024-08-06", 1000, 500),
         by_hand((1000, "2.50"), (500, "10")), "0.0075"),
    # 1,200 prompt of which 1,000 cached, 300 out of which 100 reasoning (billed as output, once):
    # 200 × 2.50 + 1,000 × 1.25 + 300 × 10 = 500 + 1,250 + 3,000 = 4,750 µ$
    Case("openai gpt-4o cached and reasoning", "openai", "chat/completions",
         chat("gpt-4o-2024-08-06", 1200, 300, cached=1000, reasoning=100),
         by_hand((200, "2.50"), (1000, "1.25"), (300, "10")), "0.00475"),
    # 19 × 0.15 + 10 × 0.60 = 2.85 + 6 = 8.85 µ$
    Case("openai gpt-4o-mini small", "openai", "chat/completions", chat("gpt-4o-mini-2024-07-18", 19, 10),
         by_hand((19, "0.15"), (10, "0.60")), "0.00000885"),
    # 2,048 prompt, 1,024 cached, 50 out: 1,024 × 0.15 + 1,024 × 0.075 + 50 × 0.60 = 153.6 + 76.8 + 30 = 260.4 µ$
    Case("openai gpt-4o-mini cached", "openai", "chat/completions",
         chat("gpt-4o-mini-2024-07-18", 2048, 50, cached=1024),
         by_hand((1024, "0.15"), (1024, "0.075"), (50, "0.60")), "0.0002604"),
    # 10,000 prompt, 8,000 cached, 1,000 out: 2,000 × 2 + 8,000 × 0.50 + 1,000 × 8 = 4,000 + 4,000 + 8,000 µ$
    Case("openai gpt-4.1 cached", "openai", "chat/completions", chat("gpt-4.1-2025-04-14", 10000, 1000, cached=8000),
         by_hand((2000, "2"), (8000, "0.50"), (1000, "8")), "0.016"),
    # 100,000 × 0.10 + 20,000 × 0.40 = 10,000 + 8,000 = 18,000 µ$
    Case("openai gpt-4.1-nano", "openai", "chat/completions", chat("gpt-4.1-nano", 100000, 20000),
         by_hand((100000, "0.10"), (20000, "0.40")), "0.018"),
    # 1,000 × 1.10 + 1,000 × 4.40 (800 of them reasoning) = 1,100 + 4,400 = 5,500 µ$
    Case("openai o4-mini reasoning", "openai", "chat/completions", chat("o4-mini", 1000, 1000, reasoning=800),
         by_hand((1000, "1.10"), (1000, "4.40")), "0.0055"),
    Case("openai zero tokens", "openai", "chat/completions", chat("gpt-4o-mini", 0, 0), by_hand(), "0"),
    # 999,999,999,999 (the largest count allowed) × 0.15 = 149,999,999,999.85 µ$
    Case("openai huge count", "openai", "chat/completions", chat("gpt-4o-mini", 10**12 - 1, 0),
         by_hand((10**12 - 1, "0.15")), "149999.99999985"),
    # gpt-5, 6,400 in, 2,000 out (1,500 reasoning), at the tier the answer states:
    # default 6,400 × 1.25 + 2,000 × 10 = 8,000 + 20,000; flex × 0.625 / × 5; priority × 2.50 / × 20
    Case("openai gpt-5 default tier", "openai", "chat/completions",
         chat("gpt-5-2025-08-07", 6400, 2000, reasoning=1500, tier="default"),
         by_hand((6400, "1.25"), (2000, "10")), "0.028"),
    Case("openai gpt-5 flex tier", "openai", "chat/completions",
         chat("gpt-5-2025-08-07", 6400, 2000, reasoning=1500, tier="flex"),
         by_hand((6400, "0.625"), (2000, "5")), "0.014"),
    Case("openai gpt-5 priority tier", "openai", "chat/completions",
         chat("gpt-5-2025-08-07", 6400, 2000, reasoning=1500, tier="priority"),
         by_hand((6400, "2.50"), (2000, "20")), "0.056"),
    # gpt-audio: 1,000 in of which 800 audio, 500 out of which 400 audio:
    # 200 × 2.50 + 800 × 32 + 100 × 10 + 400 × 64 = 500 + 25,600 + 1,000 + 25,600 = 52,700 µ$
    Case("openai gpt-audio", "openai", "chat/completions",
         chat("gpt-audio-2025-08-28", 1000, 500, audio_in=800, audio_out=400),
         by_hand((200, "2.50"), (800, "32"), (100, "10"), (400, "64")), "0.0527"),
    # the same call without audio: 1,000 × 2.50 + 500 × 10
    Case("openai gpt-audio text only", "openai", "chat/completions", chat("gpt-audio-2025-08-28", 1000, 500),
         by_hand((1000, "2.50"), (500, "10")), "0.0075"),
    # --- OpenAI Responses -------------------------------------------------------------------------------------
    # 37 × 2.50 + 11 × 10 = 92.5 + 110 = 202.5 µ$
    Case("responses gpt-4o", "openai", "responses", responses("gpt-4o-2024-08-06", 37, 11),
         by_hand((37, "2.50"), (11, "10")), "0.0002025"),
    # 5,000 in of which 4,000 cached, 200 out: 1,000 × 2.50 + 4,000 × 1.25 + 200 × 10 = 2,500 + 5,000 + 2,000 µ$
    Case("responses gpt-4o cached", "openai", "responses", responses("gpt-4o-2024-08-06", 5000, 200, cached=4000),
         by_hand((1000, "2.50"), (4000, "1.25"), (200, "10")), "0.0095"),
    # gpt-5 with two web_search_call items: 28,000 µ$ of tokens + 2 × $0.01
    Case("responses gpt-5 web search", "openai", "responses",
         responses("gpt-5-2025-08-07", 6400, 2000, reasoning=1500, searches=2, tier="default"),
         by_hand((6400, "1.25"), (2000, "10"), searches=2), "0.048"),
    Case("responses gpt-5 priority tier", "openai", "responses",
         responses("gpt-5-2025-08-07", 6400, 2000, reasoning=1500, tier="priority"),
         by_hand((6400, "2.50"), (2000, "20")), "0.056"),
    Case("responses gpt-5 flex tier", "openai", "responses",
         responses("gpt-5-2025-08-07", 6400, 2000, reasoning=1500, tier="flex"),
         by_hand((6400, "0.625"), (2000, "5")), "0.014"),
    # o4-mini, one search: 1,000 × 1.10 + 1,000 × 4.40 = 5,500 µ$ + $0.01
    Case("responses o4-mini web search", "openai", "responses",
         responses("o4-mini", 1000, 1000, reasoning=800, searches=1),
         by_hand((1000, "1.10"), (1000, "4.40"), searches=1), "0.0155"),
    # --- OpenAI embeddings (never streamed) ------------------------------------------------------------------
    # 5 × 0.02 = 0.1 µ$: the tiny cost that once stalled the local rollup
    Case("embeddings 3-small tiny", "openai", "embeddings", embedding("text-embedding-3-small", 5),
         by_hand((5, "0.02")), "0.0000001", streams=False),
    Case("embeddings 3-small a million", "openai", "embeddings", embedding("text-embedding-3-small", 10**6),
         by_hand((10**6, "0.02")), "0.02", streams=False),
    # 8,191 × 0.13 = 1,064.83 µ$
    Case("embeddings 3-large", "openai", "embeddings", embedding("text-embedding-3-large", 8191),
         by_hand((8191, "0.13")), "0.00106483", streams=False),
    Case("embeddings ada-002", "openai", "embeddings", embedding("text-embedding-ada-002", 100),
         by_hand((100, "0.10")), "0.00001", streams=False),
    # --- Anthropic --------------------------------------------------------------------------------------------
    # 25 × 3 + 15 × 15 = 75 + 225 = 300 µ$
    Case("anthropic sonnet-4.5", "anthropic", "messages", message("claude-sonnet-4-5-20250929", 25, 15),
         by_hand((25, "3"), (15, "15")), "0.0003"),
    # 25 × 3 + 1,000 × 0.30 + 15 × 15 = 75 + 300 + 225 = 600 µ$
    Case("anthropic cache read", "anthropic", "messages", message("claude-sonnet-4-5-20250929", 25, 15, read=1000),
         by_hand((25, "3"), (1000, "0.30"), (15, "15")), "0.0006"),
    # 100 × 3 + 2,000 × 3.75 + 50 × 15 = 300 + 7,500 + 750 = 8,550 µ$
    Case("anthropic 5-minute cache write", "anthropic", "messages",
         message("claude-sonnet-4-5-20250929", 100, 50, write_5m=2000),
         by_hand((100, "3"), (2000, "3.75"), (50, "15")), "0.00855"),
    # 100 × 3 + 2,000 × 6 + 50 × 15 = 300 + 12,000 + 750 = 13,050 µ$
    Case("anthropic 1-hour cache write", "anthropic", "messages",
         message("claude-sonnet-4-5-20250929", 100, 50, write_1h=2000),
         by_hand((100, "3"), (2000, "6"), (50, "15")), "0.01305"),
    # 100 × 3 + 2,000 × 0.30 + 300 × 3.75 + 200 × 6 + 300 × 15 = 300 + 600 + 1,125 + 1,200 + 4,500 = 7,725 µ$
    Case("anthropic read, 5-minute and 1-hour writes", "anthropic", "messages",
         message("claude-sonnet-4-5-20250929", 100, 300, read=2000, write_5m=300, write_1h=200),
         by_hand((100, "3"), (2000, "0.30"), (300, "3.75"), (200, "6"), (300, "15")), "0.007725"),
    # 199,999 × 3 + 1,000 × 15 = 599,997 + 15,000 = 614,997 µ$
    Case("anthropic 199,999 in: base", "anthropic", "messages", message("claude-sonnet-4-5", 199_999, 1000),
         by_hand((199_999, "3"), (1000, "15")), "0.614997"),
    # 200,000 × 3 + 1,000 × 15: the tier starts above 200K
    Case("anthropic 200,000 in: still base", "anthropic", "messages", message("claude-sonnet-4-5", 200_000, 1000),
         by_hand((200_000, "3"), (1000, "15")), "0.615"),
    # 200,001 × 6 + 1,000 × 22.50 = 1,200,006 + 22,500 = 1,222,506 µ$
    Case("anthropic 200,001 in: the tier for every token", "anthropic", "messages",
         message("claude-sonnet-4-5", 200_001, 1000), by_hand((200_001, "6"), (1000, "22.50")), "1.222506"),
    # 150,000 read + 30,000 5-minute + 20,000 1-hour writes = 200,000 input: base
    # 150,000 × 0.30 + 30,000 × 3.75 + 20,000 × 6 + 100 × 15 = 45,000 + 112,500 + 120,000 + 1,500 = 279,000 µ$
    Case("anthropic 200,000 input through the cache: base", "anthropic", "messages",
         message("claude-sonnet-4-5", 0, 100, read=150_000, write_5m=30_000, write_1h=20_000),
         by_hand((150_000, "0.30"), (30_000, "3.75"), (20_000, "6"), (100, "15")), "0.279"),
    # one more uncached token: 200,001, every rate doubled (output × 1.5):
    # 1 × 6 + 150,000 × 0.60 + 30,000 × 7.50 + 20,000 × 12 + 100 × 22.50 = 6 + 90,000 + 225,000 + 240,000 + 2,250
    Case("anthropic 200,001 input through the cache: tier", "anthropic", "messages",
         message("claude-sonnet-4-5", 1, 100, read=150_000, write_5m=30_000, write_1h=20_000),
         by_hand((1, "6"), (150_000, "0.60"), (30_000, "7.50"), (20_000, "12"), (100, "22.50")), "0.557256"),
    # 1 + 200,000 read: 1 × 6 + 200,000 × 0.60 + 1,000 × 22.50 = 6 + 120,000 + 22,500 = 142,506 µ$
    Case("anthropic 200,001 with the cache read: tier", "anthropic", "messages",
         message("claude-sonnet-4-5", 1, 1000, read=200_000),
         by_hand((1, "6"), (200_000, "0.60"), (1000, "22.50")), "0.142506"),
    # 4,000 × 3 + 1,000 × 15 = 27,000 µ$ + 3 searches × $0.01
    Case("anthropic 3 web searches", "anthropic", "messages",
         message("claude-sonnet-4-5-20250929", 4000, 1000, searches=3),
         by_hand((4000, "3"), (1000, "15"), searches=3), "0.057"),
    # 10 × 3 + 10 × 15 = 180 µ$ + $0.01
    Case("anthropic 1 web search", "anthropic", "messages", message("claude-sonnet-4-5-20250929", 10, 10, searches=1),
         by_hand((10, "3"), (10, "15"), searches=1), "0.01018"),
    # 1,000 × 1 + 1,000 × 5 = 6,000 µ$
    Case("anthropic haiku-4.5", "anthropic", "messages", message("claude-haiku-4-5-20251001", 1000, 1000),
         by_hand((1000, "1"), (1000, "5")), "0.006"),
    # 10 × 1 + 10,000 × 2 + 100 × 5 = 10 + 20,000 + 500 = 20,510 µ$
    Case("anthropic haiku-4.5 1-hour cache write", "anthropic", "messages",
         message("claude-haiku-4-5-20251001", 10, 100, write_1h=10_000),
         by_hand((10, "1"), (10_000, "2"), (100, "5")), "0.02051"),
    # 500 × 15 + 1,000 × 1.50 + 1,000 × 18.75 + 200 × 75 = 7,500 + 1,500 + 18,750 + 15,000 = 42,750 µ$
    Case("anthropic opus-4.1 read and 5-minute write", "anthropic", "messages",
         message("claude-opus-4-1-20250805", 500, 200, read=1000, write_5m=1000),
         by_hand((500, "15"), (1000, "1.50"), (1000, "18.75"), (200, "75")), "0.04275"),
    # fast mode stated in the usage: 10,000 × 8 + 1,000 × 40 = 80,000 + 40,000 = 120,000 µ$
    Case("anthropic fast mode", "anthropic", "messages", message("claude-opus-5-5", 10_000, 1000, speed="fast"),
         by_hand((10_000, "8"), (1000, "40")), "0.12"),
    # Sonnet 4 by the shipped (historical) override: 250,000 × 6 + 1,000 × 22.50 = 1,500,000 + 22,500 µ$
    Case("anthropic sonnet-4 250k by the override", "anthropic", "messages",
         message("claude-sonnet-4-20250514", 250_000, 1000), by_hand((250_000, "6"), (1000, "22.50")), "1.5225"),
    # --- OpenRouter: its stated usage.cost is the invoice, to every digit; ours beside it ---------------------
    # 21 significant digits; ours: 1,000 × 0.15 + 200 × 0.60 = 150 + 120 = 270 µ$
    Case("openrouter stated cost, 21 digits", "openrouter", "chat/completions",
         chat("openai/gpt-4o-mini", 1000, 200, cost=Decimal("0.000123456789012345678901")),
         Decimal("0.000123456789012345678901"), "0.000123456789012345678901",
         estimate=by_hand((1000, "0.15"), (200, "0.60"))),
    # 21 significant digits; ours at the long-context tier: 200,001 × 6 + 1,000 × 22.50 = 1,222,506 µ$
    Case("openrouter stated cost on the long-context tier", "openrouter", "chat/completions",
         chat("anthropic/claude-sonnet-4.5", 200_001, 1000, cost=Decimal("1.22250600000000000001")),
         Decimal("1.22250600000000000001"), "1.22250600000000000001",
         estimate=by_hand((200_001, "6"), (1000, "22.50"))),
    Case("openrouter stated cost of a free model", "openrouter", "chat/completions",
         chat("meta-llama/llama-3.3-8b-instruct:free", 500, 100, cost=Decimal(0)), Decimal(0), "0"),
    Case("openrouter stated cost of 10^-21", "openrouter", "chat/completions",
         chat("openai/gpt-4o-mini", 1, 0, cost=Decimal("0.000000000000000000001")),
         Decimal("0.000000000000000000001"), "0.000000000000000000001",
         estimate=by_hand((1, "0.15"))),
    # no statement: ours, 1,000 × 0.15 + 200 × 0.60 = 270 µ$
    Case("openrouter without a stated cost", "openrouter", "chat/completions", chat("openai/gpt-4o-mini", 1000, 200),
         by_hand((1000, "0.15"), (200, "0.60")), "0.00027"),
    # gemini-2.5-flash by the shipped override: 600 × 0.30 + 400 × 0.03 + 100 × 2.50 = 180 + 12 + 250 = 442 µ$
    Case("openrouter gemini-2.5-flash cached", "openrouter", "chat/completions",
         chat("google/gemini-2.5-flash", 1000, 100, cached=400),
         by_hand((600, "0.30"), (400, "0.03"), (100, "2.50")), "0.000442"),
    # --- A count that is no count: never priced ---------------------------------------------------------------
    Case("anthropic input of 10^12 tokens", "anthropic", "messages", message("claude-sonnet-4-5", 10**12, 10),
         None, None),
]
IDS = [case.name for case in CASES]
STREAMED = [case for case in CASES if case.streams]


def test_the_golden_set_holds_49_calls_of_every_kind():
    assert len(CASES) == 49 and len(set(IDS)) == 49
    kinds = {(case.provider, case.path) for case in CASES}
    assert kinds == {("openai", "chat/completions"), ("openai", "responses"), ("openai", "embeddings"),
                     ("anthropic", "messages"), ("openrouter", "chat/completions")}


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_arithmetic_by_hand_is_the_golden_amount(case):
    assert case.usd == (None if case.golden is None else Decimal(case.golden))


# --- JSON and SSE, as the provider sends them ---------------------------------------------------------------
_NUMBER = re.compile(r'"\\u0000(-?[0-9.]+)"')


def dumps(value: Any) -> str:
    """JSON with Decimals written as the exact numbers they are (a stated cost of 21 digits)."""
    text = json.dumps(value, default=lambda d: "\x00" + format(d, "f"), separators=(",", ":"))
    return _NUMBER.sub(r"\1", text)


def sse(events: list[tuple[str | None, Any]]) -> str:
    out = []
    for name, data in events:
        out.append((f"event: {name}\n" if name else "") + f"data: {data if isinstance(data, str) else dumps(data)}\n\n")
    return "".join(out)


def chat_stream(answer: dict[str, Any]) -> str:
    head = {"id": answer["id"], "object": "chat.completion.chunk", "created": answer["created"],
            "model": answer["model"]} | ({"service_tier": answer["service_tier"]} if "service_tier" in answer else {})
    return sse([
        (None, head | {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}),
        (None, head | {"choices": [{"index": 0, "delta": {"content": "Hello"}, "finish_reason": None}]}),
        (None, head | {"choices": [{"index": 0, "delta": {"content": " there."}, "finish_reason": None}]}),
        (None, head | {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}),
        (None, head | {"choices": [], "usage": answer["usage"]}),
        (None, "[DONE]"),
    ])


def responses_stream(answer: dict[str, Any]) -> str:
    started = answer | {"status": "in_progress", "output": [], "usage": None}
    return sse([
        ("response.created", {"type": "response.created", "sequence_number": 0, "response": started}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 1,
                                        "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": "Found"}),
        ("response.output_text.delta", {"type": "response.output_text.delta", "sequence_number": 2,
                                        "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": " it."}),
        ("response.completed", {"type": "response.completed", "sequence_number": 3, "response": answer}),
    ])


def message_stream(answer: dict[str, Any]) -> str:
    """Input and cache counts (and the tier, the speed) in message_start; the output and the searches in
    message_delta, as Anthropic splits them."""
    usage = dict(answer["usage"])
    delta_usage = {"output_tokens": usage.pop("output_tokens")}
    if "server_tool_use" in usage:
        delta_usage["server_tool_use"] = usage.pop("server_tool_use")
    start = {key: answer[key] for key in ("id", "type", "role", "model")} | {
        "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage | {"output_tokens": 1}}
    return sse([
        ("message_start", {"type": "message_start", "message": start}),
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ("ping", {"type": "ping"}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Hello!"}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": delta_usage}),
        ("message_stop", {"type": "message_stop"}),
    ])


def stream_of(case: Case) -> str:
    if case.provider == "anthropic":
        return message_stream(case.answer)
    return responses_stream(case.answer) if case.path == "responses" else chat_stream(case.answer)


# --- Read and priced as the proxy does -------------------------------------------------------------------------
def priced(case: Case, usage, model: str | None, stated: Decimal | None):
    """The proxy's steps after reading: implausible usage is never priced; else the stated cost, else ours."""
    if usage is None or not usage.plausible():
        return None
    return price_call(case.provider, model or case.answer["model"], usage, AT, provider_cost_usd=stated)


def from_json(case: Case):
    adapter = get_adapter(case.provider)
    body = upstream_json(dumps(case.answer).encode())
    usage, model = adapter.parse_usage(adapter.endpoint(case.path), body)
    return priced(case, usage, model, adapter.provider_cost(body))


def from_stream(case: Case, seed: int):
    adapter = get_adapter(case.provider)
    meter = adapter.stream_meter(adapter.endpoint(case.path), PreparedBody(b""))
    rng, decoder, data, start = random.Random(seed), SseDecoder(), stream_of(case).encode(), 0
    while start < len(data):
        end = start + rng.randint(1, 100)
        for event in decoder.feed(data[start:end]):
            meter.see(event)
        start = end
    for event in decoder.flush():
        meter.see(event)
    assert meter.complete
    usage, model = meter.usage()
    return priced(case, usage, model, meter.provider_cost())


def check(case: Case, price) -> None:
    if case.usd is None:
        assert price is None
        return
    assert price.cost_usd == case.usd, (case.name, price)
    if case.estimate is not None:
        assert price.source == "provider" and price.estimated_cost_usd == case.estimate


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_each_answer_as_json_costs_what_was_worked_out_by_hand(case):
    check(case, from_json(case))


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("case", STREAMED, ids=[case.name for case in STREAMED])
def test_each_answer_streamed_in_random_pieces_costs_the_same(case, seed):
    check(case, from_stream(case, seed))
