"""When a provider fails (issue #28), against moto and the mock upstream over real HTTP: fallback rules through the
admin API, the call record's attempts in the API and the export, provider balances (recorded, and OpenRouter's
read from its API), `/api/providers`, `/health`, and the quota, key and low-balance alerts, each once per incident."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chalicelib.alerting import measure
from chalicelib.ledger import calllog
from chalicelib.ledger.fallback_rules import fallback_cache
from chalicelib.ledger.models import Alert
from tests.conftest import ADMIN_KEY
from tests.integration.helpers import roll_up

RULE = {"match": {"provider": "openai", "model": "gpt-4o-mini"},
        "targets": [{"provider": "openrouter", "model": "openai/gpt-4o-mini"}]}


def api(gateway, path, key=ADMIN_KEY):
    response = gateway.client.http.get(path, headers={"X-Dashboard-Key": key})
    return response.status_code, json.loads(response.body)


def put_raw(gateway, path, raw):
    response = gateway.client.http.put(path, headers={"Authorization": f"Bearer {ADMIN_KEY}",
                                                      "Content-Type": "application/json"}, body=raw)
    return response.status_code, json.loads(response.body)


def log(provider="openrouter", model="openai/gpt-4o-mini", status=200, error_type=None, attempts=None, cost="0.002",
        at=None, reached=True):
    at = at or datetime.now(timezone.utc)
    record = calllog.new_record(
        calllog.new_call_id(at), at, "acme", provider=provider, endpoint="chat/completions",
        model=model, key_id="key-acme", status=status, error_type=error_type, upstream_reached=reached,
        input_tokens=100, output_tokens=10, cost_usd=None if status >= 400 else Decimal(cost), priced=status < 400,
        latency_ms=400, attempts=attempts)
    assert calllog.write(record) == "written"
    return record


def fell_back(first_status=429, error_type="rate_limit_error"):
    return [{"provider": "openai", "model": "gpt-4o-mini", "status": first_status, "error_type": error_type,
             "latency_ms": 120},
            {"provider": "openrouter", "model": "openai/gpt-4o-mini", "status": 200, "error_type": None,
             "latency_ms": 380}]


def slack_titles(sink, words):
    return [m["attachments"][0]["blocks"][0]["text"]["text"] for m in sink.at("/slack")
            if words in m["attachments"][0]["blocks"][0]["text"]["text"]]


# --- fallback rules -----------------------------------------------------------------------------------------

def test_a_fallback_rule_is_put_listed_read_replaced_and_deleted(gateway, aws_calls):
    status, view = gateway.admin("put", "/admin/fallbacks/openai-mini", RULE)
    assert status == 200 and view == {**RULE, "name": "openai-mini",
                                      "on": [429, 500, 502, 503, 504, "timeout", "unreachable"]}
    assert gateway.admin("get", "/admin/fallbacks") == (200, {"fallbacks": [view]})
    assert gateway.admin("get", "/admin/fallbacks/openai-mini") == (200, view)
    status, view = gateway.admin("put", "/admin/fallbacks/openai-mini", {**RULE, "on": [429, "timeout"]})
    assert status == 200 and view["on"] == [429, "timeout"]

    # the proxy's cache: one Query, then none within its TTL, whatever the calls
    fallback_cache.clear()
    before = len(aws_calls)
    for _ in range(5):
        [rule] = fallback_cache.rules()
    assert rule.on == (429, "timeout") and len(aws_calls) - before == 1

    assert gateway.admin("delete", "/admin/fallbacks/openai-mini") == (200, {"name": "openai-mini", "deleted": True})
    assert fallback_cache.rules() == []  # a write empties this container's cache
    status, body = gateway.admin("delete", "/admin/fallbacks/openai-mini")
    assert status == 404 and "no fallback rule" in body["error"]["message"]
    assert gateway.admin("get", "/admin/fallbacks/nope")[0] == 404


@pytest.mark.parametrize("body, says", [
    ({**RULE, "targets": [{"provider": "anthropic", "model": "claude-haiku-4-5"}]}, "wire format"),
    ({**RULE, "targets": [{"provider": "openrouter", "model": f"m{n}"} for n in range(6)]}, "1 to 5"),
    ({**RULE, "match": {"provider": "Open_AI", "model": "gpt-4o"}}, "provider name"),
    ({**RULE, "match": {"provider": "openai", "model": "x" * 257}}, "256"),
    ({**RULE, "on": [418]}, "`on`"),
    ("not an object", "JSON object"),
])
def test_a_bad_rule_is_a_clear_400_and_nothing_is_stored(gateway, body, says):
    status, answer = gateway.admin("put", "/admin/fallbacks/r1", body)
    assert status == 400 and says in answer["error"]["message"], answer
    assert answer["error"]["type"] == "invalid_request_error"
    assert gateway.admin("get", "/admin/fallbacks") == (200, {"fallbacks": []})


def test_hostile_rule_requests(gateway):
    assert put_raw(gateway, "/admin/fallbacks/r1", b'{"match": ')[0] == 400
    lone = b'{"match": {"provider": "openai", "model": "\\ud800"}, "targets": [{"provider": "groq", "model": "m"}]}'
    status, body = put_raw(gateway, "/admin/fallbacks/r1", lone)
    assert status == 400 and "valid Unicode" in body["error"]["message"]
    assert gateway.admin("put", "/admin/fallbacks/" + "n" * 65, RULE)[0] == 400
    assert gateway.admin("put", "/admin/fallbacks/r1", RULE, key="wrong")[0] in (401, 403)
    dashboard = gateway.admin("post", "/admin/dashboard-keys", {})[1]["key"]
    assert gateway.admin("get", "/admin/fallbacks", key=dashboard)[0] in (401, 403)


# --- the record keeps every attempt ---------------------------------------------------------------------------

def test_the_calls_api_and_the_export_show_every_attempt(gateway):
    record = log(attempts=fell_back())
    log(provider="openai", model="gpt-4o-mini")  # one try: no attempts
    status, body = gateway.calls()
    assert status == 200
    by_id = {c["call_id"]: c for c in body["calls"]}
    assert by_id[record.call_id]["attempts"] == fell_back()
    assert [c["attempts"] for c in body["calls"] if c["call_id"] != record.call_id] == [None]
    assert api(gateway, f"/api/calls/{record.call_id}")[1]["attempts"] == fell_back()

    response = gateway.client.http.get("/api/export?format=csv&hours=1", headers={"X-Dashboard-Key": ADMIN_KEY})
    rows = {r["call_id"]: r for r in csv.DictReader(io.StringIO(response.body.decode()))}
    assert json.loads(rows[record.call_id]["attempts"]) == fell_back()
    response = gateway.client.http.get("/api/export?format=json&hours=1", headers={"X-Dashboard-Key": ADMIN_KEY})
    exported = {c["call_id"]: c for c in json.loads(response.body)["calls"]}
    assert exported[record.call_id]["attempts"] == fell_back()


# --- provider balances and /api/providers -------------------------------------------------------------------

def test_a_recorded_balance_loses_the_metered_spend_since_and_shows_days_left(gateway):
    log(provider="openai", model="gpt-4o", cost="4.9", at=datetime.now(timezone.utc) - timedelta(days=2))  # before
    status, view = put_raw(gateway, "/admin/provider-balances/openai",
                           b'{"balance_usd": 10.10000000000000000001, "low_usd": 2}')
    assert status == 400 and "12 decimal places" in view["error"]["message"]  # exact: never rounded through float
    status, view = put_raw(gateway, "/admin/provider-balances/openai", b'{"balance_usd": 10.1, "low_usd": 2}')
    assert status == 200 and (view["balance_usd"], view["low_usd"], view["source"]) == ("10.1", "2", "admin")
    for _ in range(3):
        log(provider="openai", model="gpt-4o", cost="0.7")
    roll_up()
    status, report = api(gateway, "/api/providers")
    assert status == 200
    openai = next(p for p in report["providers"] if p["provider"] == "openai")
    balance = openai["balance"]
    assert (balance["balance_usd"], balance["spent_since_usd"], balance["recorded_usd"]) == ("8", "2.1", "10.1")
    assert balance["daily_rate_usd"] == "1"  # (4.9 + 2.1) / 7 days
    assert balance["days_left"] == 8.0
    assert (openai["calls"], openai["errors"], openai["state"]) == (3, 0, "ok")  # the last 24 hours
    assert gateway.admin("get", "/admin/provider-balances")[1]["balances"][0]["provider"] == "openai"


@pytest.mark.parametrize("raw, says", [
    (b'{"low_usd": 2}', "balance_usd` is required"),
    (b'{"balance_usd": -1}', "balance_usd"),
    (b'{"balance_usd": true}', "balance_usd"),
    (b'{"balance_usd": "1e400"}', "balance_usd"),
    (b'{"balance_usd": 1, "low_usd": "lots"}', "low_usd"),
    (b'{"balance_usd": 1, "extra": 0}', "unknown field"),
    (b'[1]', "JSON object"),
])
def test_a_bad_balance_is_a_clear_400(gateway, raw, says):
    status, body = put_raw(gateway, "/admin/provider-balances/openai", raw)
    assert status == 400 and says in body["error"]["message"], body
    assert put_raw(gateway, "/admin/provider-balances/Open%20AI", b'{"balance_usd": 1}')[0] == 400


def test_providers_report_health_fallbacks_and_is_for_all_account_keys_only(gateway):
    for _ in range(3):
        log(attempts=fell_back())
    log(provider="openai", model="gpt-4o-mini")
    roll_up()
    status, report = api(gateway, "/api/providers?hours=1")
    assert status == 200 and report["hours"] == 1
    rows = {p["provider"]: p for p in report["providers"]}
    assert {"openai", "anthropic", "openrouter"} <= set(rows)
    openai, openrouter = rows["openai"], rows["openrouter"]
    assert (openai["calls"], openai["errors"], openai["fallbacks_taken"], openai["state"]) == (4, 3, 3, "failing")
    assert openai["error_rate"] == 0.75 and openai["latency_ms"]["p95"] is not None
    assert openai["last_success"] is not None and openai["balance"] is None
    assert (openrouter["calls"], openrouter["errors"], openrouter["fallbacks_taken"]) == (3, 0, 0)
    assert rows["anthropic"]["state"] == "idle" and rows["anthropic"]["last_success"] is None
    scoped = gateway.admin("post", "/admin/dashboard-keys", {"account": "acme"})[1]["key"]
    assert api(gateway, "/api/providers", key=scoped)[0] == 403
    assert api(gateway, "/api/providers?hours=49")[0] == 400

    from chalicelib.reports import calls

    calls._health_cache.clear()
    health = json.loads(gateway.client.http.get("/health").body)
    assert health["components"]["providers"] == {"status": "ok", "states": {"openai": "failing", "openrouter": "ok"}}


# --- alerts, once per incident ------------------------------------------------------------------------------

def test_openrouters_credit_endpoint_drives_a_low_balance_alert_once(gateway, channels, sink, upstream):
    upstream.openrouter_credits = ("10", "9.5")  # $0.50 left, under the default $5
    try:
        measure.evaluate()
        measure.evaluate()
        credit_reads = [r for r in upstream.credit_reads if r.path == "/openrouter/v1/credits"]
        assert len(credit_reads) == 2 and credit_reads[0].headers["authorization"].startswith("Bearer ")
        assert slack_titles(sink, "openrouter balance") == ["openrouter balance low: $0.5"]
        _, report = api(gateway, "/api/providers")
        balance = next(p for p in report["providers"] if p["provider"] == "openrouter")["balance"]
        assert (balance["balance_usd"], balance["source"]) == ("0.5", "api")

        upstream.openrouter_credits = ("10", "10")  # used up: escalates once
        measure.evaluate()
        measure.evaluate()
        assert slack_titles(sink, "openrouter balance") == ["openrouter balance low: $0.5",
                                                            "openrouter balance used up: $0"]
        upstream.openrouter_credits = ("60", "10")  # topped up: resolved
        measure.evaluate()
        assert [a.state for a in Alert.scan() if a.rule == "provider_balance_low"] == ["resolved"]
    finally:
        upstream.openrouter_credits = ("100", "0")


def test_a_failed_credit_read_keeps_the_last_balance_and_the_evaluation_goes_on(gateway, channels, sink, upstream):
    upstream.openrouter_credits = ("10", "9.5")
    try:
        measure.evaluate()
        upstream.openrouter_credits = ("oops", "0")  # not JSON: the read fails
        result = measure.evaluate()
        assert result["job"] == "evaluate"
        _, report = api(gateway, "/api/providers")
        assert next(p for p in report["providers"] if p["provider"] == "openrouter")["balance"]["balance_usd"] == "0.5"
        assert len(slack_titles(sink, "openrouter balance")) == 1
    finally:
        upstream.openrouter_credits = ("100", "0")


def test_an_upstream_401_raises_a_critical_alert_at_once_and_once(gateway, channels, sink, upstream):
    key = gateway.new_key()
    upstream.enqueue(status=401, body={"type": "error", "error": {"type": "authentication_error",
                                                                  "message": "invalid x-api-key"}})
    response = gateway.call("/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                       "messages": [{"role": "user", "content": "hi"}]}, key)
    assert response.status_code == 401
    roll_up()
    measure.evaluate()
    measure.evaluate()
    assert slack_titles(sink, "rejected") == ["anthropic rejected Tollgate's API key (401)"]
    [alert] = [a for a in Alert.scan() if a.rule == "provider_key_rejected"]
    assert (alert.severity, alert.scope_id, alert.state) == ("critical", "anthropic", "open")


def test_429s_raise_one_quota_alert_that_counts_fallbacks_and_failures(gateway, channels, sink, upstream):
    for _ in range(3):
        log(attempts=fell_back())
    log(provider="openai", model="gpt-4o-mini", status=429, error_type="rate_limit_error")  # no rule: it failed
    roll_up()
    measure.evaluate()
    log(attempts=fell_back())
    roll_up()
    measure.evaluate()
    [title] = slack_titles(sink, "429")
    assert title == "openai is refusing calls with 429 (quota or rate limit)"
    [alert] = [a for a in Alert.scan() if a.rule == "provider_quota"]
    assert alert.scope_id == "openai" and "3 call(s) fell back to another provider and 1 failed" in alert.message
    assert not [a for a in Alert.scan() if a.rule == "provider_quota" and a.scope_id == "openrouter"]
