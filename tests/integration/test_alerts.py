"""Budgets, hard limits, alerts and their delivery, against moto and a local HTTP sink."""
import json
import re
import threading
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from chalicelib.alerting import measure as evaluation
from chalicelib import clock
from chalicelib.ledger.models import Alert, ApiKey, Delivery
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import reload_settings
from tests.integration.helpers import log, roll_up, sns_messages

CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
OPENAI_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300}  # gpt-4o: $0.006 a call

THRESHOLD_TITLE = re.compile(r"Budget \S+ at \d+ %")  # not the forecast alert, which depends on the hour


def budget_messages(sink, path):
    return [m for m in sink.at(path) if THRESHOLD_TITLE.search(json.dumps(m))]


def put_budget(gateway, budget_id, **body):
    status, view = gateway.admin("put", f"/admin/budgets/{budget_id}", body)
    assert status == 200, view
    return view


def run_evaluate(gateway):
    status, result = gateway.admin("post", "/admin/jobs/evaluate", {})
    assert status == 200, result
    return result


def test_hard_budget_blocks_soon_after_the_spend_crosses_it(gateway, upstream, channels, sink):
    key = gateway.new_key(account="tiny")
    put_budget(gateway, "tiny-daily", scope="account", scope_id="tiny", period="daily", limit_usd="0.01",
               thresholds=[0.5, 1.0], mode="hard", channels=["slack", "webhook", "sns"])
    capped = {**CHAT, "max_tokens": 300}  # a worst case the hard budget can hold: $0.003 at most, not $1.28
    upstream.enqueue(usage=OPENAI_USAGE)
    first = gateway.call("/openai/v1/chat/completions", capped, key)
    assert first.status_code == 200 and first.headers["X-Tollgate-Budget-Remaining-USD"] == "0.004"
    roll_up()  # the rollup adds $0.006: 60 %, not blocked yet
    upstream.enqueue(usage=OPENAI_USAGE)
    assert gateway.call("/openai/v1/chat/completions", capped, key).status_code == 200
    roll_up()  # $0.012: over the limit; the rollup itself blocks the budget

    blocked = gateway.call("/openai/v1/chat/completions", CHAT, key)
    anthropic = gateway.call("/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                        "messages": []}, key)
    assert blocked.status_code == 429 == anthropic.status_code
    assert json.loads(blocked.body)["error"]["code"] == "budget_exceeded"
    assert json.loads(anthropic.body)["error"]["type"] == "budget_exceeded"
    assert "tiny-daily" in json.loads(blocked.body)["error"]["message"]
    assert int(blocked.headers["Retry-After"]) > 0 and blocked.headers["X-Tollgate-Budget-Id"] == "tiny-daily"
    other = gateway.new_key(account="someone-else")
    assert gateway.call("/openai/v1/chat/completions", CHAT, other).status_code == 200

    result = run_evaluate(gateway)  # 50 % and 100 % crossed since the last run: one alert, at 100 %
    assert len(result["opened"]) == 1 and result["delivered"]["sent"] == 3
    assert [(m["severity"], m["title"]) for m in sink.at("/webhook")] == [
        ("critical", "Budget tiny-daily at 100 % (account tiny)")]
    assert "blocked" in sink.at("/webhook")[0]["message"]
    assert len(sink.at("/slack")) == 1 and len(sns_messages(channels)) == 1
    again = run_evaluate(gateway)
    assert again["opened"] == [] and again["delivered"]["sent"] == 0 and len(sink.at("/slack")) == 1

    _, view = gateway.calls(query="?account=tiny&limit=1")
    assert view["calls"][0]["status"] == 429 and view["calls"][0]["error_type"] == "budget_exceeded"


def test_budgets_report_spend_percent_state_and_forecast(gateway, upstream):
    for n in range(3):
        log(n, 0, account="acme", cost="2.5")
    roll_up()
    put_budget(gateway, "acme-monthly", scope="account", scope_id="acme", period="monthly", limit_usd=100)
    put_budget(gateway, "gpt4o-tokens", scope="model", scope_id="gpt-4o", period="window", window_minutes=60,
               limit_tokens=400, thresholds=[0.8])
    body = json.loads(gateway.client.http.get("/api/budgets", headers={"X-Dashboard-Key": ADMIN_KEY}).body)
    money, tokens = sorted(body["budgets"], key=lambda b: b["budget_id"])
    assert money["spent"] == "7.5" and money["percent"] == 7.5 and money["state"] == "ok"
    assert Decimal(money["forecast"]) >= Decimal("7.5") and money["unit"] == "usd"
    assert money["forecast_ready"] is False and money["projected_to_exceed"] is False  # 3 calls: too few to say
    assert tokens["spent"] == 495 and tokens["state"] == "exceeded" and tokens["unit"] == "tokens"
    _, scoped = gateway.admin("post", "/admin/dashboard-keys", {"account": "globex"})
    other = json.loads(gateway.client.http.get("/api/budgets", headers={"X-Dashboard-Key": scoped["key"]}).body)
    assert other["budgets"] == []
    assert gateway.admin("delete", "/admin/budgets/acme-monthly")[0] == 200
    assert gateway.admin("delete", "/admin/budgets/acme-monthly")[0] == 404
    assert gateway.admin("put", "/admin/budgets/x", {"scope": "global"})[0] == 400


def test_concurrent_evaluators_open_each_alert_once(gateway, upstream, channels, sink, atomic_moto):
    log(1, 0, cost="3")
    roll_up()
    put_budget(gateway, "global-daily", scope="global", period="daily", limit_usd=4,
               thresholds=[0.25, 0.5, 0.75], channels=["slack", "webhook"])
    now = datetime.now(timezone.utc)
    results, errors = [], []

    def evaluate_once():
        try:
            results.append(evaluation.evaluate(now=now))
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=evaluate_once) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    opened = [a for r in results for a in r["opened"] if Alert.get(a).rule == "budget"]
    assert len(opened) == 1  # all three thresholds at once: one alert, at the highest
    [alert] = [a for a in Alert.scan() if a.rule == "budget"]
    assert alert.level == 3 and alert.threshold == "0.75" and alert.severity == "medium"
    # one outbox row per alert and channel (DynamoDB-enforced); sending is at least once, and moto's
    # in-process conditions are not atomic across threads, so count distinct messages received
    rows = [d for d in Delivery.scan() if d.delivery_id.startswith(alert.alert_id)]
    assert sorted(d.channel for d in rows) == ["slack", "webhook"]
    assert len({m["text"] for m in budget_messages(sink, "/slack")}) == 1
    assert len({m["title"] for m in budget_messages(sink, "/webhook")}) == 1


