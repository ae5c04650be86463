"""Streams for real, over HTTP, with the official SDKs: events arrive as the provider sends them, the
closing `: tollgate` comment is ignored by the SDKs' parsers, and every way a stream can end is logged."""
import asyncio
import json
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import anthropic
import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY
from tests.e2e.helpers import ANTHROPIC_USAGE, ATTRIBUTION, OPENAI_USAGE, anthropic_client, openai_client

INTERVAL = 0.25  # seconds between upstream events: the mock's ~16-event answers take about 4 s
CHAT = dict(model="gpt-4o", messages=[{"role": "user", "content": "hello"}])
MESSAGE = dict(model="claude-haiku-4-5", max_tokens=64, messages=[{"role": "user", "content": "hello"}])


def api_call(stack, call_id, attempts=50):
    """GET /api/calls/{call_id}; an SDK may hang up at the last event, a moment before the record is written."""
    for _ in range(attempts):
        response = httpx.get(f"{stack.url}/api/calls/{call_id}", headers={"X-Dashboard-Key": ADMIN_KEY})
        if response.status_code == 200:
            return response.json()
        time.sleep(0.1)
    raise AssertionError(f"call {call_id} was never logged: {response.status_code} {response.text}")


def spread(times):
    return max(times) - min(times)


def raw_stream(stack, key, path, body):
    """The gateway's stream as raw SSE blocks, read as they arrive, with the time each one came."""
    blocks, buffer = [], ""
    with httpx.stream("POST", f"{stack.url}{path}", json=body, timeout=30,
                      headers={"Authorization": f"Bearer {key}", **ATTRIBUTION}) as response:
        for text in response.iter_text():
            buffer += text
            *complete, buffer = buffer.split("\n\n")
            blocks += [(time.monotonic(), block) for block in complete]
    return response, blocks


def trailer_of(blocks):
    last = blocks[-1][1]
    assert last.startswith(": tollgate "), last
    return json.loads(last[len(": tollgate "):])


def test_openai_sync_stream_arrives_event_by_event(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE, event_interval_seconds=INTERVAL)
    raw = openai_client(stack, gateway_key).chat.completions.with_raw_response.create(**CHAT, stream=True)
    arrivals = [(time.monotonic(), chunk) for chunk in raw.parse()]
    texts = [c.choices[0].delta.content for _, c in arrivals if c.choices and c.choices[0].delta.content]
    assert len(texts) >= 8
    content_times = [t for t, c in arrivals if c.choices and c.choices[0].delta.content]
    assert spread(content_times) >= 1.5  # buffered, they would all arrive within a few ms at the end
    assert "x-tollgate-cost-usd" not in raw.headers
    call = api_call(stack, raw.headers["x-tollgate-call-id"])
    assert call["stream"] and call["error_type"] is None and call["status"] == 200
    assert call["ttft_ms"] is not None and call["latency_ms"] - call["ttft_ms"] >= 1500
    # 300 output tokens (200 + 100 reasoning) over the time after the first token
    assert call["output_tokens_per_s"] == pytest.approx(300 * 1000 / (call["latency_ms"] - call["ttft_ms"]), abs=0.1)


def test_raw_stream_ends_with_the_call_id_and_cost_comment(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE, event_interval_seconds=INTERVAL)
    response, blocks = raw_stream(stack, gateway_key, "/openai/v1/chat/completions", {**CHAT, "stream": True})
    trailer = trailer_of(blocks)
    assert blocks[-2][1] == "data: [DONE]"
    assert spread([t for t, _ in blocks[:-2]]) >= 1.5
    assert trailer["call_id"] == response.headers["x-tollgate-call-id"]
    call = api_call(stack, trailer["call_id"])
    assert trailer["cost_usd"] == call["cost_usd"] and Decimal(call["cost_usd"]) > 0


