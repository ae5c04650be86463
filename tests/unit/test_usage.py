"""Each provider's token semantics, turned into disjoint kinds (input excludes cache, output excludes reasoning)."""
from decimal import Decimal

import pytest

from chalicelib.gateway.providers import get_adapter
from chalicelib.gateway.providers.base import PreparedBody
from chalicelib.gateway.sse import EventTooLarge, SseDecoder
from chalicelib.gateway.tokens import TokenUsage


def _parse(provider, path, body):
    adapter = get_adapter(provider)
    return adapter.parse_usage(adapter.endpoint(path), body)


def _events(text, piece=7):
    """Decode as the proxy does: bytes in awkward pieces (mid-line, mid-character)."""
    decoder, data, events = SseDecoder(), text.encode(), []
    for start in range(0, len(data), piece):
        events += decoder.feed(data[start:start + piece])
    return events + decoder.flush()


def _meter(provider, path, text, prepared=PreparedBody(b"")):
    adapter = get_adapter(provider)
    meter = adapter.stream_meter(adapter.endpoint(path), prepared)
    forwarded = [event for event in _events(text) if meter.see(event)]
    return meter, forwarded


def _stream(provider, path, text):
    return _meter(provider, path, text)[0].usage()


def test_openai_cached_tokens_are_a_subset_of_prompt_tokens(event):
    usage, model = _parse("openai", "chat/completions", event("openai_chat_cached_reasoning.json"))
    assert model == "o3-mini-2025-01-31"
    assert usage == TokenUsage(input_tokens=176, cache_read_tokens=1024, output_tokens=44, reasoning_tokens=256,
                               service_tier="default")  # the tier the answer states picks the price variant
    assert usage.total_input_tokens == 1200 and usage.total_output_tokens == 300


def test_anthropic_cache_tokens_add_to_input_tokens(event):
    usage, model = _parse("anthropic", "messages", event("anthropic_message_cache.json"))
    assert model == "claude-sonnet-4-5-20250929"
    assert usage == TokenUsage(input_tokens=100, cache_read_tokens=2000, cache_write_tokens=500,
                               cache_write_1h_tokens=200, output_tokens=300, service_tier="standard")
    assert usage.total_input_tokens == 2600


def test_openai_responses_usage(event):
    usage, _ = _parse("openai", "responses", event("openai_responses_usage.json"))
    assert usage == TokenUsage(input_tokens=200, cache_read_tokens=128, output_tokens=52)


def test_openai_embeddings_usage(event):
    usage, model = _parse("openai", "embeddings", event("openai_embedding.json"))
    assert usage == TokenUsage(input_tokens=8) and model == "text-embedding-3-small"


def test_openrouter_reports_its_own_cost(event):
    body = event("openrouter_chat_cost.json")
    usage, model = _parse("openrouter", "chat/completions", body)
    assert usage == TokenUsage(input_tokens=1000, output_tokens=200) and model == "openai/gpt-4o-mini"
    assert str(get_adapter("openrouter").provider_cost(body)) == "0.00027"
    assert get_adapter("openai").provider_cost(body) is None


EXACT_COST = "0.000123456789012345678"  # more digits than a float keeps: it would read 0.00012345678901234567


def test_openrouter_cost_is_read_exactly_from_a_body_as_the_proxy_parses_it():
    from chalicelib.gateway.record import upstream_json as _loads

    raw = ('{"model": "acme/private", "usage": {"prompt_tokens": 1000, "completion_tokens": 200, '
           f'"cost": {EXACT_COST}}}}}').encode()
    body = _loads(raw)
    assert str(get_adapter("openrouter").provider_cost(body)) == EXACT_COST
    usage, _ = _parse("openrouter", "chat/completions", body)  # token counts still read by genai-prices
    assert usage == TokenUsage(input_tokens=1000, output_tokens=200) and usage.plausible()


def test_openrouter_cost_reaches_the_meter_on_streams_exactly(event):
    meter, forwarded = _meter("openrouter", "chat/completions", event("openrouter_chat_stream_cost.sse"))
    assert str(meter.provider_cost()) == EXACT_COST
    assert meter.usage() == (TokenUsage(input_tokens=250_000, output_tokens=1000), "anthropic/claude-sonnet-4")
    assert forwarded[-1].data == "[DONE]"


