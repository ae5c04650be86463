"""Golden costs, worked out by hand from the providers' published per-million-token prices, and the overrides file.

Every expected amount below is written out as Decimal arithmetic on the published rates (never computed
by the code under test) and compared exactly, so it holds to far better than 1e-9 USD.
"""
import hashlib
import json
from datetime import datetime, timezone
from decimal import Decimal
from importlib import metadata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import PriceOverridesInvalid
from chalicelib.gateway import price_overrides, pricing
from chalicelib.gateway.pricing import load_overrides, price_call
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.money import money
from tests.conftest import ROOT

AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
M = Decimal("0.000001")  # one token at $1 per million
SOURCE = [{"url": "https://example.com/prices", "checked": "2026-11-26", "says": "test prices"}]


def test_openai_cached_input_is_billed_at_the_cache_rate():
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million
    usage = TokenUsage(input_tokens=200, cache_read_tokens=1000, output_tokens=300)
    price = price_call("openai", "gpt-4o", usage, AT)
    assert price.cost_usd == 200 * Decimal("2.5") * M + 1000 * Decimal("1.25") * M + 300 * 10 * M
    assert price.cost_usd == Decimal("0.00475") and price.source == "genai-prices"


def test_reasoning_tokens_are_billed_as_output_once():
    # o3-mini: $1.10 input, $4.40 output; 44 visible + 256 reasoning = 300 output tokens
    usage = TokenUsage(input_tokens=176, cache_read_tokens=1024, output_tokens=44, reasoning_tokens=256)
    price = price_call("openai", "o3-mini", usage, AT)
    expected = 176 * Decimal("1.1") * M + 1024 * Decimal("0.55") * M + 300 * Decimal("4.4") * M
    assert price.cost_usd == expected == Decimal("0.0020768")


def test_anthropic_cache_read_and_5m_and_1h_cache_writes():
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 5-minute write, $6 1-hour write, $15 output
    usage = TokenUsage(input_tokens=100, cache_read_tokens=2000, cache_write_tokens=500,
                       cache_write_1h_tokens=200, output_tokens=300)
    price = price_call("anthropic", "claude-sonnet-4-5", usage, AT)
    expected = (100 * 3 * M + 2000 * Decimal("0.3") * M + 300 * Decimal("3.75") * M + 200 * 6 * M
                + 300 * 15 * M)
    assert price.cost_usd == expected == Decimal("0.007725")


def test_anthropic_dated_model_id_is_priced():
    price = price_call("anthropic", "claude-sonnet-4-5-20250929", TokenUsage(input_tokens=1000), AT)
    assert price.cost_usd == Decimal("0.003")


def test_unknown_model_is_unpriced_never_zero():
    price = price_call("openai", "no-such-model-2099", TokenUsage(input_tokens=10, output_tokens=10), AT)
    assert price.cost_usd is None and not price.priced and price.source is None and price.version is None


def test_missing_usage_is_unpriced():
    assert not price_call("openai", "gpt-4o", None, AT).priced
    assert not price_call("openrouter", "acme/x", None, AT, provider_cost_usd=Decimal("1")).priced


# --- Long-context tiers -----------------------------------------------------------------------------
# Claude Sonnet 4 (Anthropic, and OpenRouter's anthropic/claude-sonnet-4), per million tokens:
#   total input <= 200K: $3 input, $0.30 cache read, $3.75 5-minute write, $6 1-hour write, $15 output
#   total input  > 200K: $6 input, $0.60 cache read, $7.50 5-minute write, $12 1-hour write, $22.50 output
# "Total input" is uncached + cache read + cache write; above the threshold every token of the call pays the tier.
BASE = {"in": Decimal(3), "cr": Decimal("0.30"), "cw": Decimal("3.75"), "cw1h": Decimal(6), "out": Decimal(15)}
TIER = {"in": Decimal(6), "cr": Decimal("0.60"), "cw": Decimal("7.50"), "cw1h": Decimal(12), "out": Decimal("22.50")}


def by_hand(rates, i=0, cr=0, cw5m=0, cw1h=0, out=0):
    return (i * rates["in"] + cr * rates["cr"] + cw5m * rates["cw"] + cw1h * rates["cw1h"] + out * rates["out"]) * M


