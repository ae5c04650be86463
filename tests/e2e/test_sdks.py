"""Official openai and anthropic SDKs, unchanged but for base_url and key, through the stack over HTTP."""
import warnings
from decimal import Decimal

import anthropic
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.e2e.helpers import (
    ANTHROPIC_COST,
    ANTHROPIC_USAGE,
    OPENAI_COST,
    OPENAI_USAGE,
    anthropic_client,
    openai_client,
)


def logged(stack, call_id):
    [call] = [c for c in stack.calls(limit=50) if c["call_id"] == call_id]
    return call


def assert_openai_kinds(call, stream):
    """The logged call of OPENAI_USAGE, streamed or not. Every check is an assert here: the helper returns
    nothing, so a caller's `assert_openai_kinds(call) and …` would never run what follows the `and`."""
    assert call["stream"] is stream
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"]) == (200, 1000, 0)
    assert (call["output_tokens"], call["reasoning_tokens"]) == (200, 100)
    assert Decimal(call["cost_usd"]) == OPENAI_COST
    assert (call["account"], call["user"], call["session"], call["operation"]) == ("e2e", "alice", "sess-9", "e2e")


def test_openai_chat(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE)
    raw = openai_client(stack, gateway_key).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
    completion = raw.parse()
    assert completion.usage.prompt_tokens == 1200 and completion.choices[0].message.content
    assert Decimal(raw.headers["x-tollgate-cost-usd"]) == OPENAI_COST
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert_openai_kinds(call, stream=False)
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_openai_chat_stream(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE)
    raw = openai_client(stack, gateway_key).chat.completions.with_raw_response.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True)
    chunks = list(raw.parse())
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
    assert all(c.usage is None for c in chunks)  # the caller did not ask for usage, so it sees none
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert_openai_kinds(call, stream=True)


def test_openai_chat_stream_with_caller_usage(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE)
    stream = openai_client(stack, gateway_key).chat.completions.create(
        model="gpt-4o", messages=[{"role": "user", "content": "hello"}], stream=True,
        stream_options={"include_usage": True})
    assert [c.usage.prompt_tokens for c in stream if c.usage] == [1200]


@pytest.mark.parametrize("stream", [False, True])
def test_anthropic_messages(stack, gateway_key, upstream, stream):
    upstream.enqueue(usage=ANTHROPIC_USAGE)
    client = anthropic_client(stack, gateway_key)
    request = dict(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello"}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        if stream:
            with client.messages.stream(**request) as events:  # the SDK's own stream helper, end to end
                message = events.get_final_message()
                call_id = events.response.headers["x-tollgate-call-id"]
            assert message.usage.output_tokens == 300 and message.content[0].text
        else:
            raw = client.messages.with_raw_response.create(**request)
            assert raw.parse().usage.cache_read_input_tokens == 2000
            call_id = raw.headers["x-tollgate-call-id"]
    call = logged(stack, call_id)
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"], call["output_tokens"]) == (
        100, 2000, 500, 300)
    assert Decimal(call["cost_usd"]) == ANTHROPIC_COST and call["stream"] is stream
    assert upstream.requests[-1].headers["x-api-key"] == UPSTREAM_KEY


def test_openrouter_through_the_openai_sdk(stack, gateway_key, upstream):
    upstream.enqueue(usage={"prompt_tokens": 1000, "completion_tokens": 200, "cost": 0.00027})
    raw = openai_client(stack, gateway_key, provider="openrouter").chat.completions.with_raw_response.create(
        model="openai/gpt-4o-mini", messages=[{"role": "user", "content": "hello"}])
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert call["provider"] == "openrouter" and call["provider_cost_usd"] == "0.00027"
    assert call["cost_usd"] == "0.00027"


def test_sdk_errors_surface_as_the_sdks_own_exceptions(stack, gateway_key, upstream):
    with pytest.raises(openai.AuthenticationError):
        openai_client(stack, "tg-000000000000_wrong", max_retries=0).chat.completions.create(
            model="gpt-4o", messages=[])
    with pytest.raises(anthropic.AuthenticationError):
        anthropic_client(stack, "tg-000000000000_wrong", max_retries=0).messages.create(
            model="claude-haiku-4-5", max_tokens=5, messages=[])
    upstream.enqueue(status=500, body={"error": {"type": "server_error", "message": "boom"}})
    with pytest.raises(openai.InternalServerError):
        openai_client(stack, gateway_key, max_retries=0).chat.completions.create(model="gpt-4o", messages=[])
    failed = stack.calls(limit=1)[0]
    assert failed["status"] == 500 and failed["error_type"] == "server_error" and failed["cost_usd"] is None


@pytest.fixture
def fallback_rule(stack):
    rule = {"match": {"provider": "openai", "model": "gpt-4o-mini"},
            "targets": [{"provider": "openrouter", "model": "openai/gpt-4o-mini"}]}
    assert stack.admin("PUT", "/admin/fallbacks/e2e-mini", json=rule).status_code in (200, 201)
    yield
    stack.admin("DELETE", "/admin/fallbacks/e2e-mini")


@pytest.mark.parametrize("stream", [False, True])
def test_a_providers_429_is_invisible_to_the_sdk_through_a_fallback(stack, gateway_key, upstream, fallback_rule,
                                                                    stream):
    upstream.enqueue(status=429)
    upstream.enqueue(usage={"prompt_tokens": 100, "completion_tokens": 20, "cost": "0.0000261"})
    raw = openai_client(stack, gateway_key, max_retries=0).chat.completions.with_raw_response.create(
        model="gpt-4o-mini", messages=[{"role": "user", "content": "hello"}], stream=stream)
    answer = raw.parse()
    text = ("".join(c.choices[0].delta.content or "" for c in answer if c.choices) if stream
            else answer.choices[0].message.content)
    assert text.strip()
    assert (raw.headers["x-tollgate-provider"], raw.headers["x-tollgate-attempts"]) == ("openrouter", "2")
    assert [r.path for r in upstream.requests[-2:]] == ["/v1/chat/completions", "/openrouter/v1/chat/completions"]
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert call["provider"] == "openrouter" and Decimal(call["cost_usd"]) == Decimal("0.0000261")
    assert [(a["provider"], a["status"]) for a in call["attempts"]] == [("openai", 429), ("openrouter", 200)]
