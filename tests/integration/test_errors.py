"""Bad input and upstream failures: the right status, an error in the caller's format, a logged call."""
import json
import socket
import time

import pytest

from chalicelib.ledger.models import ApiKey, CallRecord
from tests.integration.conftest import reload_settings
from tests.integration.helpers import ROUTES, error_of


def logged():
    return list(CallRecord.scan())


@pytest.mark.parametrize("flavour", ROUTES)
@pytest.mark.parametrize("credentials,message", [
    ({}, "missing API key"),
    ({"Authorization": "Bearer tg-000000000000_nope"}, "invalid API key"),
    ({"x-api-key": "sk-not-a-tollgate-key"}, "invalid API key"),
    ({"Authorization": "Basic abc"}, "missing API key"),
])
def test_missing_or_wrong_key_is_401_and_not_forwarded(gateway, upstream, flavour, credentials, message):
    path, body = ROUTES[flavour]
    response = gateway.proxy.post(path, body=json.dumps(body),
                                        headers={"Content-Type": "application/json", **credentials})
    assert response.status_code == 401
    kind, text = error_of(flavour, response)
    assert kind == "authentication_error" and message in text
    assert upstream.requests == [] and logged() == []


@pytest.mark.parametrize("flavour", ROUTES)
def test_revoked_key_is_refused(gateway, upstream, flavour):
    key = gateway.new_key()
    key_id = key[3:15]
    path, body = ROUTES[flavour]
    assert gateway.call(path, body, key).status_code == 200
    status, _ = gateway.admin("delete", f"/admin/keys/{key_id}")
    assert status == 200
    response = gateway.call(path, body, key)
    assert response.status_code == 401 and "revoked" in error_of(flavour, response)[1]


def test_revocation_elsewhere_lands_within_the_cache_ttl(gateway, upstream, monkeypatch):
    """Another container revoked the key: this one notices once its cached copy expires (5 s here)."""
    key = gateway.new_key()
    path, body = ROUTES["openai"]
    assert gateway.call(path, body, key).status_code == 200
    ApiKey.get(key[3:15]).update(actions=[ApiKey.revoked_at.set("2026-01-01T00:00:00Z")])
    assert gateway.call(path, body, key).status_code == 200  # still cached
    later = time.monotonic() + 6
    monkeypatch.setattr("chalicelib.ledger.auth.time.monotonic", lambda: later)
    assert gateway.call(path, body, key).status_code == 401


def test_dashboard_key_cannot_proxy(gateway, upstream):
    _, dashboard = gateway.admin("post", "/admin/dashboard-keys", {"account": "acme"})
    path, body = ROUTES["openai"]
    assert gateway.call(path, body, dashboard["key"]).status_code == 401


@pytest.mark.parametrize("flavour", ROUTES)
@pytest.mark.parametrize("raw,content_type,message", [
    (b'{"model": "gpt-4o", ', "application/json", "not valid JSON"),
    (b"\xff\xfe{}", "application/json", "not valid UTF-8"),
    (b"[1, 2]", "application/json", "must be a JSON object"),
    (b'{"messages": []}', "application/json", "`model` is required"),
    (b'{"model": "m", "stream": "yes"}', "application/json", "`stream` must be"),
    (b"model=gpt-4o", "application/x-www-form-urlencoded", "Content-Type must be application/json"),
    (b"[" * 100_000 + b"]" * 100_000, "application/json", "nested too deeply"),
])
def test_bad_bodies_are_400_in_the_callers_format_and_logged(gateway, upstream, flavour, raw, content_type,
                                                             message):
    key = gateway.new_key()
    path, _ = ROUTES[flavour]
    response = gateway.proxy.post(path, body=raw, headers={"Authorization": f"Bearer {key}",
                                                                 "Content-Type": content_type})
    assert response.status_code == 400
    kind, text = error_of(flavour, response)
    assert kind == "invalid_request_error" and message in text
    assert upstream.requests == []
    [call] = logged()
    assert call.status == 400 and call.error_type == "invalid_request_error" and not call.upstream_reached


@pytest.mark.parametrize("flavour", ROUTES)
def test_body_too_large_is_413(gateway, upstream, flavour, monkeypatch):
    monkeypatch.setenv("TOLLGATE_MAX_BODY_BYTES", "1000")
    reload_settings()
    key = gateway.new_key()
    path, body = ROUTES[flavour]
    response = gateway.call(path, {**body, "padding": "x" * 2000}, key)
    assert response.status_code == 413
    assert error_of(flavour, response)[0] == "request_too_large"
    assert logged()[0].status == 413


