"""The overrides file (#26): an entry can be historical (its model retired, or its prices in force for a date
window only) and reads so; no price is a repeating decimal cut off (more than 12 significant digits); the shipped
entries say what is true of genai-prices."""
from __future__ import annotations

import json
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest
from genai_prices import calc_price

from chalicelib.errors import PriceOverridesInvalid
from chalicelib.gateway import price_overrides
from chalicelib.gateway.price_overrides import load_overrides
from chalicelib.gateway.pricing import price_call
from chalicelib.gateway.tokens import TokenUsage

SOURCE = [{"url": "https://example.com/prices", "checked": "2026-11-26", "says": "test prices"}]
M = Decimal("0.000001")
SHIPPED = json.loads(price_overrides.OVERRIDES_FILE.read_text())["overrides"]


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(tzinfo=timezone.utc)


def write(tmp_path, overrides):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"overrides": overrides}))
    return path


def shipped(provider: str, model: str):
    return next(o for o in load_overrides() if o.provider == provider and model in o.patterns)


# --- Historical entries --------------------------------------------------------------------------------------
def test_the_sonnet_4_long_context_override_reads_as_historical_since_its_retirement():
    for provider, model in (("anthropic", "claude-sonnet-4-2025*"), ("openrouter", "anthropic/claude-sonnet-4")):
        entry = shipped(provider, model)
        assert entry.retired == date(2026, 6, 15)
        assert entry.state(date(2026, 6, 14)) == "current" and entry.state(date(2026, 6, 15)) == "historical"
        assert "retired 2026-06-15" in entry.describe(date(2026, 11, 26))
    # the calls it priced are still re-priced by it: claude-sonnet-4 at 300k input, the long-context $6 / MTok
    price = price_call("anthropic", "claude-sonnet-4-20250514", TokenUsage(input_tokens=300_000), at("2026-06-01"))
    assert price.source == "override" and price.cost_usd == 300_000 * 6 * M == Decimal("1.8")


def test_a_windowed_entry_prices_only_the_calls_inside_its_window(tmp_path):
    overrides = load_overrides(write(tmp_path, [{
        "provider": "openai", "model": "gpt-4o", "input_mtok": "1", "output_mtok": "1", "source": SOURCE,
        "window": {"from": "2026-01-01", "until": "2026-02-01"}}]))
    [entry] = overrides.entries
    usage = TokenUsage(input_tokens=10**6)
    assert price_call("openai", "gpt-4o", usage, at("2026-01-15"), overrides).cost_usd == 1  # the override's $1
    for outside in ("2025-12-31", "2026-02-01"):  # until is exclusive: genai-prices' $2.50 again
        price = price_call("openai", "gpt-4o", usage, at(outside), overrides)
        assert (price.source, price.cost_usd) == ("genai-prices", Decimal("2.5"))
    assert [entry.state(date.fromisoformat(d)) for d in ("2025-12-01", "2026-01-10", "2026-03-01")] == [
        "upcoming", "current", "historical"]
    assert "2026-01-01 to 2026-02-01" in entry.describe(date(2026, 3, 1))


@pytest.mark.parametrize("marks,why", [
    ({"retired": "15 June"}, "retired"),
    ({"window": {"from": "2026-02-01", "until": "2026-01-01"}}, "window"),
    ({"window": {"since": "2026-01-01"}}, "window"),
    ({"window": "2026"}, "window"),
])
def test_a_bad_historical_mark_is_refused_at_load(tmp_path, marks, why):
    entry = {"provider": "openai", "model": "gpt-4o", "input_mtok": "1", "source": SOURCE, **marks}
    with pytest.raises(PriceOverridesInvalid, match=why):
        load_overrides(write(tmp_path, [entry]))