def test_acknowledge_then_auto_resolve_when_the_period_ends(gateway, upstream, channels, sink):
    log(1, 0, cost="3")
    roll_up()
    put_budget(gateway, "global-daily", scope="global", period="daily", limit_usd=4, thresholds=[0.5],
               channels=["webhook"])
    today = datetime.now(timezone.utc)
    opened = evaluation.evaluate(now=today)["opened"]
    [alert_id] = [a for a in opened if Alert.get(a).rule == "budget"]
    response = gateway.client.http.post(f"/api/alerts/{alert_id}/ack", headers={"X-Dashboard-Key": ADMIN_KEY})
    assert response.status_code == 200 and json.loads(response.body)["state"] == "acknowledged"
    again = gateway.client.http.post(f"/api/alerts/{alert_id}/ack", headers={"X-Dashboard-Key": ADMIN_KEY})
    assert again.status_code == 400 and "acknowledged" in json.loads(again.body)["error"]["message"]
    _, scoped = gateway.admin("post", "/admin/dashboard-keys", {"account": "globex"})
    denied = gateway.client.http.post(f"/api/alerts/{alert_id}/ack", headers={"X-Dashboard-Key": scoped["key"]})
    assert denied.status_code == 403
    def listed(state):
        body = gateway.client.http.get(f"/api/alerts?state={state}", headers={"X-Dashboard-Key": ADMIN_KEY}).body
        return [a["alert_id"] for a in json.loads(body)["alerts"]]

    assert alert_id in listed("acknowledged") and alert_id in listed("active") and alert_id not in listed("open")

    tomorrow = today.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1, hours=1)
    resolved = evaluation.evaluate(now=tomorrow)
    assert alert_id in resolved["resolved"] and Alert.get(alert_id).state == "resolved"
    assert [m["event"] for m in budget_messages(sink, "/webhook")] == ["alert.opened", "alert.resolved"]
    assert budget_messages(sink, "/webhook")[1]["title"].startswith("Resolved:")
    history = json.loads(gateway.client.http.get("/api/alerts?state=all", headers={"X-Dashboard-Key": ADMIN_KEY}).body)
    assert {a["alert_id"]: a["state"] for a in history["alerts"]}[alert_id] == "resolved"
    assert alert_id in listed("resolved") and alert_id not in listed("active")
    [view] = [a for a in history["alerts"] if a["alert_id"] == alert_id]
    assert view["duration_seconds"] > 0 and "period ended" in view["resolution"]
    assert evaluation.evaluate(now=tomorrow)["resolved"] == []


