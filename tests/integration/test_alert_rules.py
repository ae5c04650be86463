"""Alerts people trust, against moto on a simulated clock: one incident is one alert, hysteresis, escalation once
per step, forecasts only on enough data, expensive calls that resolve, failed-auth bursts, manual resolve, test
notifications, and the fatigue budget of a scripted day."""
import itertools
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import pytest

from chalicelib.alerting import measure as evaluation
from chalicelib.ledger import calllog, signals
from chalicelib.ledger.models import Alert
from local.pump import StreamPump
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import reload_settings
from tests.integration.helpers import sns_messages

DAY = datetime(2025, 3, 4, tzinfo=timezone.utc)  # a Tuesday
_numbers = itertools.count(1)


def at(hour, minute=0, second=0, day=0):
    return DAY + timedelta(days=day, hours=hour, minutes=minute, seconds=second)


def log_call(ts, account="acme", key=None, provider="openai", model="gpt-4o", status=200, cost="0.001", latency=300):
    n = next(_numbers)
    record = calllog.new_record(
        f"call_{n:06d}", ts, account, provider=provider, endpoint="chat/completions", model=model,
        key_id=key or f"key-{account}", status=status, error_type=None if status < 400 else "server_error",
        input_tokens=100, output_tokens=10, cost_usd=Decimal(cost), priced=True, latency_ms=latency)
    assert calllog.write(record) == "written"


def calls(start, count, errors=0, minutes=4, **fields):
    """`count` calls spread over `minutes` from `start`, `errors` of them failed (spread too)."""
    failing = {int(j * count / errors) for j in range(errors)} if errors else set()
    for i in range(count):
        log_call(start + timedelta(seconds=i * minutes * 60 / count), status=500 if i in failing else 200, **fields)


def evaluate_at(ts):
    return evaluation.evaluate(now=ts)


def events(sink, words, path="/webhook"):
    """(event, severity, title) of the messages whose title holds `words`."""
    return [(m["event"], m["severity"], m["title"]) for m in sink.at(path) if words in m["title"]]


def put_budget(gateway, budget_id, **body):
    status, view = gateway.admin("put", f"/admin/budgets/{budget_id}", body)
    assert status == 200, view


def dashboard(gateway, method, path, key=ADMIN_KEY, body=None, actor=None):
    headers = {"X-Dashboard-Key": key, **({"X-Tollgate-Actor": actor} if actor else {})}
    response = getattr(gateway.client.http, method)(path, headers=headers,
                                                    body=json.dumps(body) if body is not None else None)
    return response.status_code, json.loads(response.body)


@pytest.fixture
def pump(aws_env, tmp_path):
    from app import rollup_calls

    streams = boto3.client("dynamodbstreams")
    arn = boto3.client("dynamodb").describe_table(TableName="tollgate-dev-calls")["Table"]["LatestStreamArn"]
    return StreamPump(streams, arn, rollup_calls, tmp_path / "checkpoints.json",
                      dead_letter=lambda record, reason: pytest.fail(reason))


# --- one incident, one alert --------------------------------------------------------------------------

def test_a_two_hour_incident_is_one_alert_not_one_per_hour(gateway, channels, sink, pump):
    """Errors on openai from 10:20 to 12:20, looked at every 10 minutes: one alert, no "resolved" at 11:00 or
    12:00 (the alert id used to hold the clock hour), and the model and global scopes do not add their own."""
    for minutes in range(0, 121, 10):
        now = at(10, 20 + minutes)
        calls(now - timedelta(minutes=4), 30, errors=12)  # 40 %
        pump.drain()
        evaluate_at(now + timedelta(seconds=30))
    assert [event for event, _, title in events(sink, "Error rate") if "openai" in title] == ["alert.opened"]
    assert events(sink, "Error rate") == [("alert.opened", "critical", "Error rate 40% on provider openai")]
    [alert] = [a for a in Alert.scan() if a.rule == "error_rate"]
    assert alert.state == "open" and alert.period is None and alert.scope_id == "openai"