GOLDEN_TIERS = [
    # (case, provider, model, usage, expected USD)
    ("sonnet-4 199,999 in / 1k out: base", "anthropic", "claude-sonnet-4-20250514",
     TokenUsage(input_tokens=199_999, output_tokens=1000), by_hand(BASE, i=199_999, out=1000), "0.614997"),
    ("sonnet-4 200,000 in / 1k out: still base (the tier starts above 200K)", "anthropic", "claude-sonnet-4-20250514",
     TokenUsage(input_tokens=200_000, output_tokens=1000), by_hand(BASE, i=200_000, out=1000), "0.615"),
    ("sonnet-4 200,001 in / 1k out: tier for every token", "anthropic", "claude-sonnet-4-20250514",
     TokenUsage(input_tokens=200_001, output_tokens=1000), by_hand(TIER, i=200_001, out=1000), "1.222506"),
    ("sonnet-4 250k in / 1k out (issue 14: was charged 0.765)", "anthropic", "claude-sonnet-4-0",
     TokenUsage(input_tokens=250_000, output_tokens=1000), by_hand(TIER, i=250_000, out=1000), "1.5225"),
    ("sonnet-4 cached: 200,000 total input, all cache: base", "anthropic", "claude-sonnet-4",
     TokenUsage(input_tokens=0, cache_read_tokens=150_000, cache_write_tokens=50_000, cache_write_1h_tokens=20_000,
                output_tokens=100),
     by_hand(BASE, cr=150_000, cw5m=30_000, cw1h=20_000, out=100), "0.279"),
    ("sonnet-4 cached: 200,001 total input: cache rates doubled too", "anthropic", "claude-sonnet-4",
     TokenUsage(input_tokens=1, cache_read_tokens=150_000, cache_write_tokens=50_000, cache_write_1h_tokens=20_000,
                output_tokens=100),
     by_hand(TIER, i=1, cr=150_000, cw5m=30_000, cw1h=20_000, out=100), "0.557256"),
    ("sonnet-4 under 200K with 1-hour writes: the 1h rate applies", "anthropic", "claude-sonnet-4-20250514",
     TokenUsage(input_tokens=100, cache_read_tokens=2000, cache_write_tokens=500, cache_write_1h_tokens=200,
                output_tokens=300),
     by_hand(BASE, i=100, cr=2000, cw5m=300, cw1h=200, out=300), "0.007725"),
    ("OpenRouter anthropic/claude-sonnet-4 200,000 in: base", "openrouter", "anthropic/claude-sonnet-4",
     TokenUsage(input_tokens=200_000, output_tokens=1000), by_hand(BASE, i=200_000, out=1000), "0.615"),
    ("OpenRouter anthropic/claude-sonnet-4 200,001 in: tier", "openrouter", "anthropic/claude-sonnet-4",
     TokenUsage(input_tokens=200_001, output_tokens=1000), by_hand(TIER, i=200_001, out=1000), "1.222506"),
    ("OpenRouter anthropic/claude-sonnet-4 250k in (issue 14)", "openrouter", "anthropic/claude-sonnet-4",
     TokenUsage(input_tokens=250_000, output_tokens=1000), by_hand(TIER, i=250_000, out=1000), "1.5225"),
    ("OpenRouter anthropic/claude-sonnet-4 100,001 in + 100,000 cached: tier", "openrouter",
     "anthropic/claude-sonnet-4", TokenUsage(input_tokens=100_001, cache_read_tokens=100_000, output_tokens=2000),
     by_hand(TIER, i=100_001, cr=100_000, out=2000), "0.705006"),
    ("sonnet-4.5 (genai-prices' own tier) 200,001 in", "anthropic", "claude-sonnet-4-5",
     TokenUsage(input_tokens=200_001, output_tokens=1000), by_hand(TIER, i=200_001, out=1000), "1.222506"),
    # Gemini 2.5 Pro through OpenRouter (genai-prices carries Google's tier): <= 200K $1.25 / $10, > 200K $2.50 / $15
    ("OpenRouter google/gemini-2.5-pro 200,000 in: base", "openrouter", "google/gemini-2.5-pro",
     TokenUsage(input_tokens=200_000, output_tokens=1000), (200_000 * Decimal("1.25") + 1000 * 10) * M, "0.26"),
    ("OpenRouter google/gemini-2.5-pro 200,001 in: tier", "openrouter", "google/gemini-2.5-pro",
     TokenUsage(input_tokens=200_001, output_tokens=1000), (200_001 * Decimal("2.5") + 1000 * 15) * M, "0.5150025"),
]