def test_one_channel_down_delays_only_that_channel(gateway, upstream, channels, sink):
    log(1, 0, cost="3")
    roll_up()
    put_budget(gateway, "g", scope="global", period="daily", limit_usd=4, thresholds=[0.5, 0.6],
               channels=["slack", "webhook"])
    sink.failing.add("/slack")
    first = run_evaluate(gateway)
    assert first["delivered"]["failed"] == 1 and len(budget_messages(sink, "/webhook")) == 1
    assert sink.at("/slack") == []
    pending = [d for d in Delivery.scan() if d.channel == "slack"]
    assert {d.status for d in pending} == {"pending"} and max(d.attempts for d in pending) == 1
    assert any(d.last_error for d in pending)
    sink.failing.clear()
    second = run_evaluate(gateway)
    assert len(budget_messages(sink, "/slack")) == 1 and len(budget_messages(sink, "/webhook")) == 1
    assert second["delivered"]["failed"] == 0


def opened_rules(result):
    return sorted(Alert.get(a).rule for a in result["opened"])


def test_expensive_calls_on_one_key_are_one_alert(gateway, upstream, channels, sink):
    log(1, 0, cost="0.75")  # both over the $0.50 default, on key-acme
    log(8, 0, cost="0.6")
    roll_up()
    result = run_evaluate(gateway)
    assert opened_rules(result) == ["expensive_call"]  # both calls: one alert
    [expensive] = [Alert.get(a) for a in result["opened"]]
    assert expensive.scope_id == "key-acme" and expensive.occurrences == 2 and "$0.75" in expensive.title


def test_a_run_of_failures_on_a_key_alerts_and_resolves_after_the_hold(gateway, upstream, channels, sink):
    for n in range(2, 8):  # few calls: too few for an error rate, so the key's run of failures is what shows
        log(n, 0, account="flaky", status=500, cost="0")  # six errors in a row on key-flaky
    roll_up()
    assert opened_rules(run_evaluate(gateway)) == ["consecutive_errors"]

    log(9, 0, account="flaky", cost="0")  # the key recovers
    roll_up()
    assert run_evaluate(gateway)["resolved"] == []
    [streak] = [a for a in Alert.scan() if a.rule == "consecutive_errors"]
    assert streak.state == "open" and streak.clear_since  # a condition resolves after its hold (15 min)
    after_hold = evaluation.evaluate(now=datetime.now(timezone.utc) + timedelta(minutes=16))
    assert [Alert.get(a).rule for a in after_hold["resolved"]] == ["consecutive_errors"]
    assert Alert.get(streak.alert_id).resolution.startswith("No run of 5 failed calls on key key-flaky")


def test_daily_cost_alerts_at_the_tier_it_passed(gateway, upstream, channels, sink, monkeypatch):
    monkeypatch.setenv("TOLLGATE_ALERT_RULES", json.dumps({"daily_cost_tiers": [[1, "medium"], [2, "high"]]}))
    reload_settings()
    for n, cost in enumerate(("0.45", "0.3", "0.4")):  # $1.15 today, no call over the expensive-call threshold
        log(n, 0, cost=cost)
    roll_up()
    result = run_evaluate(gateway)
    assert opened_rules(result) == ["daily_cost"]
    [alert] = [Alert.get(a) for a in result["opened"]]
    assert (alert.level, alert.severity, alert.title) == (1, "medium", "Daily cost passed $1")