def test_a_condition_resolves_only_after_staying_clear_for_the_hold_time(gateway, channels, sink, pump):
    """Hysteresis: one clear look does not resolve; firing again inside the hold keeps the same alert open;
    clear for the whole hold (15 minutes) resolves it, with one message that says so."""
    calls(at(10, 0), 30, errors=12)
    pump.drain()
    evaluate_at(at(10, 4, 30))  # fires
    calls(at(10, 10), 30)
    pump.drain()
    evaluate_at(at(10, 14, 30))  # clear once: the hold starts
    [alert] = [a for a in Alert.scan() if a.rule == "error_rate" and a.scope_id == "openai"]
    assert alert.state == "open"
    assert alert.clear_since == "2025-03-04T10:14:30Z"
    calls(at(10, 20), 30, errors=12)
    pump.drain()
    evaluate_at(at(10, 24, 30))  # fires again within the hold: still the same alert, the hold starts over
    assert Alert.get(alert.alert_id).clear_since is None
    for minute in (34, 44):
        evaluate_at(at(10, minute, 30))  # quiet: clear for 10, then 20... minutes
    assert Alert.get(alert.alert_id).state == "open"  # clear since 10:34:30, only 10 minutes
    evaluate_at(at(10, 54, 30))
    assert Alert.get(alert.alert_id).state == "resolved"
    assert [event for event, _, _ in events(sink, "openai")] == ["alert.opened", "alert.resolved"]
    assert "stayed under 5 %" in Alert.get(alert.alert_id).resolution.replace("5%", "5 %")


def test_escalation_updates_the_same_alert_and_notifies_once_per_step(gateway, channels, sink, pump):
    """6 % → 12 % → 30 %: medium, high, critical, each message once however often it is evaluated; falling
    back to 12 % sends nothing."""
    for block, errors in enumerate((3, 6, 15, 6)):  # of 50 calls
        start = at(10, 10 * block)
        calls(start, 50, errors=errors)
        pump.drain()
        evaluate_at(start + timedelta(minutes=4, seconds=20))
        evaluate_at(start + timedelta(minutes=4, seconds=40))
    assert events(sink, "openai") == [("alert.opened", "medium", "Error rate 6% on provider openai"),
                                          ("alert.escalated", "high", "Error rate 12% on provider openai"),
                                          ("alert.escalated", "critical", "Error rate 30% on provider openai")]
    [alert] = [a for a in Alert.scan() if a.rule == "error_rate"]
    assert alert.level == 3 and alert.severity == "critical" and alert.escalated_at == "2025-03-04T10:24:20Z"


# --- budgets and the forecast ----------------------------------------------------------------------------

def test_the_four_messages_of_the_report_become_the_three_that_are_true(gateway, channels, sink, pump):
    """The report: a $0.001 hard daily budget at 50 / 100 %, six calls at 02:50 UTC. Slack used to get 50 %, a
    forecast from 3 minutes of data, 100 %, and "Resolved: projected … the budget period ended or the limit
    was raised" (neither was true). Now: 50 %, 100 %, and at midnight the period's end, as it happened."""
    put_budget(gateway, "tiny", scope="global", period="daily", limit_usd="0.001", thresholds=[0.5, 1.0],
               mode="hard", channels=["slack", "webhook"])
    for second in (0, 20, 40):
        log_call(at(2, 47, second), cost="0.0002")
    pump.drain()
    evaluate_at(at(2, 48, 30))  # $0.0006: 60 %, from 3 minutes of data
    for second in (0, 20, 40):
        log_call(at(2, 49, second), cost="0.0002")
    pump.drain()
    evaluate_at(at(2, 50, 30))  # $0.0012: 120 %
    evaluate_at(at(3, 30))
    evaluate_at(at(0, 0, 30, day=1))  # the period is over
    messages = [m for m in sink.at("/webhook") if "Budget tiny" in m["title"]]
    assert [(m["event"], m["title"]) for m in messages] == [
        ("alert.opened", "Budget tiny at 50 % (all traffic)"),
        ("alert.escalated", "Budget tiny at 100 % (all traffic)"),
        ("alert.resolved", "Resolved: Budget tiny at 100 % (all traffic)")]
    assert messages[2]["message"] == ("The daily period ended at 2025-03-05T00:00:00Z with $0.0012 of "
                                      "$0.001 spent. Calls are allowed again.")
    assert len([m for m in sink.at("/slack") if "Budget tiny" in m["text"]]) == 3
    assert not [a for a in Alert.scan() if a.rule == "budget_forecast"]


