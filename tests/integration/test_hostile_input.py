"""Hostile input is normal input (issue "No input can stall the rollup"): every value a caller or a provider
sends is bounded and checked; a refusal is a clear 400 in the caller's format, and the call is still logged."""
import asyncio
import json

import httpx
import pytest

from chalicelib.gateway import upstream as upstream_module
from chalicelib.ledger.models import CallRecord
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import reload_settings
from tests.integration.helpers import ROUTES, error_of


def logged():
    return list(CallRecord.scan())


def raw_body(flavour, model_json):
    """The route's body with `model` spelled as raw JSON text (so a lone surrogate escape survives)."""
    path, body = ROUTES[flavour]
    text = json.dumps({**body, "model": "MODEL"}).replace('"MODEL"', model_json)
    return path, text.encode()


@pytest.mark.parametrize("flavour", ROUTES)
@pytest.mark.parametrize("model_json,reason", [
    ('"gpt-4o-mini\\ud800"', "not valid Unicode"),
    (json.dumps("m" * 500_000), "longer than 256"),
    (json.dumps("fault-404-" + "x" * 2100), "longer than 256"),
    (json.dumps("gpt\u0000-4o"), "control characters"),
])
def test_unfit_model_names_are_400_and_logged(gateway, upstream, flavour, model_json, reason):
    key = gateway.new_key()
    path, raw = raw_body(flavour, model_json)
    response = gateway.call(path, None, key, raw=raw)
    assert response.status_code == 400, response.body[:300]
    kind, message = error_of(flavour, response)
    assert kind == "invalid_request_error" and "`model`" in message and reason in message
    assert upstream.requests == []
    [call] = logged()
    assert call.status == 400 and call.error_type == "invalid_request_error" and call.call_id == response.headers[
        "X-Tollgate-Call-Id"]


@pytest.mark.parametrize("headers,reason", [
    ({"X-Tollgate-User": "u" * 10_000}, "longer than 256"),
    ({"X-Tollgate-Tags": "=b"}, "k=v"),
    ({"X-Tollgate-Tags": ",".join(f"k{n}=v" for n in range(1000))}, "X-Tollgate-Tags"),
    ({"X-Tollgate-Session": "a\tb"}, "control characters"),
])
def test_bad_attribution_headers_are_400_and_logged(gateway, upstream, headers, reason):
    key = gateway.new_key()
    response = gateway.call(*ROUTES["openai"], key, headers=headers)
    assert response.status_code == 400 and reason in error_of("openai", response)[1]
    [call] = logged()
    assert call.status == 400 and call.error_type == "invalid_request_error"


def test_utf8_attribution_is_stored_as_written(gateway, upstream):
    key = gateway.new_key()
    response = gateway.call(*ROUTES["openai"], key, headers={
        "X-Tollgate-User": "usér😀".encode(), "X-Tollgate-Tags": "équipe=données".encode()})
    assert response.status_code == 200
    [call] = logged()
    assert call.user == "usér😀" and call.tags.as_dict() == {"équipe": "données"}


@pytest.mark.parametrize("usage", [
    {"prompt_tokens": 1e308, "completion_tokens": 1},
    {"prompt_tokens": 10**40, "completion_tokens": 1},
    {"prompt_tokens": -5, "completion_tokens": 1},
    {"prompt_tokens": 10**12, "completion_tokens": 0},
])
def test_implausible_upstream_usage_is_logged_invalid_and_unpriced(gateway, upstream, usage):
    key = gateway.new_key()
    upstream.enqueue(usage=usage)
    response = gateway.call(*ROUTES["openai"], key)
    assert response.status_code == 200 and "X-Tollgate-Cost-USD" not in response.headers
    [call] = logged()
    assert call.error_type == "usage_invalid" and call.cost_usd is None and not call.priced
    assert call.input_tokens == 0 and not call.usage_reported
    summary = gateway.client.http.get("/api/summary?hours=1", headers={"X-Dashboard-Key": ADMIN_KEY})
    assert summary.status_code == 200


def test_the_largest_plausible_usage_is_priced():
    from chalicelib.gateway.tokens import TokenUsage

    assert TokenUsage(input_tokens=10**12 - 1).plausible() and not TokenUsage(input_tokens=True).plausible()


def test_a_provider_model_name_that_is_unfit_is_not_kept(gateway, upstream):
    def provider(request):
        return httpx.Response(200, json={"model": "x" * 5000, "usage": {"prompt_tokens": 3, "completion_tokens": 1}})

    upstream_module.use_transport(httpx.MockTransport(provider))
    assert gateway.call(*ROUTES["openai"], gateway.new_key()).status_code == 200
    assert logged()[0].model == ROUTES["openai"][1]["model"]  # the model asked for, not the provider's 5,000 chars


