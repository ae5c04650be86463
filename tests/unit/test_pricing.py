"""Golden costs, worked out by hand from the providers' published per-million-token prices."""
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from hypothesis import given, strategies as st

from chalicelib.pricing import load_overrides, money, price_call
from chalicelib.usage import TokenUsage

AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
M = Decimal("0.000001")  # one token at $1 per million


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
    assert price.cost_usd is None and not price.priced and price.source is None


def test_missing_usage_is_unpriced():
    assert not price_call("openai", "gpt-4o", None, AT).priced


def test_overrides_win_and_match_patterns(tmp_path):
    path = tmp_path / "overrides.json"
    path.write_text(json.dumps({"overrides": [
        {"provider": "openai", "model": "ft:gpt-4o-mini:*", "input_mtok": "0.30", "output_mtok": "1.20"},
        {"provider": "openai", "model": "gpt-4o", "input_mtok": "1", "output_mtok": "1"}]}))
    overrides = load_overrides(path)
    fine_tuned = price_call("openai", "ft:gpt-4o-mini:acme::abc", TokenUsage(input_tokens=1000, output_tokens=1000),
                            AT, overrides)
    assert fine_tuned.cost_usd == Decimal("0.0015") and fine_tuned.source == "override"
    assert price_call("openai", "gpt-4o", TokenUsage(output_tokens=10**6), AT, overrides).cost_usd == 1
    assert price_call("openai", "gpt-4o-mini", TokenUsage(output_tokens=10), AT, overrides).source == "genai-prices"
    assert price_call("anthropic", "gpt-4o", TokenUsage(output_tokens=10), AT, overrides).source is None


def test_the_shipped_overrides_file_loads():
    assert all(o.provider in ("openai", "anthropic", "openrouter") for o in load_overrides())


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