def test_a_forecast_waits_for_enough_data_and_closes_quietly_when_it_comes_true(gateway, channels, sink, pump):
    put_budget(gateway, "day", scope="global", period="daily", limit_usd="1", thresholds=[1.0], channels=["webhook"])
    calls(at(0, 30), 30, cost="0.01", minutes=60)  # $0.30 by 01:30: 30 calls, but 6 % of the day gone
    pump.drain()
    evaluate_at(at(1, 30))
    calls(at(5, 0), 30, cost="0.01", minutes=60)  # $0.60 by 06:30: 27 % of the day, 60 calls → $2.22 by midnight
    pump.drain()
    evaluate_at(at(6, 30))
    calls(at(9, 0), 40, cost="0.01", minutes=60)  # $1.00: the limit
    pump.drain()
    evaluate_at(at(10, 30))
    assert [(e, t) for e, _, t in events(sink, "Budget day")] == [
        ("alert.opened", "Budget day projected to exceed (all traffic)"),
        ("alert.opened", "Budget day at 100 % (all traffic)")]
    [forecast] = [a for a in Alert.scan() if a.rule == "budget_forecast"]
    assert forecast.state == "resolved" and forecast.resolution.startswith("Came true: spend reached 100")
    assert "60 calls" in forecast.message and "$2.22 by 2025-03-05T00:00:00Z" in forecast.message


# --- expensive calls -----------------------------------------------------------------------------------

def test_expensive_calls_come_from_the_stream_group_per_key_and_resolve(gateway, channels, sink, pump):
    """Found as the stream delivers them (a long call written 20 minutes after it started is found too), one
    alert per key while they keep coming, closed by an acknowledgement or quietly an hour after the last."""
    now = datetime.now(timezone.utc)
    log_call(now - timedelta(minutes=20), cost="0.75")  # a long call: logged when it ended, with its start time
    log_call(now - timedelta(minutes=1), cost="1.20")
    log_call(now - timedelta(minutes=1), account="globex", cost="0.90")
    pump.drain()
    first = evaluate_at(now)
    opened = {Alert.get(a).scope_id: Alert.get(a) for a in first["opened"] if Alert.get(a).rule == "expensive_call"}
    assert set(opened) == {"key-acme", "key-globex"} and opened["key-acme"].occurrences == 2
    assert opened["key-acme"].title == "A single call cost $1.2"

    status, acked = dashboard(gateway, "post", f"/api/alerts/{opened['key-acme'].alert_id}/ack")
    assert status == 200 and acked["state"] == "resolved" and acked["resolution"] == "Acknowledged by admin."
    _, active = dashboard(gateway, "get", "/api/alerts?state=active")
    assert [a["scope_id"] for a in active["alerts"] if a["rule"] == "expensive_call"] == ["key-globex"]

    log_call(now + timedelta(minutes=2), cost="0.60")  # after the acknowledgement: a new episode, told once
    pump.drain()
    again = evaluate_at(now + timedelta(minutes=3))
    assert opened["key-acme"].alert_id in again["opened"]
    _, history = dashboard(gateway, "get", "/api/alerts?state=resolved")
    assert [a["episode_of"] for a in history["alerts"]] == [opened["key-acme"].alert_id]

    later = evaluate_at(now + timedelta(minutes=3 + 61))  # an hour without another: both close, quietly
    assert set(later["resolved"]) == {opened["key-acme"].alert_id, opened["key-globex"].alert_id}
    titles = [m["title"] for m in sink.at("/webhook") if "cost $" in m["title"]]
    assert sorted(titles) == ["A single call cost $0.6", "A single call cost $0.9", "A single call cost $1.2"]


# --- failed authentication ----------------------------------------------------------------------------

def test_a_burst_of_failed_authentications_alerts_with_the_key_prefixes(gateway, channels, sink, monkeypatch):
    monkeypatch.setattr(signals, "FLUSH_SECONDS", 0)  # each container flushes every few seconds; here at once
    chat = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    for _ in range(25):
        assert gateway.call("/openai/v1/chat/completions", chat, "tg-0123456789ab_revoked-or-wrong").status_code == 401
    for _ in range(5):
        assert gateway.proxy.post("/anthropic/v1/messages", headers={"x-api-key": "sk-ant-oops"},
                                  body=b"{}").status_code == 401
    _, listed = gateway.calls()
    assert listed["calls"] == []  # still no call logged for an unknown caller
    result = evaluation.evaluate()
    [alert] = [Alert.get(a) for a in result["opened"] if Alert.get(a).rule == "auth_failures"]
    assert alert.title == "30 failed authentications in 5 minutes" and alert.severity == "medium"
    assert "tg-0123456789ab (25), sk-a… (5)" in alert.message
    assert [(e, t) for e, _, t in events(sink, "failed authentications")] == [("alert.opened", alert.title)]