@pytest.mark.parametrize("cost,stated", [
    (0.00027, "0.00027"), ("0.5", "0.5"), (2, "2"), (Decimal("1E-30"), "0E-24"),
    (Decimal("999999.1234567890123456789012345"), "999999.123456789012345678901234"),
    (-1, None), ("NaN", None), (Decimal("Infinity"), None), (10**6, None), (True, None), (None, None),
    ("cheap", None), ([1], None),
])
def test_only_a_plausible_amount_counts_as_the_providers_statement(cost, stated):
    amount = get_adapter("openrouter").provider_cost({"usage": {"cost": cost}})
    assert (None if amount is None else str(amount)) == stated


@pytest.mark.parametrize("count", ["1000.0", "1000.5", "1e3"])
def test_a_count_sent_with_a_fraction_or_exponent_is_still_implausible(count):
    from chalicelib.gateway.record import upstream_json as _loads

    body = _loads(f'{{"model": "gpt-4o", "usage": {{"prompt_tokens": {count}, "completion_tokens": 1}}}}'.encode())
    usage, _ = _parse("openai", "chat/completions", body)
    assert not usage.plausible()  # logged usage_invalid, unpriced


def test_body_without_usage_reports_none():
    assert _parse("openai", "chat/completions", {"model": "gpt-4o"}) == (None, "gpt-4o")
    assert _parse("anthropic", "messages", "not a dict") == (None, None)
    unreadable = _parse("openai", "chat/completions", {"model": "x", "usage": {"prompt_tokens": "many"}})[0]
    assert not unreadable.plausible()  # usage was sent but is no count: logged usage_invalid, not as free


def test_openai_stream_usage_comes_from_the_final_chunk(event):
    usage, model = _stream("openai", "chat/completions", event("openai_chat_stream_usage.sse"))
    assert usage == TokenUsage(input_tokens=19, output_tokens=10) and model == "gpt-4o-mini-2024-07-18"


def test_anthropic_stream_merges_message_start_and_delta(event):
    usage, model = _stream("anthropic", "messages", event("anthropic_stream.sse"))
    assert usage == TokenUsage(input_tokens=25, cache_read_tokens=1000, output_tokens=15)
    assert model == "claude-sonnet-4-5-20250929"


def test_interrupted_anthropic_stream_keeps_input_counts(event):
    text = event("anthropic_stream.sse")
    partial = text[: text.index("event: message_delta")]
    usage, _ = _stream("anthropic", "messages", partial)
    assert usage.cache_read_tokens == 1000 and usage.input_tokens == 25 and usage.output_tokens == 1


def test_injected_usage_chunk_is_dropped_only_when_the_gateway_asked_for_it(event):
    adapter = get_adapter("openai")
    endpoint = adapter.endpoint("chat/completions")
    everything = _events(event("openai_chat_stream_usage.sse"))
    asked = adapter.prepare_body(endpoint, b"{}", {"model": "m", "stream": True})
    assert asked.injected_stream_usage
    meter, kept = _meter("openai", "chat/completions", event("openai_chat_stream_usage.sse"), asked)
    assert len(kept) == len(everything) - 1 and kept[-1].data == "[DONE]"
    assert meter.usage()[0] == TokenUsage(input_tokens=19, output_tokens=10)  # read, though not forwarded
    caller_asked = adapter.prepare_body(endpoint, b"raw", {"model": "m", "stream": True,
                                                           "stream_options": {"include_usage": True}})
    assert caller_asked.body == b"raw"
    assert _meter("openai", "chat/completions", event("openai_chat_stream_usage.sse"), caller_asked)[1] == everything


def test_first_content_event_is_told_apart_from_role_and_usage_chunks(event):
    openai = get_adapter("openai")
    assert not openai.is_content({"choices": [{"delta": {"role": "assistant", "content": ""}}]})
    assert openai.is_content({"choices": [{"delta": {"content": "Hi"}}]})
    assert openai.is_content({"choices": [{"delta": {"tool_calls": [{"index": 0}]}}]})
    assert openai.is_content({"choices": [{"text": "legacy"}]})
    assert not openai.is_content({"choices": [], "usage": {"prompt_tokens": 1}})
    assert openai.is_content({"type": "response.output_text.delta", "delta": "Hi"})
    assert not openai.is_content({"type": "response.created"})
    anthropic = get_adapter("anthropic")
    assert not anthropic.is_content({"type": "message_start"})
    assert anthropic.is_content({"type": "content_block_delta", "delta": {"text": "Hi"}})
    meter, _ = _meter("anthropic", "messages", event("anthropic_stream.sse"))
    assert meter.content_started