def test_credits_running_low_alert_and_a_top_up_resolves_it_at_once(gateway, upstream, channels, sink):
    for n in range(3):
        log(n, 0, cost="0.45")  # $1.35 used, no call over the expensive-call threshold
    roll_up()
    gateway.admin("post", "/admin/credits/acme", {"amount_usd": "1.45", "note": "trial"})
    assert opened_rules(run_evaluate(gateway)) == ["credits_low"]  # $0.10 left: under 10 %
    credits = json.loads(gateway.client.http.get("/api/credits?account=acme",
                                                 headers={"X-Dashboard-Key": ADMIN_KEY}).body)["credits"][0]
    assert credits["allocated_usd"] == "1.45" and credits["used_usd"] == "1.35" and credits["remaining_usd"] == "0.1"
    assert [t["note"] for t in credits["transactions"]] == ["trial"]

    gateway.admin("post", "/admin/credits/acme", {"amount_usd": "10"})
    later = run_evaluate(gateway)
    assert [Alert.get(a).rule for a in later["resolved"]] == ["credits_low"]  # topped up: at once


def test_no_daily_digest_for_a_day_before_the_first_key(gateway, upstream, channels, sink):
    """A fresh install's first digest would report an empty yesterday that Tollgate never saw: none goes out."""
    gateway.admin("post", "/admin/keys", {"name": "today", "account": "acme"})  # the install: today
    status, skipped = gateway.admin("post", "/admin/jobs/digest", {"kind": "daily"})
    assert status == 200 and skipped["queued"] is False and "before the first key" in skipped["skipped"]
    assert sink.at("/slack") == []


def test_digest_is_queued_once_a_day(gateway, upstream, channels, sink):
    yesterday = datetime.now(timezone.utc) - timedelta(days=1)
    ApiKey("installed", key_hash="-", created_at=clock.iso(yesterday - timedelta(days=1))).save()
    log(1, 0, at=yesterday.replace(hour=9), cost="1.25", model="gpt-4o")
    roll_up()
    status, first = gateway.admin("post", "/admin/jobs/digest", {"kind": "daily"})
    assert status == 200 and first["queued"] == 3 and "$1.25" in first["message"]
    assert "gpt-4o $1.25" in first["message"] and len(sink.at("/slack")) == 1
    _, second = gateway.admin("post", "/admin/jobs/digest", {"kind": "daily"})
    assert second["queued"] == 0 and len(sink.at("/slack")) == 1
    _, weekly = gateway.admin("post", "/admin/jobs/digest", {"kind": "weekly"})
    week = "{}-W{:02d}".format(*(datetime.now(timezone.utc) - timedelta(days=7)).isocalendar()[:2])  # the last one
    assert week in weekly["message"] and "None" not in weekly["message"]
    assert sink.at("/webhook")[-1]["event"] == "report.weekly"
    assert gateway.admin("post", "/admin/jobs/digest", {"kind": "hourly"})[0] == 400


def test_a_budget_deleted_while_it_is_evaluated_stays_deleted(gateway, monkeypatch):
    """The evaluation reads every budget, measures each, then records its status. A budget deleted in between
    must not come back as a stub of status fields only (an UpdateItem creates what is missing): that stub failed
    every budget list and every evaluation after it."""
    from chalicelib.alerting import budget_store

    put_budget(gateway, "doomed", scope="account", scope_id="acme", period="daily", limit_usd="5")
    measure = budget_store.measure

    def deleted_meanwhile(spec, now):
        status, _ = gateway.admin("delete", "/admin/budgets/doomed")
        assert status in (200, 204)
        return measure(spec, now)

    monkeypatch.setattr(evaluation, "measure", deleted_meanwhile)
    run_evaluate(gateway)
    status, listed = gateway.admin("get", "/admin/budgets")
    assert status == 200 and listed["budgets"] == []
    monkeypatch.setattr(evaluation, "measure", measure)
    run_evaluate(gateway)