# --- people: resolve by hand, test a channel -------------------------------------------------------------

def test_resolve_by_hand_is_told_audited_and_stays_resolved_for_the_period(gateway, channels, sink, pump):
    put_budget(gateway, "acme", scope="account", scope_id="acme", period="daily", limit_usd="1",
               thresholds=[0.5, 0.8], channels=["webhook"])
    now = datetime.now(timezone.utc)
    calls(now - timedelta(minutes=30), 6, cost="0.1", minutes=20)  # $0.60
    pump.drain()
    [alert_id] = [a for a in evaluate_at(now)["opened"] if Alert.get(a).rule == "budget"]
    _, scoped = gateway.admin("post", "/admin/dashboard-keys", {"account": "globex"})
    assert dashboard(gateway, "post", f"/api/alerts/{alert_id}/resolve", key=scoped["key"])[0] == 403
    assert dashboard(gateway, "post", "/api/alerts/al_nope/resolve")[0] == 404
    assert dashboard(gateway, "post", f"/api/alerts/{alert_id}/ack")[0] == 200

    status, view = dashboard(gateway, "post", f"/api/alerts/{alert_id}/resolve", body={"note": "expected: a batch"},
                             actor="Dana")  # the person, as the audit trail records them, with the key used
    assert status == 200 and view["state"] == "resolved" and view["resolved_by"] == "Dana (admin)"
    assert view["resolution"] == "Resolved by Dana (admin): expected: a batch"
    assert dashboard(gateway, "post", f"/api/alerts/{alert_id}/resolve")[0] == 400
    evaluate_at(now + timedelta(minutes=1))  # still at 60 %: stays resolved for this period, the message goes out
    assert Alert.get(alert_id).state == "resolved"
    assert [(e, m["message"]) for e, m in ((m["event"], m) for m in sink.at("/webhook"))] == [
        ("alert.opened", "$0.6 of $1 spent this daily period (ends "
                         f"{(now + timedelta(days=1)).strftime('%Y-%m-%d')}T00:00:00Z)."),
        ("alert.resolved", "Resolved by Dana (admin): expected: a batch")]

    calls(now - timedelta(minutes=5), 3, cost="0.1", minutes=2)  # 90 %: a higher step opens it again
    pump.drain()
    assert alert_id in evaluate_at(now + timedelta(minutes=2))["opened"]
    _, trail = gateway.admin("get", "/admin/audit")
    decisions = [(e["method"], e["path"], e["principal"], e["status"]) for e in trail["entries"]
                 if e["path"].startswith("/api/alerts/")]
    assert decisions == [("POST", f"/api/alerts/{alert_id}/resolve", "admin", 400),
                         ("POST", f"/api/alerts/{alert_id}/resolve", "admin", 200),
                         ("POST", f"/api/alerts/{alert_id}/ack", "admin", 200),
                         ("POST", "/api/alerts/al_nope/resolve", "admin", 404),
                         ("POST", f"/api/alerts/{alert_id}/resolve", "refused", 403)]
    assert next(e for e in trail["entries"] if e["status"] == 200 and e["path"].endswith("/resolve"))["details"] == {
        "note": "expected: a batch"}


def test_a_test_notification_reaches_each_channel(gateway, channels, sink):
    for channel in ("slack", "webhook", "sns"):
        status, body = gateway.admin("post", "/admin/alerts/test", {"channel": channel})
        assert status == 200 and body["channel"] == channel and body["sent"] is True
    assert sink.at("/slack")[0]["attachments"][0]["blocks"][0]["text"]["text"] == "Tollgate test notification"
    assert [(m["event"], m["title"]) for m in sink.at("/webhook")] == [("alert.test", "Tollgate test notification")]
    [published] = sns_messages(channels)
    assert published["Subject"] == "Tollgate test notification" and "receives Tollgate's alerts" in published["Message"]

    assert gateway.admin("post", "/admin/alerts/test", {"channel": "pager"})[0] == 400
    sink.failing.add("/slack")
    status, failed = gateway.admin("post", "/admin/alerts/test", {"channel": "slack"})
    assert status == 502 and failed["error"]["type"] == "delivery_failed"
    _, trail = gateway.admin("get", "/admin/audit")
    assert [e["details"] for e in trail["entries"] if e["path"] == "/admin/alerts/test"][-1] == {"channel": "slack"}