def test_an_upstream_html_page_is_served_inert(gateway, upstream):
    def provider(request):
        return httpx.Response(502, text="<script>alert(1)</script>", headers={"Content-Type": "text/html"})

    upstream_module.use_transport(httpx.MockTransport(provider))
    response = gateway.call(*ROUTES["openai"], gateway.new_key())
    assert response.status_code == 502 and response.headers["content-type"].startswith("text/html")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert "sandbox" in response.headers["Content-Security-Policy"]


def test_a_slow_drip_answer_is_cut_at_the_deadline(gateway, upstream, monkeypatch):
    """The read timeout bounds silence; the deadline bounds a whole non-streamed answer (504, logged)."""
    monkeypatch.setenv("TOLLGATE_UPSTREAM_READ_SECONDS", "2")
    monkeypatch.setenv("TOLLGATE_UPSTREAM_DEADLINE_SECONDS", "1.5")
    reload_settings()

    async def drip():
        for _ in range(30):
            await asyncio.sleep(0.2)
            yield b" "

    upstream_module.use_transport(httpx.MockTransport(lambda request: httpx.Response(200, content=drip())))
    response = gateway.call(*ROUTES["openai"], gateway.new_key())
    assert response.status_code == 504 and error_of("openai", response)[0] == "upstream_timeout"
    [call] = logged()
    assert call.status == 504 and call.latency_ms < 3000


def test_deep_json_is_refused_whatever_the_recursion_limit(gateway, upstream):
    """The local stack raises the interpreter's recursion limit for moto; Lambda does not. Same answer both."""
    path, body = ROUTES["openai"]
    raw = json.dumps({**body, "x": "NEST"}).replace('"NEST"', "[" * 1000 + "]" * 1000).encode()
    response = gateway.call(path, None, gateway.new_key(), raw=raw)
    assert response.status_code == 400 and "nested too deeply" in error_of("openai", response)[1]


@pytest.mark.parametrize("method,path,body", [
    ("get", "/api/calls?before=9999-99-99T99:99:99.999999Z~call_", None),
    ("put", "/admin/budgets/b", {"scope": "global", "period": "daily", "limit_usd": "1e999", "thresholds": [1]}),
    ("put", "/admin/budgets/b", {"scope": "global", "period": "daily", "limit_usd": "1.5e308", "thresholds": [1]}),
    ("put", "/admin/budgets/b", {"scope": "account", "scope_id": "a" * 3000, "period": "daily",
                                 "limit_usd": "1", "thresholds": [1]}),
    ("post", "/admin/credits/acme", {"amount_usd": "1e999"}),
    ("post", "/admin/credits/" + "a" * 3000, {"amount_usd": "1"}),
    ("get", "/api/summary?account=" + "a" * 3000, None),
])
def test_api_input_beyond_bounds_is_a_clear_400(gateway, upstream, method, path, body):
    headers = {"Authorization": f"Bearer {ADMIN_KEY}", "X-Dashboard-Key": ADMIN_KEY,
               "Content-Type": "application/json"}
    response = getattr(gateway.client.http, method)(path, headers=headers,
                                                    **({"body": json.dumps(body)} if body else {}))
    assert response.status_code == 400, (path, response.body[:300])
    assert json.loads(response.body)["error"]["message"]


def test_csv_export_neutralises_formulas_behind_a_tab_or_cr(gateway, upstream):
    key = gateway.new_key()
    for _ in range(3):
        gateway.call(*ROUTES["openai"], key, headers={"X-Tollgate-Operation": "ok"})
    records = logged()
    for record, operation in zip(records, ("\t=1+2", "=cmd", "\r@SUM(A1)")):
        record.update(actions=[CallRecord.operation.set(operation)])  # as if stored before the header check
    export = gateway.client.http.get("/api/export?format=csv", headers={"X-Dashboard-Key": ADMIN_KEY})
    body = export.body.decode()
    assert "'\t=1+2" in body and "'=cmd" in body and "'\r@SUM(A1)" in body


def test_the_call_ends_before_the_lambda_invocation_does(gateway, upstream):
    """The Web Adapter passes the invocation's deadline; the proxy keeps 10 s of it to write the record."""
    import time

    key = gateway.new_key()
    upstream.enqueue(usage={"prompt_tokens": 5, "completion_tokens": 5}, event_interval_seconds=0.3)
    lambda_context = json.dumps({"deadline": int((time.time() + 11) * 1000), "request_id": "r-1"})
    response = gateway.call(ROUTES["openai"][0], {**ROUTES["openai"][1], "stream": True}, key,
                            headers={"x-amzn-lambda-context": lambda_context})
    assert response.status_code == 200 and b": tollgate " in response.body  # ended, with its trailer
    [call] = logged()
    assert call.error_type == "stream_interrupted" and 800 <= call.latency_ms < 2500
