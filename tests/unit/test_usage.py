"""Each provider's token semantics, turned into disjoint kinds (input excludes cache, output excludes reasoning)."""
from chalicelib.providers import get_adapter
from chalicelib.usage import TokenUsage, iter_sse, join_sse


def _parse(provider, path, body):
    adapter = get_adapter(provider)
    return adapter.parse_usage(adapter.endpoint(path), body)


def _stream(provider, path, text):
    adapter = get_adapter(provider)
    return adapter.stream_usage(adapter.endpoint(path), adapter.parse_stream(text))


def test_openai_cached_tokens_are_a_subset_of_prompt_tokens(event):
    usage, model = _parse("openai", "chat/completions", event("openai_chat_cached_reasoning.json"))
    assert model == "o3-mini-2025-01-31"
    assert usage == TokenUsage(input_tokens=176, cache_read_tokens=1024, output_tokens=44, reasoning_tokens=256)
    assert usage.total_input_tokens == 1200 and usage.total_output_tokens == 300


def test_anthropic_cache_tokens_add_to_input_tokens(event):
    usage, model = _parse("anthropic", "messages", event("anthropic_message_cache.json"))
    assert model == "claude-sonnet-4-5-20250929"
    assert usage == TokenUsage(input_tokens=100, cache_read_tokens=2000, cache_write_tokens=500,
                               cache_write_1h_tokens=200, output_tokens=300)
    assert usage.total_input_tokens == 2600


def test_openai_responses_usage(event):
    usage, _ = _parse("openai", "responses", event("openai_responses_usage.json"))
    assert usage == TokenUsage(input_tokens=200, cache_read_tokens=128, output_tokens=52)


def test_openai_embeddings_usage():
    usage, model = _parse("openai", "embeddings", {"model": "text-embedding-3-small", "object": "list",
                                                   "usage": {"prompt_tokens": 8, "total_tokens": 8}})
    assert usage == TokenUsage(input_tokens=8) and model == "text-embedding-3-small"


def test_openrouter_reports_its_own_cost(event):
    body = event("openrouter_chat_cost.json")
    usage, model = _parse("openrouter", "chat/completions", body)
    assert usage == TokenUsage(input_tokens=1000, output_tokens=200) and model == "openai/gpt-4o-mini"
    assert str(get_adapter("openrouter").provider_cost(body)) == "0.00027"
    assert get_adapter("openai").provider_cost(body) is None


def test_body_without_usage_reports_none():
    assert _parse("openai", "chat/completions", {"model": "gpt-4o"}) == (None, "gpt-4o")
    assert _parse("anthropic", "messages", "not a dict") == (None, None)
    assert _parse("openai", "chat/completions", {"model": "x", "usage": {"prompt_tokens": "many"}})[0] is None


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
    events = adapter.parse_stream(event("openai_chat_stream_usage.sse"))
    asked = adapter.prepare_body(endpoint, b"{}", {"model": "m", "stream": True})
    assert asked.injected_stream_usage
    kept = adapter.filter_stream(events, asked)
    assert len(kept) == len(events) - 1 and kept[-1].data == "[DONE]"
    caller_asked = adapter.prepare_body(endpoint, b"raw", {"model": "m", "stream": True,
                                                           "stream_options": {"include_usage": True}})
    assert caller_asked.body == b"raw" and adapter.filter_stream(events, caller_asked) == events


def test_non_streaming_bodies_go_upstream_byte_for_byte():
    adapter = get_adapter("openai")
    raw = b'{"model":  "gpt-4o",   "messages": []}'
    assert adapter.prepare_body(adapter.endpoint("chat/completions"), raw, {"model": "gpt-4o"}).body == raw


def test_sse_round_trip_keeps_event_names_and_multiline_data():
    text = "event: a\ndata: one\ndata: two\n\n: comment\ndata: [DONE]\n\n"
    events = list(iter_sse(text))
    assert [(e.event, e.data) for e in events] == [("a", "one\ntwo"), (None, "[DONE]")]
    assert join_sse(events) == text