@pytest.mark.parametrize("flavour", ROUTES)
@pytest.mark.parametrize("status", [400, 429, 500, 529])
def test_upstream_errors_pass_through_and_are_logged(gateway, upstream, flavour, status):
    key = gateway.new_key()
    path, body = ROUTES[flavour]
    upstream_error = ({"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
                      if flavour == "anthropic" else
                      {"error": {"type": "server_error", "message": "busy", "param": None, "code": None}})
    upstream.enqueue(status=status, body=upstream_error)
    response = gateway.call(path, body, key)
    assert response.status_code == status and json.loads(response.body) == upstream_error
    [call] = logged()
    assert call.status == status and call.upstream_reached
    assert call.error_type == upstream_error["error"]["type"] and not call.usage_reported and not call.priced


@pytest.mark.parametrize("flavour", ROUTES)
def test_upstream_timeout_is_504_and_logged(gateway, upstream, flavour, monkeypatch):
    monkeypatch.setenv("TOLLGATE_UPSTREAM_READ_SECONDS", "0.3")
    reload_settings()
    key = gateway.new_key()
    path, body = ROUTES[flavour]
    upstream.enqueue(delay_seconds=1.0)
    response = gateway.call(path, body, key)
    assert response.status_code == 504
    assert error_of(flavour, response)[0] == "upstream_timeout"
    [call] = logged()
    assert call.status == 504 and call.error_type == "upstream_timeout" and call.upstream_reached


@pytest.mark.parametrize("flavour", ROUTES)
def test_connection_refused_is_502_and_logged(gateway, upstream, flavour, monkeypatch):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed_port = sock.getsockname()[1]
    monkeypatch.setenv(f"TOLLGATE_{flavour.upper()}_BASE_URL", f"http://127.0.0.1:{closed_port}")
    reload_settings()
    key = gateway.new_key()
    path, body = ROUTES[flavour]
    response = gateway.call(path, body, key)
    assert response.status_code == 502
    kind, text = error_of(flavour, response)
    assert kind == "upstream_unreachable" and "ConnectError" in text
    [call] = logged()
    assert call.status == 502 and not call.upstream_reached


def test_stream_cut_mid_way_logs_the_partial_usage(gateway, upstream):
    key = gateway.new_key()
    upstream.enqueue(usage={"input_tokens": 900, "output_tokens": 40}, drop_stream_after_events=3)
    response = gateway.call("/anthropic/v1/messages", {**ROUTES["anthropic"][1], "stream": True}, key)
    assert response.status_code == 200
    [call] = logged()
    assert call.error_type == "stream_interrupted" and call.input_tokens == 900 and call.priced


def test_redirects_are_not_followed(gateway, upstream):
    key = gateway.new_key()
    upstream.enqueue(status=307, body={"error": {"type": "redirect", "message": "go elsewhere"}})
    response = gateway.call(*ROUTES["openai"], key)
    assert response.status_code == 307 and len(upstream.requests) == 1


def test_openai_stream_cut_before_the_usage_chunk_is_logged_as_unpriced_not_free(gateway, upstream):
    key = gateway.new_key()
    upstream.enqueue(usage={"prompt_tokens": 900, "completion_tokens": 40}, drop_stream_after_events=2)
    body = {**ROUTES["openai"][1], "stream": True}
    response = gateway.call("/openai/v1/chat/completions", body, key)
    assert response.status_code == 200
    assert b"chat.completion.chunk" in response.body
    [call] = logged()
    assert call.error_type == "stream_interrupted" and call.upstream_reached
    # OpenAI reports usage only in the last chunk: unknown usage is flagged and left unpriced,
    # so it shows up as "unpriced" in reports and alerts instead of as a free call.
    assert not call.usage_reported and not call.priced and call.cost_usd is None
    status, listed = gateway.calls(query="?limit=5")
    assert status == 200 and listed["calls"][0]["cost_usd"] is None
    assert listed["calls"][0]["usage_reported"] is False


@pytest.mark.parametrize("flavour", ROUTES)
def test_an_answer_too_large_to_hold_is_a_502_and_logged(gateway, upstream, flavour, monkeypatch):
    """A non-streamed answer is held whole (its cost goes in a header), so its size is bounded."""
    monkeypatch.setenv("TOLLGATE_MAX_ANSWER_BYTES", "100")
    reload_settings()
    key = gateway.new_key()
    path, body = ROUTES[flavour]
    response = gateway.call(path, body, key)
    assert response.status_code == 502 and error_of(flavour, response)[0] == "upstream_answer_too_large"
    [call] = logged()
    assert call.status == 502 and call.error_type == "upstream_answer_too_large" and call.upstream_reached