@pytest.mark.parametrize("case,provider,model,usage,by_hand_usd,golden", GOLDEN_TIERS, ids=[g[0] for g in GOLDEN_TIERS])
def test_long_context_tiers_at_and_around_the_threshold(case, provider, model, usage, by_hand_usd, golden):
    price = price_call(provider, model, usage, AT)
    assert by_hand_usd == Decimal(golden)  # the table itself, checked against the published rates
    assert price.cost_usd == Decimal(golden)
    assert abs(price.cost_usd - Decimal(golden)) < Decimal("1e-9")


def test_sonnet_4_is_priced_by_the_shipped_override_with_provenance():
    overrides = load_overrides()
    digest = hashlib.sha256(price_overrides.OVERRIDES_FILE.read_bytes()).hexdigest()[:12]
    for provider, model in (("anthropic", "claude-sonnet-4-20250514"), ("openrouter", "anthropic/claude-sonnet-4")):
        price = price_call(provider, model, TokenUsage(input_tokens=10), AT)
        assert (price.source, price.version) == ("override", f"overrides@{digest}") == ("override", overrides.version)
    assert price_call("anthropic", "claude-sonnet-4-5-20250929", TokenUsage(input_tokens=10), AT).version == (
        metadata.version("genai-prices"))


# --- The provider's own statement of the cost ---------------------------------------------------------
def test_provider_cost_prices_a_model_we_do_not_know():
    stated = Decimal("0.000123456789012345678")
    price = price_call("openrouter", "acme/private-model", TokenUsage(input_tokens=10, output_tokens=5), AT,
                       provider_cost_usd=stated)
    assert (price.cost_usd, price.source, price.version) == (stated, "provider", "provider")
    assert str(price.cost_usd) == "0.000123456789012345678"
    assert (price.estimated_cost_usd, price.price_drift) == (None, None)  # nothing to compare it with


def test_without_a_statement_our_price_is_the_price():
    # openai/gpt-4o-mini on OpenRouter: $0.15 in, $0.60 out per million
    price = price_call("openrouter", "openai/gpt-4o-mini", TokenUsage(input_tokens=1000, output_tokens=200), AT)
    assert price.cost_usd == 1000 * Decimal("0.15") * M + 200 * Decimal("0.6") * M == Decimal("0.00027")
    assert (price.source, price.estimated_cost_usd, price.price_drift) == ("genai-prices", None, None)


# --- The overrides file ---------------------------------------------------------------------------------
def write(tmp_path, overrides, **top):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"overrides": overrides, **top}))
    return path


def test_overrides_win_and_match_patterns(tmp_path):
    overrides = load_overrides(write(tmp_path, [
        {"provider": "openai", "model": "ft:gpt-4o-mini:*", "input_mtok": "0.30", "output_mtok": "1.20",
         "source": SOURCE},
        {"provider": "openai", "model": ["gpt-4o", "gpt-4o-2024-*"], "input_mtok": "1", "output_mtok": "1",
         "source": SOURCE}]))
    fine_tuned = price_call("openai", "ft:gpt-4o-mini:acme::abc", TokenUsage(input_tokens=1000, output_tokens=1000),
                            AT, overrides)
    assert fine_tuned.cost_usd == 1000 * Decimal("0.30") * M + 1000 * Decimal("1.20") * M == Decimal("0.0015")
    assert fine_tuned.source == "override" and fine_tuned.version.startswith("overrides@")
    assert price_call("openai", "gpt-4o", TokenUsage(output_tokens=10**6), AT, overrides).cost_usd == 1
    assert price_call("openai", "gpt-4o-2024-08-06", TokenUsage(output_tokens=10**6), AT, overrides).cost_usd == 1
    assert price_call("openai", "gpt-4o-mini", TokenUsage(output_tokens=10), AT, overrides).source == "genai-prices"
    assert price_call("anthropic", "gpt-4o", TokenUsage(output_tokens=10), AT, overrides).source is None


