"""The proxy against moto and the mock upstream over HTTP: what goes upstream, what comes back, what is logged."""
import json
from decimal import Decimal

import pytest

from chalicelib.ledger.models import CallRecord
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "the secret prompt text"}]}
MESSAGE = {"model": "claude-sonnet-4-5", "max_tokens": 50,
           "messages": [{"role": "user", "content": "the secret prompt text"}]}


def text(response):
    return response.body.decode() if isinstance(response.body, bytes) else response.body


def only_call():
    records = list(CallRecord.scan())
    assert len(records) == 1, records
    return records[0]


def test_chat_is_forwarded_metered_and_logged(gateway, upstream):
    key = gateway.new_key(account="acme", team="search", user="svc")
    upstream.enqueue(usage={"prompt_tokens": 1200, "completion_tokens": 300,
                            "prompt_tokens_details": {"cached_tokens": 1000},
                            "completion_tokens_details": {"reasoning_tokens": 100}})
    response = gateway.call("/openai/v1/chat/completions", CHAT, key, headers={
        "X-Tollgate-User": "alice", "X-Tollgate-Session": "s-1", "X-Tollgate-Operation": "summarise",
        "X-Tollgate-Tags": "env=prod,feature=search"})
    assert response.status_code == 200
    assert json.loads(response.body)["choices"][0]["message"]["content"]
    # gpt-4o: 200 uncached × $2.50 + 1000 cached × $1.25 + 300 output × $10, per million
    assert response.headers["X-Tollgate-Cost-USD"] == "0.00475"
    call = only_call()
    assert response.headers["X-Tollgate-Call-Id"] == call.call_id
    assert (call.account, call.team, call.user, call.session, call.operation) == (
        "acme", "search", "alice", "s-1", "summarise")
    assert call.tags.as_dict() == {"env": "prod", "feature": "search"}
    assert (call.input_tokens, call.cache_read_tokens, call.output_tokens, call.reasoning_tokens) == (200, 1000, 200, 100)
    assert call.cost_usd == Decimal("0.00475") and call.priced and call.status == 200 and not call.stream
    assert call.expires_at is not None and call.day == call.ts[:10]


def test_upstream_gets_the_provider_key_and_protocol_headers_only(gateway, upstream):
    key = gateway.new_key()
    response = gateway.call("/anthropic/v1/messages", MESSAGE, key, headers={
        "anthropic-version": "2023-06-01", "anthropic-beta": "prompt-caching-2024-07-31",
        "Cookie": "session=abc", "X-Forwarded-For": "10.0.0.1"})
    assert response.status_code == 200
    seen = upstream.requests[-1]
    assert seen.path == "/v1/messages" and seen.headers["x-api-key"] == UPSTREAM_KEY
    assert seen.headers["anthropic-version"] == "2023-06-01"
    assert seen.headers["anthropic-beta"] == "prompt-caching-2024-07-31"
    assert "authorization" not in seen.headers and "cookie" not in seen.headers
    assert key not in json.dumps(seen.headers) and "x-forwarded-for" not in seen.headers


def test_gateway_key_is_accepted_as_x_api_key_on_openai_routes_too(gateway, upstream):
    key = gateway.new_key()
    response = gateway.proxy.post("/openai/v1/chat/completions", body=json.dumps(CHAT),
                                        headers={"x-api-key": key, "Content-Type": "application/json"})
    assert response.status_code == 200
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"