# --- No cut-off repeating decimals ---------------------------------------------------------------------------
@pytest.mark.parametrize("price", ["0.0833333333333333", "0.08333333333333334", "3.3333333333333"])
def test_a_price_past_12_significant_digits_is_refused_at_load(tmp_path, price):
    entry = {"provider": "openrouter", "model": "google/gemini-2.5-flash", "input_mtok": "0.30",
             "cache_write_mtok": price, "source": SOURCE}
    with pytest.raises(PriceOverridesInvalid, match="12 significant digits") as refused:
        load_overrides(write(tmp_path, [entry]))
    assert "cache_write_mtok" in str(refused.value) and "google/gemini-2.5-flash" in str(refused.value)


@pytest.mark.parametrize("price", ["0.083333333333", "123456.789012", "0.000000000001", "1000.00000000000000"])
def test_twelve_significant_digits_load(tmp_path, price):
    entry = {"provider": "openai", "model": "x", "input_mtok": price, "source": SOURCE}
    assert load_overrides(write(tmp_path, [entry])).entries


def test_no_shipped_price_is_a_cut_off_repeating_decimal():
    for entry in SHIPPED:
        for name, value in entry.items():
            if name.endswith(("_mtok", "_kcount")):
                for price in ([value["base"], *(t["price"] for t in value["tiers"])] if isinstance(value, dict)
                              else [value]):
                    digits = "".join(map(str, Decimal(price).as_tuple().digits)).strip("0")
                    assert len(digits) <= 12, (entry["model"], name, price)


def test_openrouter_gemini_2_5_flash_cache_write_is_a_twelfth_to_12_digits_not_a_cut_off_one():
    """genai-prices writes OpenRouter's 1/12 $ per MTok (five minutes of $1 per MTok-hour of storage) cut off at
    16 digits; the override writes it rounded to 12 and keeps the rest of genai-prices' current prices."""
    entry = shipped("openrouter", "google/gemini-2.5-flash")
    assert entry.price.cache_write_mtok == Decimal("0.0833333333333")
    assert abs(entry.price.cache_write_mtok - Decimal(1) / 12) < Decimal("1e-13")
    assert (entry.price.input_mtok, entry.price.cache_read_mtok, entry.price.output_mtok) == (
        Decimal("0.30"), Decimal("0.03"), Decimal("2.50"))
    usage = TokenUsage(input_tokens=1000, cache_read_tokens=2000, cache_write_tokens=12_000, output_tokens=100)
    # 1000 × 0.30 + 2000 × 0.03 + 12000 × 0.0833333333333 + 100 × 2.50 per MTok
    by_hand = (300 + 60 + Decimal("999.9999999996") + 250) * M
    price = price_call("openrouter", "google/gemini-2.5-flash", usage, at("2026-11-01"))
    assert (price.source, price.cost_usd) == ("override", by_hand)
    assert entry.window_from == date(2026, 10, 19)  # genai-prices' own older prices before that day
    assert price_call("openrouter", "google/gemini-2.5-flash", usage, at("2026-10-01")).source == "genai-prices"


def test_override_3_says_what_genai_prices_lacks_for_fine_tuned_gpt_4o_mini():
    """genai-prices has fine-tuned gpt-4o-mini's input and output ($0.30 / $1.20); it lacks the cached input."""
    model = "ft:gpt-4o-mini-2024-07-18:acme::abc123"
    plain = calc_price(TokenUsage(input_tokens=10**6, output_tokens=10**6).to_genai(), model, provider_id="openai")
    assert plain.total_price == Decimal("0.30") + Decimal("1.20")
    cached = calc_price(TokenUsage(cache_read_tokens=10**6).to_genai(), model, provider_id="openai")
    assert cached.total_price == Decimal("0.30")  # the cached input billed at the full input rate: what it lacks
    entry = next(e for e in SHIPPED if e["model"] == "ft:gpt-4o-mini-2024-07-18:*")
    assert "cached input" in entry["_why"] and "base model" not in entry["_why"]
    assert price_call("openai", model, TokenUsage(cache_read_tokens=10**6), at("2026-11-01")).cost_usd == Decimal("0.15")
