"""The worst case a hard budget holds: the body's bytes in, the output cap (or the model's window) out, priced at
the dearer of the input and cache-write prices."""
from datetime import datetime, timezone
from decimal import Decimal

from chalicelib.gateway import worst_case
from chalicelib.gateway.worst_case import DEFAULT_OUTPUT_TOKENS, WorstCase, estimate, output_cap

AT = datetime(2026, 12, 1, tzinfo=timezone.utc)
M = Decimal("0.000001")


def test_the_output_cap_comes_from_whichever_field_the_wire_format_uses():
    assert output_cap({"max_tokens": 10}) == 10
    assert output_cap({"max_output_tokens": 11}) == 11
    assert output_cap({"max_completion_tokens": 12}) == 12
    assert output_cap({"generationConfig": {"maxOutputTokens": 13}}) == 13
    assert output_cap({"inferenceConfig": {"maxTokens": 14}}) == 14
    for hostile in ({"max_tokens": -1}, {"max_tokens": True}, {"max_tokens": "9"}, {"max_tokens": 10**13},
                    {"max_tokens": 1.5}, {"generationConfig": "x"}, {}):
        assert output_cap(hostile) is None, hostile


def test_input_is_the_bodys_bytes_and_output_the_cap_times_the_choices():
    body = b'{"model": "gpt-4o", "max_tokens": 100, "n": 3}'
    assert estimate("chat/completions", body, {"max_tokens": 100, "n": 3}, None) == WorstCase(len(body), 300)
    assert estimate("chat/completions", body, {"max_tokens": 100, "n": 10**6}, None).output_tokens == 100


def test_without_a_cap_the_models_window_else_a_default_bounds_the_output():
    assert estimate("chat/completions", b"{}", {}, 128_000).output_tokens == 128_000
    assert estimate("chat/completions", b"{}", {}, None).output_tokens == DEFAULT_OUTPUT_TOKENS
    assert worst_case.context_window("openai", "gpt-4o") == 128_000
    assert worst_case.context_window("openai", "no-such-model") is None


def test_embeddings_produce_no_output_tokens():
    assert estimate("embeddings", b"{}", {"input": "x"}, 8191) == WorstCase(2, 0)


def test_priced_at_the_models_prices_with_input_at_its_dearest():
    worst = WorstCase(1000, 100)
    # gpt-4o: $2.50 in, $10 out per million (no dearer cache write)
    assert worst_case.cost("openai", "gpt-4o", worst, AT) == 1000 * Decimal("2.5") * M + 100 * 10 * M
    # claude-haiku-4-5: $1 in, but $2 a million to write the cache for an hour: the input is held at that
    assert worst_case.cost("anthropic", "claude-haiku-4-5", worst, AT) == 1000 * 2 * M + 100 * 5 * M
    assert worst_case.cost("openai", "no-such-model", worst, AT) is None