def test_openai_stream_asks_upstream_for_usage_and_hides_the_extra_chunk(gateway, upstream):
    key = gateway.new_key()
    upstream.enqueue(usage={"prompt_tokens": 40, "completion_tokens": 12})
    response = gateway.call("/openai/v1/chat/completions", {**CHAT, "stream": True}, key)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    assert upstream.requests[-1].body["stream_options"] == {"include_usage": True}
    body = text(response)
    chunks = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: {")]
    assert chunks and all(chunk["choices"] for chunk in chunks)
    *events, trailer = body.rstrip("\n").split("\n\n")
    assert events[-1] == "data: [DONE]" and trailer.startswith(": tollgate ")
    call = only_call()
    assert json.loads(trailer[len(": tollgate "):]) == {"call_id": call.call_id, "cost_usd": str(call.cost_usd)}
    assert "X-Tollgate-Cost-USD" not in response.headers  # headers leave before the usage is known
    assert call.stream and (call.input_tokens, call.output_tokens) == (40, 12)
    assert call.cost_usd == 40 * Decimal("2.5") / 10**6 + 12 * Decimal(10) / 10**6


def test_openai_stream_keeps_the_usage_chunk_when_the_caller_asked(gateway, upstream):
    key = gateway.new_key()
    body = {**CHAT, "stream": True, "stream_options": {"include_usage": True}}
    response = gateway.call("/openai/v1/chat/completions", body, key)
    assert '"choices": [], "usage"' in text(response)
    assert only_call().usage_reported


def test_anthropic_stream_usage_is_captured(gateway, upstream):
    key = gateway.new_key()
    upstream.enqueue(usage={"input_tokens": 100, "cache_read_input_tokens": 2000,
                            "cache_creation_input_tokens": 500, "output_tokens": 300})
    response = gateway.call("/anthropic/v1/messages", {**MESSAGE, "stream": True}, key)
    assert response.status_code == 200 and "event: message_stop" in text(response)
    call = only_call()
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens) == (
        100, 2000, 500, 300)
    # claude-sonnet-4-5: $3 input, $0.30 cache read, $3.75 cache write (5 m), $15 output, per million
    assert call.cost_usd == Decimal("0.007275") and text(response).endswith(
        f': tollgate {{"call_id": "{call.call_id}", "cost_usd": "0.007275"}}\n\n')


def test_openrouter_cost_is_kept_next_to_ours(gateway, upstream):
    key = gateway.new_key()
    upstream.enqueue(usage={"prompt_tokens": 1000, "completion_tokens": 200, "cost": 0.00027})
    response = gateway.call("/openrouter/v1/chat/completions", {**CHAT, "model": "openai/gpt-4o-mini"}, key)
    assert response.status_code == 200 and upstream.requests[-1].path == "/openrouter/v1/chat/completions"
    call = only_call()
    assert call.provider == "openrouter" and call.provider_cost_usd == Decimal("0.00027")
    assert call.cost_usd == Decimal("0.00027")  # $0.15 in, $0.60 out per million: 0.00015 + 0.00012


def test_unknown_model_is_logged_unpriced(gateway, upstream):
    key = gateway.new_key()
    response = gateway.call("/openai/v1/chat/completions", {**CHAT, "model": "my-own-model-9"}, key)
    assert response.status_code == 200 and "X-Tollgate-Cost-USD" not in response.headers
    call = only_call()
    assert call.cost_usd is None and not call.priced and call.input_tokens > 0
    status, body = gateway.calls()
    assert body["calls"][0]["cost_usd"] is None and body["calls"][0]["priced"] is False


@pytest.mark.parametrize("path,body", [
    ("/openai/v1/embeddings", {"model": "text-embedding-3-small", "input": ["hello"]}),
    ("/openai/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hello"}),
    ("/openai/v1/responses", {"model": "gpt-4o", "input": "hello"}),
    ("/openai/v1/responses", {"model": "gpt-4o", "input": "hello", "stream": True}),
])
def test_other_openai_endpoints_are_metered(gateway, upstream, path, body):
    key = gateway.new_key()
    response = gateway.call(path, body, key)
    assert response.status_code == 200
    call = only_call()
    assert call.endpoint == path.split("/v1/")[1] and call.usage_reported and call.input_tokens > 0
    assert call.priced and call.cost_usd > 0