def test_an_override_takes_every_genai_prices_field_including_1h_cache_writes_and_tiers(tmp_path):
    overrides = load_overrides(write(tmp_path, [{
        "provider": "anthropic", "model": "claude-private-*", "source": SOURCE,
        "input_mtok": "2", "cache_read_mtok": "0.2", "cache_write_mtok": "2.5", "cache_write_1h_mtok": "4",
        "output_mtok": {"base": "10", "tiers": [{"start": 1000, "price": "20"}, {"start": 5000, "price": "30"}]},
    }]))
    usage = TokenUsage(input_tokens=100, cache_read_tokens=2000, cache_write_tokens=500, cache_write_1h_tokens=200,
                       output_tokens=300)  # 2,600 total input: the first output tier
    expected = (100 * 2 + 2000 * Decimal("0.2") + 300 * Decimal("2.5") + 200 * 4 + 300 * 20) * M
    assert price_call("anthropic", "claude-private-1", usage, AT, overrides).cost_usd == expected == Decimal("0.00815")
    big = TokenUsage(input_tokens=5001, output_tokens=1)
    assert price_call("anthropic", "claude-private-1", big, AT, overrides).cost_usd == (5001 * 2 + 30) * M


def test_the_shipped_overrides_file_is_there_is_used_and_cites_its_sources():
    """load_overrides() takes a missing file for an empty one, so first: the file is where the gateway reads it,
    and default pricing uses its content."""
    assert price_overrides.OVERRIDES_FILE == ROOT / "chalicelib" / "gateway" / "price_overrides.json"
    assert price_overrides.OVERRIDES_FILE.is_file()
    overrides = load_overrides()
    digest = hashlib.sha256(price_overrides.OVERRIDES_FILE.read_bytes()).hexdigest()[:12]
    assert overrides.version == f"overrides@{digest}"
    assert price_call("anthropic", "claude-sonnet-4-20250514", TokenUsage(input_tokens=10), AT).version == (
        overrides.version)
    entries = json.loads(price_overrides.OVERRIDES_FILE.read_text())["overrides"]
    assert len(overrides.entries) == len(entries) >= 3
    for entry in entries:
        assert entry["source"] and all(s["url"].startswith("https://") and s["checked"] and s["says"]
                                       for s in entry["source"])
    long_context = {(o.provider, p) for o in overrides for p in o.patterns}
    assert {("anthropic", "claude-sonnet-4-2025*"), ("openrouter", "anthropic/claude-sonnet-4")} <= long_context


REFUSED = [
    ({"input_mtok": "1", "cache_write_1h": "2"}, "unknown field 'cache_write_1h'", "cache_write_1h_mtok"),
    ({"input_mtok": "-1"}, "`input_mtok`", "not a price"),
    ({"input_mtok": "three"}, "`input_mtok`", "not a decimal number"),
    ({"input_mtok": "NaN"}, "`input_mtok`", "not a price"),
    ({"input_mtok": "1000000"}, "`input_mtok`", "not a price"),
    ({"input_mtok": True}, "`input_mtok`", "decimal string"),
    ({"input_mtok": 0.3}, None, None),  # a JSON number is read exactly: accepted
    ({"input_mtok": {"base": "3"}}, "`input_mtok`", "tiered prices"),
    ({"input_mtok": {"base": "3", "tiers": []}}, "`input_mtok`", "non-empty"),
    ({"input_mtok": {"base": "3", "tiers": [{"start": 200000.5, "price": "6"}]}}, "tiers[0].start", "whole number"),
    ({"input_mtok": {"base": "3", "tiers": [{"start": 5, "price": "6"}, {"start": 5, "price": "7"}]}},
     "tiers[1].start", "above the previous"),
    ({"input_mtok": {"base": "3", "tiers": [{"start": 5, "price": "6", "upto": 9}]}}, "tiers[0]", "start"),
    ({"input_mtok": {"base": "3", "tiers": [{"start": 5, "price": "-6"}]}}, "tiers[0].price", "not a price"),
    ({}, "no price field", None),
]


@pytest.mark.parametrize("prices,where,why", REFUSED)
def test_an_unknown_field_or_a_bad_value_is_refused_at_load_saying_where(tmp_path, prices, where, why):
    path = write(tmp_path, [{"provider": "openai", "model": "gpt-4o", "source": SOURCE, "input_mtok": "1"},
                            {"provider": "openai", "model": "my-model", "source": SOURCE, **prices}])
    if where is None:
        assert load_overrides(path).entries[1].price.input_mtok == Decimal("0.3")
        return
    with pytest.raises(PriceOverridesInvalid) as refused:
        load_overrides(path)
    message = str(refused.value)
    assert str(path) in message and "overrides[1] (openai my-model)" in message and where in message
    assert why is None or why in message


