"""Fallbacks through the proxy: a provider's 429, 5xx, silence or unreachability before any byte moves the call
to the rule's next target; the record keeps every attempt and is priced at the provider that answered."""
from decimal import Decimal

from chalicelib.ledger.models import CallRecord

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
USAGE = {"prompt_tokens": 1000, "completion_tokens": 100}
RULE = {"match": {"provider": "openai", "model": "gpt-4o-mini"},
        "targets": [{"provider": "openrouter", "model": "openai/gpt-4o-mini"}]}


def only_call():
    records = list(CallRecord.scan())
    assert len(records) == 1, records
    return records[0]


def with_rule(gateway, rule=RULE, name="mini"):
    status, body = gateway.admin("put", f"/admin/fallbacks/{name}", rule)
    assert status in (200, 201), body


def test_a_429_goes_to_the_next_target_and_the_record_keeps_both_attempts(gateway, upstream):
    with_rule(gateway)
    key = gateway.new_key()
    upstream.enqueue(status=429)
    upstream.enqueue(usage={**USAGE, "cost": "0.000123"})
    response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 200, response.body
    assert response.headers["X-Tollgate-Provider"] == "openrouter"
    assert response.headers["X-Tollgate-Model"] == "openai/gpt-4o-mini"
    assert response.headers["X-Tollgate-Attempts"] == "2"
    assert [r.path for r in upstream.requests] == ["/v1/chat/completions", "/openrouter/v1/chat/completions"]
    assert upstream.requests[1].body["model"] == "openai/gpt-4o-mini"  # only the model is rewritten
    assert upstream.requests[1].body["messages"] == CHAT["messages"]
    call = only_call()
    assert call.provider == "openrouter" and call.status == 200
    assert call.cost_usd == Decimal("0.000123")  # the provider that answered: OpenRouter's stated cost
    attempts = [(a.provider, a.model, int(a.status), a.error_type) for a in call.attempts]
    assert attempts == [("openai", "gpt-4o-mini", 429, "upstream_429"),
                        ("openrouter", "openai/gpt-4o-mini", 200, None)]


def test_without_a_rule_a_429_reaches_the_caller(gateway, upstream):
    key = gateway.new_key()
    upstream.enqueue(status=429)
    response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 429
    assert len(upstream.requests) == 1
    assert only_call().attempts is None


def test_a_status_the_rule_does_not_name_is_not_retried(gateway, upstream):
    with_rule(gateway, {**RULE, "on": [429]})
    key = gateway.new_key()
    upstream.enqueue(status=503)
    response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 503 and response.headers["X-Tollgate-Attempts"] == "1"
    assert len(upstream.requests) == 1


def test_an_unreachable_provider_falls_back(gateway, upstream, monkeypatch):
    from tests.integration.conftest import reload_settings

    with_rule(gateway)
    monkeypatch.setenv("TOLLGATE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1")  # nothing listens on the discard port
    reload_settings()
    key = gateway.new_key()
    response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 200
    call = only_call()
    assert [a.error_type for a in call.attempts] == ["upstream_unreachable", None]


def test_every_target_failing_answers_the_last_failure(gateway, upstream):
    with_rule(gateway)
    key = gateway.new_key()
    upstream.enqueue(status=500)
    upstream.enqueue(status=503)
    response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 503
    call = only_call()
    assert [int(a.status) for a in call.attempts] == [500, 503] and call.cost_usd is None


def test_a_started_stream_that_breaks_is_not_replayed(gateway, upstream):
    with_rule(gateway)
    key = gateway.new_key()
    upstream.enqueue(drop_stream_after_events=2)
    response = gateway.call("/openai/v1/chat/completions", {**CHAT, "stream": True}, key)
    assert response.status_code == 200
    assert len(upstream.requests) == 1  # the stream had begun: no second provider was asked
    assert only_call().error_type == "stream_interrupted"


def test_attempts_are_shown_in_the_calls_api(gateway, upstream):
    with_rule(gateway)
    key = gateway.new_key()
    upstream.enqueue(status=429)
    gateway.call("/openai/v1/chat/completions", CHAT, key)
    status, body = gateway.calls()
    assert status == 200
    shown = body["calls"][0]["attempts"]
    assert [a["provider"] for a in shown] == ["openai", "openrouter"]


def test_the_sdk_never_sees_the_429(gateway, upstream):
    """The OpenAI SDK through the proxy app (its own retries off): the 429 is invisible."""
    import openai

    with_rule(gateway)
    key = gateway.new_key()
    upstream.enqueue(status=429)
    client = openai.OpenAI(api_key=key, base_url="http://testserver/openai/v1", max_retries=0,
                           http_client=gateway.proxy.test_client)  # Starlette's TestClient is an httpx.Client
    completion = client.chat.completions.with_raw_response.create(**CHAT)
    assert completion.headers["x-tollgate-provider"] == "openrouter"
    assert completion.parse().choices[0].message.content