def test_free_endpoints_are_proxied_but_not_logged(gateway, upstream):
    key = gateway.new_key()
    models = gateway.proxy.get("/openai/v1/models", headers={"Authorization": f"Bearer {key}"})
    count = gateway.call("/anthropic/v1/messages/count_tokens", MESSAGE, key)
    assert models.status_code == 200 and json.loads(models.body)["data"]
    assert count.status_code == 200 and json.loads(count.body)["input_tokens"] > 0
    assert "X-Tollgate-Call-Id" in models.headers and list(CallRecord.scan()) == []


def test_prompts_and_answers_are_not_stored(gateway, upstream):
    key = gateway.new_key()
    gateway.call("/anthropic/v1/messages", MESSAGE, key)
    stored = json.dumps(only_call().serialize())
    assert "secret prompt" not in stored and "mock answer" not in stored and key not in stored


def test_every_answer_has_a_call_id_and_the_api_finds_the_call_by_it(gateway, upstream):
    key = gateway.new_key(account="acme")
    upstream.enqueue(usage={"prompt_tokens": 10, "completion_tokens": 5})
    ok = gateway.call("/openai/v1/chat/completions", CHAT, key)
    refused = gateway.call("/openai/v1/chat/completions", CHAT, "tg-000000000000_wrong")
    bad = gateway.call("/anthropic/v1/messages", None, key, raw=b"{not json")
    assert [r.status_code for r in (ok, refused, bad)] == [200, 401, 400]
    assert all(r.headers["X-Tollgate-Call-Id"].startswith("call_") for r in (ok, refused, bad))
    call_id = ok.headers["X-Tollgate-Call-Id"]
    response = gateway.client.http.get(f"/api/calls/{call_id}", headers={"X-Dashboard-Key": ADMIN_KEY})
    call = json.loads(response.body)
    assert response.status_code == 200 and call["call_id"] == call_id and call["cost_usd"] == ok.headers[
        "X-Tollgate-Cost-USD"]
    assert call["ttft_ms"] is not None and call["ttft_ms"] <= call["latency_ms"]
    assert call["output_tokens_per_s"] is None and not call["stream"]  # a speed is a stream's
    _, scoped = gateway.admin("post", "/admin/dashboard-keys", {"account": "globex"})
    other = gateway.client.http.get(f"/api/calls/{call_id}", headers={"X-Dashboard-Key": scoped["key"]})
    assert other.status_code == 404
    for junk, status in (("call_nope", 404), ("call_" + "f" * 32, 404), ("x" * 300, 400)):
        assert gateway.client.http.get(f"/api/calls/{junk}", headers={"X-Dashboard-Key": ADMIN_KEY}).status_code == status


def test_upstream_cookies_are_neither_kept_nor_passed_on(gateway, upstream):
    import httpx

    from chalicelib.gateway import upstream as upstream_module

    seen = []

    def provider(request):
        seen.append(request.headers.get("cookie"))
        return httpx.Response(200, json={"model": "gpt-4o", "usage": {"prompt_tokens": 1, "completion_tokens": 1}},
                              headers={"Set-Cookie": "tenant=acme; Path=/"})

    upstream_module.use_transport(httpx.MockTransport(provider))
    first, second = gateway.new_key(account="acme"), gateway.new_key(account="globex")
    answer = gateway.call("/openai/v1/chat/completions", CHAT, first)
    gateway.call("/openai/v1/chat/completions", CHAT, second)
    assert answer.status_code == 200 and "set-cookie" not in answer.headers
    assert seen == [None, None]  # tenant A's cookie never rides on tenant B's call


def test_a_path_no_provider_has_gets_the_callers_own_404_even_with_a_newline(gateway, upstream):
    key = gateway.new_key()
    for path in ("/openai/v1/no/such/thing", "/openai/v1/chat%0Acompletions", "/anthropic/v1/mess%0Aages"):
        response = gateway.call(path, {"model": "gpt-4o"}, key)
        assert response.status_code == 404, path
        body = json.loads(response.body)
        assert body["error"]["type"] == "not_found_error", body
        assert response.headers["X-Tollgate-Call-Id"]
    assert not upstream.requests