def test_openai_async_stream(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE, event_interval_seconds=INTERVAL / 5)

    async def run():
        client = openai.AsyncOpenAI(base_url=f"{stack.url}/openai/v1", api_key=gateway_key,
                                    default_headers=ATTRIBUTION)
        raw = await client.chat.completions.with_raw_response.create(
            **CHAT, stream=True, stream_options={"include_usage": True})
        chunks = [chunk async for chunk in raw.parse()]
        await client.close()
        return raw.headers["x-tollgate-call-id"], chunks

    call_id, chunks = asyncio.run(run())
    assert [c.usage.prompt_tokens for c in chunks if c.usage] == [1200]  # the caller asked: it gets usage
    assert api_call(stack, call_id)["usage_reported"]


def test_openai_responses_stream(stack, gateway_key, upstream):
    upstream.enqueue(usage={"input_tokens": 500, "output_tokens": 40, "total_tokens": 540,
                            "input_tokens_details": {"cached_tokens": 0},
                            "output_tokens_details": {"reasoning_tokens": 0}})
    with openai_client(stack, gateway_key).responses.with_streaming_response.create(
            model="gpt-4o", input="hello", stream=True) as raw:
        events = list(raw.parse())
        call_id = raw.headers["x-tollgate-call-id"]
    assert events[-1].type == "response.completed"
    call = api_call(stack, call_id)
    assert (call["input_tokens"], call["output_tokens"]) == (500, 40) and call["ttft_ms"] is not None


def test_anthropic_stream_helper_sync_and_spread(stack, gateway_key, upstream):
    upstream.enqueue(usage=ANTHROPIC_USAGE, event_interval_seconds=INTERVAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        with anthropic_client(stack, gateway_key).messages.stream(**MESSAGE) as stream:
            times = [time.monotonic() for _ in stream.text_stream]
            message = stream.get_final_message()
            call_id = stream.response.headers["x-tollgate-call-id"]
    assert len(times) >= 8 and spread(times) >= 1.5
    assert message.usage.output_tokens == 300
    call = api_call(stack, call_id)
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"]) == (100, 2000, 500)
    assert call["error_type"] is None and call["usage_reported"]


def test_anthropic_async_create_stream_and_helper(stack, gateway_key, upstream):
    upstream.enqueue(usage=ANTHROPIC_USAGE)
    upstream.enqueue(usage=ANTHROPIC_USAGE)

    async def run():
        client = anthropic.AsyncAnthropic(base_url=f"{stack.url}/anthropic", api_key=gateway_key)
        kinds = [event.type async for event in await client.messages.create(**MESSAGE, stream=True)]
        async with client.messages.stream(**MESSAGE) as stream:
            message = await stream.get_final_message()
        await client.close()
        return kinds, message

    kinds, message = asyncio.run(run())
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert message.content[0].text and message.usage.cache_read_input_tokens == 2000


def test_concurrent_streams_are_not_serialised(stack, gateway_key, upstream):
    for _ in range(4):
        upstream.enqueue(usage=OPENAI_USAGE, event_interval_seconds=INTERVAL)
    client = openai_client(stack, gateway_key)

    def one(_):
        started = time.monotonic()
        pieces = sum(1 for _ in client.chat.completions.create(**CHAT, stream=True))
        return started, time.monotonic(), pieces

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(one, range(4)))
    starts, ends = [r[0] for r in runs], [r[1] for r in runs]
    single = min(e - s for s, e, _ in runs)
    assert single >= 2.5 and max(ends) - min(starts) < 2 * single  # four in series would take 4 × single


def test_client_disconnect_closes_upstream_and_logs_what_was_seen(stack, gateway_key, upstream):
    upstream.enqueue(usage=ANTHROPIC_USAGE, event_interval_seconds=0.5)
    abandoned = upstream.streams_abandoned
    with httpx.stream("POST", f"{stack.url}/anthropic/v1/messages", json={**MESSAGE, "stream": True},
                      headers={"x-api-key": gateway_key}, timeout=30) as response:
        call_id = response.headers["x-tollgate-call-id"]
        seen = ""
        for text in response.iter_text():
            seen += text
            if seen.count("content_block_delta") >= 2:
                break  # leaving the block closes the connection mid-stream
    call = api_call(stack, call_id)
    assert call["error_type"] == "client_disconnected" and not call["usage_reported"]
    assert call["input_tokens"] == 100 and call["cache_read_tokens"] == 2000  # message_start was seen
    assert call["cost_usd"] is not None  # what was used so far is charged, so budgets still see it
    deadline = time.monotonic() + 5
    while upstream.streams_abandoned == abandoned and time.monotonic() < deadline:
        time.sleep(0.1)
    assert upstream.streams_abandoned == abandoned + 1  # the gateway hung up on the provider too