@pytest.mark.parametrize("document,why", [
    ({"overrides": [{"provider": "google", "model": "x", "input_mtok": "1", "source": SOURCE}]}, "`provider`"),
    ({"overrides": [{"provider": "openai", "model": "", "input_mtok": "1", "source": SOURCE}]}, "`model`"),
    ({"overrides": [{"provider": "openai", "model": "x", "input_mtok": "1"}]}, "cite where"),
    ({"overrides": [{"provider": "openai", "model": "x", "input_mtok": "1",
                     "source": [{"url": "http://example.com", "checked": "2026-11-26"}]}]}, "https"),
    ({"overrides": [{"provider": "openai", "model": "x", "input_mtok": "1",
                     "source": [{"url": "https://example.com", "checked": "last week"}]}]}, "`checked`"),
    ({"overrides": [{"provider": "openai", "model": "x", "input_mtok": "1", "source": SOURCE}] * 2}, "twice"),
    ({"overrides": [], "defaults": {}}, "unknown top-level field 'defaults'"),
    ({"prices": []}, '{"overrides": [...]}'),
])
def test_a_malformed_overrides_file_is_refused(tmp_path, document, why):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps(document))
    with pytest.raises(PriceOverridesInvalid) as refused:
        load_overrides(path)
    assert why in str(refused.value)


def test_an_overrides_file_that_is_not_json_is_refused(tmp_path):
    path = tmp_path / "overrides.json"
    path.write_text('{"overrides": [')
    with pytest.raises(PriceOverridesInvalid, match="not valid JSON"):
        load_overrides(path)


def test_a_deployed_file_that_does_not_load_leaves_calls_unpriced_and_never_fails_them(tmp_path, monkeypatch):
    path = tmp_path / "overrides.json"
    path.write_text('{"overrides": [{"provider": "openai", "model": "x", "input_mtok": "lots"}]}')
    monkeypatch.setattr(price_overrides, "OVERRIDES_FILE", path)
    pricing._overrides.cache_clear()
    try:
        assert price_call("openai", "gpt-4o", TokenUsage(input_tokens=10), AT) == pricing.UNPRICED
        stated = price_call("openrouter", "openai/gpt-4o-mini", TokenUsage(input_tokens=10), AT,
                            provider_cost_usd=Decimal("0.01"))
        assert stated.source == "provider"  # no price list we can read: the provider's statement, or nothing
    finally:
        pricing._overrides.cache_clear()


@pytest.mark.parametrize("value,text", [("12.50", "12.5"), ("0.0000087", "0.0000087"), ("1E-7", "0.0000001"),
                                        ("0E-10", "0"), ("100", "100")])
def test_money_is_a_plain_decimal_string(value, text):
    assert money(Decimal(value)) == text


@given(st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**7), st.integers(0, 10**6))
def test_cost_is_linear_and_exact(inputs, cached, outputs, reasoning):
    usage = TokenUsage(input_tokens=inputs, cache_read_tokens=cached, output_tokens=outputs,
                       reasoning_tokens=reasoning)
    expected = (inputs * Decimal("0.15") + cached * Decimal("0.075") + (outputs + reasoning) * Decimal("0.6")) * M
    assert price_call("openai", "gpt-4o-mini", usage, AT).cost_usd == expected


# --- Every billable unit the price data knows, read from the answer (issue 26) ---------------------------
# Each answer goes through its provider's adapter, as a JSON body and as a stream cut at random places, then
# is priced; the golden amount is the published rates times the counts, worked out here by hand.
def _answered(provider, path, body):
    from chalicelib.gateway.providers import get_adapter

    adapter = get_adapter(provider)
    return adapter.parse_usage(adapter.endpoint(path), body)


def _streamed(provider, path, text, seed):
    """Usage of a stream fed to the meter in random pieces (mid-line, mid-JSON, one byte or a hundred)."""
    import random

    from chalicelib.gateway.providers import get_adapter
    from chalicelib.gateway.providers.base import PreparedBody
    from chalicelib.gateway.sse import SseDecoder

    adapter = get_adapter(provider)
    meter = adapter.stream_meter(adapter.endpoint(path), PreparedBody(b""))
    rng, decoder, data, start = random.Random(seed), SseDecoder(), text.encode(), 0
    while start < len(data):
        end = start + rng.randint(1, 100)
        for sse in decoder.feed(data[start:end]):
            meter.see(sse)
        start = end
    for sse in decoder.flush():
        meter.see(sse)
    return meter.usage()