def test_non_streaming_bodies_go_upstream_byte_for_byte():
    adapter = get_adapter("openai")
    raw = b'{"model":  "gpt-4o",   "messages": []}'
    assert adapter.prepare_body(adapter.endpoint("chat/completions"), raw, {"model": "gpt-4o"}).body == raw


def test_sse_round_trip_keeps_event_names_and_multiline_data():
    text = "event: a\ndata: one\ndata: two\n\n: comment\ndata: [DONE]\n\n"
    events = _events(text, piece=3)
    assert [(e.event, e.data) for e in events] == [("a", "one\ntwo"), (None, "[DONE]")]
    assert b"".join(e.wire() for e in events).decode() == text


@pytest.mark.parametrize("piece", [1, 2, 5, 64])
def test_sse_decoder_is_indifferent_to_where_chunks_split(piece):
    text = "data: caf\u00e9 \U0001f600\r\n\r\nevent: b\r\ndata: x\r\n\r\ndata: tail-without-blank-line"
    events = _events(text, piece)
    assert [(e.event, e.data) for e in events] == [(None, "caf\u00e9 \U0001f600"), ("b", "x"),
                                                   (None, "tail-without-blank-line")]


def test_sse_decoder_holds_one_event_at_most_and_refuses_a_runaway_one():
    decoder = SseDecoder(max_event_bytes=1000)
    for _ in range(100):  # many small events: nothing accumulates
        assert len(decoder.feed(b"data: " + b"x" * 500 + b"\n\n")) == 1
    with pytest.raises(EventTooLarge):
        for _ in range(10):
            decoder.feed(b"data: " + b"y" * 200)


def test_output_speed_counts_reasoning_over_the_time_after_the_first_token():
    from chalicelib.gateway.record import output_tokens_per_s

    usage = TokenUsage(output_tokens=200, reasoning_tokens=100)
    assert output_tokens_per_s(usage, latency_ms=3500, ttft_ms=500) == 100.0  # 300 tokens in 3 s
    assert output_tokens_per_s(usage, latency_ms=500, ttft_ms=500) is None  # all at once: no rate
    assert output_tokens_per_s(None, latency_ms=3500, ttft_ms=500) is None
    assert output_tokens_per_s(usage, latency_ms=3500, ttft_ms=None) is None


@pytest.mark.parametrize("piece", [1, 3, 64])
def test_sse_decoder_reads_lone_carriage_returns_as_line_ends(piece):
    """SSE allows CR alone as a line end: such a stream must still be relayed event by event and metered."""
    text = "event: message_start\rdata: {\"a\": 1}\r\revent: message_stop\rdata: {}\r\r"
    decoder, data, events = SseDecoder(), text.encode(), []
    for start in range(0, len(data), piece):
        events += decoder.feed(data[start:start + piece])
    assert [(e.event, e.data) for e in events] == [("message_start", '{"a": 1}'), ("message_stop", "{}")]


def test_sse_decoder_bounds_an_event_in_bytes_not_characters():
    decoder = SseDecoder(max_event_bytes=1000)
    with pytest.raises(EventTooLarge):
        for _ in range(10):
            decoder.feed(("data: " + "\U0001f600" * 50).encode())  # 200 bytes, 56 characters a chunk


def test_the_providers_own_error_type_is_read_from_each_wire_format():
    from chalicelib.gateway.record import upstream_error_type

    openai = b'{"error": {"message": "slow down", "type": "rate_limit_exceeded"}}'
    anthropic = b'{"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}'
    gemini = b'{"error": {"code": 429, "message": "quota", "status": "RESOURCE_EXHAUSTED"}}'
    assert upstream_error_type(openai, 429) == "rate_limit_exceeded"
    assert upstream_error_type(anthropic, 529) == "overloaded_error"
    assert upstream_error_type(gemini, 429) == "RESOURCE_EXHAUSTED"
    assert upstream_error_type(b"<html>bad gateway</html>", 502) == "upstream_502"