def test_upstream_break_ends_the_stream_with_what_arrived(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE, drop_stream_after_events=4)
    response, blocks = raw_stream(stack, gateway_key, "/openai/v1/chat/completions", {**CHAT, "stream": True})
    assert response.status_code == 200
    assert len(blocks) == 5 and all(b.startswith("data: {") for _, b in blocks[:4])
    trailer = trailer_of(blocks)
    call = api_call(stack, trailer["call_id"])
    assert call["error_type"] == "stream_interrupted" and not call["usage_reported"]
    assert trailer["cost_usd"] is None and call["cost_usd"] is None  # the usage chunk never came


def test_upstream_silence_past_the_read_timeout_ends_the_stream(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE, stall_after_events=3, stall_seconds=6)  # the stack reads for 3 s
    response, blocks = raw_stream(stack, gateway_key, "/openai/v1/chat/completions", {**CHAT, "stream": True})
    assert len(blocks) == 4
    call = api_call(stack, trailer_of(blocks)["call_id"])
    assert call["error_type"] == "stream_interrupted" and 3000 <= call["latency_ms"] < 6000


def test_hard_budget_refuses_a_stream_before_any_byte(stack, upstream):
    created = stack.admin("POST", "/admin/keys", json={"name": "capped", "account": "capped-stream"}).json()
    budget = {"scope": "account", "scope_id": "capped-stream", "period": "daily", "limit_usd": "0.000001",
              "thresholds": [1.0], "mode": "hard", "channels": []}
    assert stack.admin("PUT", "/admin/budgets/capped-stream", json=budget).status_code == 200
    # the call's worst case (its input and the model's output limit) does not fit: refused at admission, once the
    # proxy's budget cache (a few seconds) has seen the new budget
    deadline = time.monotonic() + 15
    while True:
        requests_before = len(upstream.requests)
        with httpx.stream("POST", f"{stack.url}/openai/v1/chat/completions", json={**CHAT, "stream": True},
                          headers={"Authorization": f"Bearer {created['key']}"}, timeout=30) as response:
            body = response.read()
        if response.status_code == 429 or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert response.status_code == 429 and response.headers["content-type"] == "application/json"
    assert json.loads(body)["error"]["code"] == "budget_exceeded"
    assert len(upstream.requests) == requests_before  # nothing went upstream
    assert api_call(stack, response.headers["x-tollgate-call-id"])["status"] == 429


def test_stream_call_is_account_scoped(stack, gateway_key, upstream):
    upstream.enqueue(usage=OPENAI_USAGE)
    raw = openai_client(stack, gateway_key).chat.completions.with_raw_response.create(**CHAT, stream=True)
    list(raw.parse())
    call_id = raw.headers["x-tollgate-call-id"]
    api_call(stack, call_id)
    other = stack.admin("POST", "/admin/dashboard-keys", json={"account": "someone-else"}).json()["key"]
    mine = stack.admin("POST", "/admin/dashboard-keys", json={"account": "e2e"}).json()["key"]
    assert httpx.get(f"{stack.url}/api/calls/{call_id}", headers={"X-Dashboard-Key": other}).status_code == 404
    assert httpx.get(f"{stack.url}/api/calls/{call_id}", headers={"X-Dashboard-Key": mine}).json()[
        "call_id"] == call_id
    assert httpx.get(f"{stack.url}/api/calls/call_nope", headers={"X-Dashboard-Key": mine}).status_code == 404