SEEDS = (1, 2, 3)
# gpt-audio (genai-prices 0.2.3, from https://developers.openai.com/api/docs/pricing): $2.50 text in,
# $10 text out, $32 audio in, $64 audio out per million. 1,000 in of which 800 audio, 500 out of which 400 audio:
#   200 × 2.5 + 800 × 32 + 100 × 10 + 400 × 64 = 500 + 25,600 + 1,000 + 25,600 = 52,700 µ$ = $0.0527
# (everything at the text rate, as before: 1,000 × 2.5 + 500 × 10 = 7,500 µ$ = $0.0075)
GPT_AUDIO_USD = 200 * Decimal("2.5") * M + 800 * 32 * M + 100 * 10 * M + 400 * 64 * M


def test_gpt_audio_bills_audio_tokens_at_the_audio_rate(event):
    usage, model = _answered("openai", "chat/completions", event("openai_chat_audio.json"))
    assert (usage.input_audio_tokens, usage.output_audio_tokens, usage.service_tier) == (800, 400, "default")
    assert usage.total_input_tokens == 1000 and usage.total_output_tokens == 500  # audio is part of them
    price = price_call("openai", model, usage, AT)
    assert price.cost_usd == GPT_AUDIO_USD == Decimal("0.0527")


@pytest.mark.parametrize("seed", SEEDS)
def test_gpt_audio_stream_bills_audio_tokens_at_the_audio_rate(event, seed):
    usage, model = _streamed("openai", "chat/completions", event("openai_chat_audio_stream.sse"), seed)
    assert (usage.input_audio_tokens, usage.output_audio_tokens) == (800, 400)
    assert price_call("openai", model, usage, AT).cost_usd == GPT_AUDIO_USD


# claude-sonnet-4-5: $3 in, $15 out per million, web search $10 per 1,000 searches. 4,000 in, 1,000 out, 3 searches:
#   4,000 × 3 + 1,000 × 15 = 27,000 µ$ = $0.027 of tokens, + 3 × $10 / 1,000 = $0.03 → $0.057
SONNET_SEARCH_USD = 4000 * 3 * M + 1000 * 15 * M + 3 * Decimal(10) / 1000


def test_anthropic_web_searches_are_billed_per_search(event):
    usage, model = _answered("anthropic", "messages", event("anthropic_message_web_search.json"))
    assert (usage.web_searches, usage.service_tier) == (3, "standard")
    assert price_call("anthropic", model, usage, AT).cost_usd == SONNET_SEARCH_USD == Decimal("0.057")


@pytest.mark.parametrize("seed", SEEDS)
def test_anthropic_stream_web_searches_are_billed_per_search(event, seed):
    usage, model = _streamed("anthropic", "messages", event("anthropic_web_search_stream.sse"), seed)
    assert usage.web_searches == 3
    assert price_call("anthropic", model, usage, AT).cost_usd == SONNET_SEARCH_USD


# gpt-5 (genai-prices 0.2.3, OpenAI's standard / flex / priority tables from 2026-10-12): standard $1.25 in,
# $10 out; flex $0.625 in, $5 out; priority $2.50 in, $20 out per million. 6,400 in, 2,000 out (1,500 reasoning):
#   default:  6,400 × 1.25  + 2,000 × 10 =  8,000 + 20,000 = 28,000 µ$ = $0.028
#   flex:     6,400 × 0.625 + 2,000 × 5  =  4,000 + 10,000 = 14,000 µ$ = $0.014
#   priority: 6,400 × 2.5   + 2,000 × 20 = 16,000 + 40,000 = 56,000 µ$ = $0.056
GPT5_TIER_USD = {
    "default": 6400 * Decimal("1.25") * M + 2000 * 10 * M,
    "flex": 6400 * Decimal("0.625") * M + 2000 * 5 * M,
    "priority": 6400 * Decimal("2.5") * M + 2000 * 20 * M,
}