def test_a_test_notification_names_a_channel_that_is_not_configured(gateway, monkeypatch):
    monkeypatch.delenv("TOLLGATE_SLACK_WEBHOOK_URL", raising=False)
    reload_settings()
    status, body = gateway.admin("post", "/admin/alerts/test", {"channel": "slack"})
    assert status == 400 and "not configured" in body["error"]["message"]


# --- the fatigue budget --------------------------------------------------------------------------------

def scripted_day(minute):
    """The calls of one minute of the day, [(count, errors, provider, model)], at $0.002 a call."""
    hour = minute // 60
    if hour < 7 or hour >= 21:  # the night: a call now and then, all fine
        return [(1, 0, "openai", "gpt-4o-mini")] if minute % 20 == 0 else []
    if hour == 10:  # the incident, on openai's busy hours: 1 in 12 calls fails (8 %)...
        return [(1, 0, "anthropic", "claude-haiku-4-5"), (6, 1 if minute % 2 == 0 else 0, "openai", "gpt-4o")]
    if hour == 11:  # ...then 1 in 6 (17 %); at noon it is over
        return [(1, 0, "anthropic", "claude-haiku-4-5"), (6, 1, "openai", "gpt-4o")]
    return [(1, 0, "anthropic" if minute % 2 else "openai", "claude-haiku-4-5" if minute % 2 else "gpt-4o")]


def test_fatigue_budget_of_a_scripted_day(gateway, channels, sink, pump):
    """24 hours of scripted traffic, evaluated every 10 minutes: a 2-hour error incident that escalates once,
    a $3 daily budget crossing 50 / 80 / 100 %, one expensive call, a quiet night. Exactly these messages,
    and the same on every channel."""
    put_budget(gateway, "daily", scope="global", period="daily", limit_usd="3", thresholds=[0.5, 0.8, 1.0])
    for minute in range(24 * 60):
        start = DAY + timedelta(minutes=minute)
        for count, errors, provider, model in scripted_day(minute):
            calls(start, count, errors=errors, minutes=1, provider=provider, model=model, cost="0.002")
        if minute == 8 * 60 + 7:
            log_call(start + timedelta(seconds=30), cost="0.60", model="o1", key="key-research")
        if minute % (10 if 7 <= minute // 60 < 21 else 30) == 9:  # every 10 minutes by day, 30 at night
            pump.drain()
            evaluate_at(start + timedelta(seconds=59))
    sent = [(m["timestamp"][11:16], m["event"], m["title"]) for m in sink.at("/webhook")]
    assert sent == [
        ("08:09", "alert.opened", "A single call cost $0.6"),  # resolves quietly an hour later
        ("10:09", "alert.opened", "Error rate 8% on provider openai"),
        ("10:29", "alert.opened", "Budget daily projected to exceed (all traffic)"),  # closes quietly at 100 %
        ("10:39", "alert.opened", "Budget daily at 50 % (all traffic)"),
        ("11:09", "alert.escalated", "Error rate 17% on provider openai"),
        ("11:39", "alert.escalated", "Budget daily at 80 % (all traffic)"),
        ("12:29", "alert.resolved", "Resolved: Error rate 17% on provider openai"),  # clear since 12:09
        ("14:39", "alert.escalated", "Budget daily at 100 % (all traffic)"),
    ]  # and nothing at night, 21:00 to 07:00
    assert [m["attachments"][0]["blocks"][0]["text"]["text"] for m in sink.at("/slack")] == [t for _, _, t in sent]
    assert sorted(m["Subject"] for m in sns_all(channels)) == sorted(t for _, _, t in sent)
    assert {a.rule: a.state for a in Alert.scan() if "@" not in a.alert_id} == {
        "expensive_call": "resolved", "error_rate": "resolved", "budget_forecast": "resolved", "budget": "open"}


def sns_all(queue):
    """Every message the SNS topic delivered to the queue (read and deleted, 10 at a time)."""
    sqs, found = boto3.client("sqs"), []
    while messages := sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", []):
        for message in messages:
            found.append(json.loads(message["Body"]))
            sqs.delete_message(QueueUrl=queue, ReceiptHandle=message["ReceiptHandle"])
    return found