@pytest.mark.parametrize("tier,golden", [("default", "0.028"), ("flex", "0.014"), ("priority", "0.056")])
def test_openai_service_tier_stated_in_the_answer_picks_the_price(event, tier, golden):
    body = event("openai_chat_tier.json")
    body["service_tier"] = tier
    usage, model = _answered("openai", "chat/completions", body)
    assert usage.service_tier == tier and usage.reasoning_tokens == 1500
    assert price_call("openai", model, usage, AT).cost_usd == GPT5_TIER_USD[tier] == Decimal(golden)


@pytest.mark.parametrize("tier", ["flex", "priority"])
@pytest.mark.parametrize("seed", SEEDS)
def test_openai_stream_service_tier_picks_the_price(event, tier, seed):
    text = event("openai_chat_tier_stream.sse").replace("TIER", tier)
    usage, model = _streamed("openai", "chat/completions", text, seed)
    assert usage.service_tier == tier
    assert price_call("openai", model, usage, AT).cost_usd == GPT5_TIER_USD[tier]


def test_openai_responses_web_search_calls_are_billed_per_call(event):
    # gpt-5 via Responses, 2 web_search_call items: $0.028 of tokens (above) + 2 × $10 / 1,000 = $0.048
    usage, model = _answered("openai", "responses", event("openai_responses_web_search.json"))
    assert usage.web_searches == 2
    assert price_call("openai", model, usage, AT).cost_usd == GPT5_TIER_USD["default"] + 2 * Decimal(10) / 1000


def test_anthropic_fast_mode_stated_in_usage_picks_the_price(event):
    # claude-opus-5-5: $4 in, $20 out per million; fast mode (`usage.speed: "fast"`) $8 in, $40 out.
    #   10,000 × 8 + 1,000 × 40 = 80,000 + 40,000 = 120,000 µ$ = $0.12 (standard speed: $0.06)
    usage, model = _answered("anthropic", "messages", event("anthropic_message_fast.json"))
    assert usage.speed == "fast"
    assert price_call("anthropic", model, usage, AT).cost_usd == 10_000 * 8 * M + 1000 * 40 * M == Decimal("0.12")


def test_a_variant_name_that_is_no_name_is_left_out_and_audio_past_its_total_is_implausible():
    usage = TokenUsage(input_tokens=10, output_tokens=10).stated(service_tier="<script>", speed=7)
    assert (usage.service_tier, usage.speed) == (None, None) and usage.plausible()
    assert not TokenUsage(input_tokens=10, input_audio_tokens=11).plausible()
    assert not TokenUsage(output_tokens=10, reasoning_tokens=5, output_audio_tokens=11).plausible()
    assert not TokenUsage(input_tokens=10, web_searches=-1).plausible()


# --- The provider's statement is the invoice; ours stays beside it -----------------------------------------
# openai/gpt-4o-mini on OpenRouter: $0.15 in, $0.60 out per million; 1,000 in, 200 out:
#   1,000 × 0.15 + 200 × 0.6 = 150 + 120 = 270 µ$ = $0.00027 (our estimate)
@pytest.mark.parametrize("stated,drift", [
    ("0.00027", False),  # the same
    ("0.000272", False),  # 2 µ$ apart, within max($0.000001, 1 % of 0.000272 = 2.72 µ$)
    ("0.000274", True),  # 4 µ$ apart: past 2.74 µ$
    ("0.0000271", True),  # a tenth
    ("5", True),
])
def test_the_providers_stated_cost_is_the_price_with_our_estimate_beside_it(stated, drift):
    price = price_call("openrouter", "openai/gpt-4o-mini", TokenUsage(input_tokens=1000, output_tokens=200), AT,
                       provider_cost_usd=Decimal(stated))
    assert (price.cost_usd, price.source, price.version) == (Decimal(stated), "provider", "provider")
    assert price.estimated_cost_usd == 1000 * Decimal("0.15") * M + 200 * Decimal("0.6") * M == Decimal("0.00027")
    assert price.price_drift is drift


def test_a_tiny_stated_cost_drifts_only_past_one_micro_dollar():
    assert pricing.drifts(Decimal("0.0000001"), Decimal("0.000001")) is False  # 0.9 µ$ apart
    assert pricing.drifts(Decimal("0.0000001"), Decimal("0.0000012")) is True  # 1.1 µ$ apart
    assert pricing.drifts(Decimal("1"), None) is None
