"""Who spent it: calendar ranges and their boundaries, users, sessions, teams, per-model latency, the month's
projection, user budgets; each scoped to an account-scoped key's own account."""
import json
from datetime import datetime, timedelta, timezone

import boto3

from tests.conftest import ADMIN_KEY
from tests.integration.helpers import log, roll_up

NOW = datetime.now(timezone.utc)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)


def get(gateway, path, key=ADMIN_KEY):
    response = gateway.client.http.get(path, headers={"X-Dashboard-Key": key})
    return response.status_code, json.loads(response.body or b"null")


def scoped_key(gateway, account):
    _, made = gateway.admin("post", "/admin/dashboard-keys", {"account": account})
    return made["key"]


def day(offset):
    return (TODAY + timedelta(days=offset)).strftime("%Y-%m-%d")


def test_start_and_end_are_whole_utc_days_both_included(gateway, upstream):
    edge = TODAY - timedelta(days=3)
    before, first = edge - timedelta(microseconds=1), edge  # the day before `start` ends; `start` begins
    last, after = edge + timedelta(days=2) - timedelta(microseconds=1), edge + timedelta(days=2)  # `end` ends
    log(1, 0, at=before, cost="1", user="u1", session="s-before")
    log(2, 0, at=first, cost="2", user="u1", session="s-first")
    log(3, 0, at=last, cost="4", user="u1", session="s-last")
    log(4, 0, at=after, cost="8", user="u1", session="s-after")
    roll_up()
    query = f"start={day(-3)}&end={day(-2)}"
    status, summary = get(gateway, f"/api/summary?{query}")
    assert status == 200 and summary["cost_usd"] == "6" and summary["calls"] == 2
    assert (summary["start"], summary["end"], summary["resolution"]) == (day(-3), day(-2), "1d")
    _, daily = get(gateway, f"/api/usage/daily?{query}")
    assert [(d["day"], d["cost_usd"]) for d in daily["daily"]] == [(day(-3), "2"), (day(-2), "4")]
    _, one_day = get(gateway, f"/api/usage/daily?start={day(-4)}&end={day(-4)}")
    assert [(d["day"], d["cost_usd"]) for d in one_day["daily"]] == [(day(-4), "1")]
    _, users = get(gateway, f"/api/usage/users?{query}&account=acme")
    assert [(u["user"], u["cost_usd"]) for u in users["users"]] == [("u1", "6")]
    _, everyone = get(gateway, f"/api/usage/users?{query}")
    assert [(u["user"], u["cost_usd"]) for u in everyone["users"]] == [("u1", "6")]
    _, sessions = get(gateway, f"/api/sessions?user=u1&{query}")
    assert [s["session"] for s in sessions["sessions"]] == ["s-last", "s-first"]
    assert get(gateway, f"/api/summary?start={day(-2)}&end={day(-3)}")[0] == 400
    assert get(gateway, f"/api/summary?start={day(-3)}")[0] == 200  # through today
    assert get(gateway, f"/api/summary?end={day(-3)}")[0] == 400
    assert get(gateway, "/api/summary?start=2026-02-30&end=2026-03-01")[0] == 400
    assert get(gateway, "/api/summary?hours=24&month=2026-11")[0] == 400
    assert get(gateway, "/api/summary?start=2020-01-01&end=2021-06-01")[0] == 400  # over 366 days


def test_a_month_is_its_first_to_its_last_day(gateway, upstream):
    first = TODAY.replace(day=1)
    last_of_previous = first - timedelta(microseconds=1)
    log(1, 0, at=last_of_previous, cost="1")
    log(2, 0, at=first, cost="2")
    roll_up()
    month, previous = first.strftime("%Y-%m"), last_of_previous.strftime("%Y-%m")
    _, this = get(gateway, f"/api/summary?month={month}")
    _, before = get(gateway, f"/api/usage/daily?month={previous}")
    assert this["cost_usd"] == "2" and this["month"] == month
    assert [d["cost_usd"] for d in before["daily"]] == ["1"] and before["to"] == last_of_previous.strftime("%Y-%m-%d")
    assert get(gateway, "/api/summary?month=2026-13")[0] == 400 and get(gateway, "/api/summary?month=26-01")[0] == 400
    _, forecast = get(gateway, f"/api/forecast?month={month}")
    assert forecast["month_to_date_usd"] == "2"  # the previous month's last moment is not this month's
    _, points = get(gateway, f"/api/usage/timeseries?interval=1h&start={previous}-01&end={last_of_previous:%Y-%m-%d}")
    assert points["points"][-1]["ts"] == last_of_previous.strftime("%Y-%m-%dT23:00:00Z")
    assert points["points"][-1]["cost_usd"] == "1" and sum(p["calls"] for p in points["points"]) == 1


def test_users_by_cost_with_account_and_team_scoping(gateway, upstream):
    log(1, 5, user="alice", cost="0.30", team="search")
    log(2, 6, user="bob", cost="0.10", team="search")
    log(3, 7, user="bob", cost="0.10", team="ads")
    log(4, 8, user="carol", cost="5", account="globex")
    roll_up()
    _, all_users = get(gateway, "/api/usage/users?days=1")
    assert [(u["user"], u["cost_usd"]) for u in all_users["users"]] == [("carol", "5"), ("alice", "0.3"),
                                                                         ("bob", "0.2")]
    _, acme = get(gateway, "/api/usage/users?days=1&account=acme")
    assert [(u["user"], u["account"], u["calls"]) for u in acme["users"]] == [("alice", "acme", 1), ("bob", "acme", 2)]
    assert acme["users"][0]["tokens"] == {"input_tokens": 100, "cache_read_tokens": 50, "cache_write_tokens": 0,
                                          "output_tokens": 10, "reasoning_tokens": 5, "total": 165}
    _, search = get(gateway, "/api/usage/users?days=1&team=search")
    assert [(u["user"], u["cost_usd"]) for u in search["users"]] == [("alice", "0.3"), ("bob", "0.1")]
    key = scoped_key(gateway, "globex")
    _, mine = get(gateway, "/api/usage/users?days=1", key=key)
    assert [u["user"] for u in mine["users"]] == ["carol"]
    assert get(gateway, "/api/usage/users?account=acme", key=key)[0] == 403
    _, limited = get(gateway, "/api/usage/users?days=1&limit=1")
    assert len(limited["users"]) == 1 and limited["truncated"] is True


def test_a_users_sessions_and_a_sessions_calls(gateway, upstream):
    log(1, 30, user="alice", session="s-1", cost="0.01")
    log(2, 20, user="alice", session="s-1", cost="0.02")
    log(3, 10, user="alice", session="s-2", cost="0.04")
    log(4, 5, user="alice", session="s-1", cost="0.08", account="globex")  # another tenant's alice and s-1
    log(5, 5, user="bob", session="s-3", cost="0.16")
    roll_up()
    _, sessions = get(gateway, "/api/sessions?user=alice&days=1&account=acme")
    assert [(s["session"], s["calls"], s["cost_usd"]) for s in sessions["sessions"]] == [("s-2", 1, "0.04"),
                                                                                         ("s-1", 2, "0.03")]
    assert sessions["sessions"][1]["first_ts"] < sessions["sessions"][1]["last_ts"]
    status, one = get(gateway, "/api/sessions/s-1?account=acme")
    assert status == 200 and (one["user"], one["account"]) == ("alice", "acme")
    tokens = {"input_tokens": 200, "cache_read_tokens": 100, "cache_write_tokens": 0, "output_tokens": 20,
              "reasoning_tokens": 10, "total": 330}  # the object by kind, as in every report
    assert one["totals"] == {"calls": 2, "errors": 0, "tokens": tokens, "cost_usd": "0.03"}
    assert [c["call_id"] for c in one["calls"]] == ["call_000001", "call_000002"]
    assert get(gateway, "/api/sessions/s-1")[0] == 400  # two accounts use it: name one
    globex = scoped_key(gateway, "globex")
    _, theirs = get(gateway, "/api/sessions/s-1", key=globex)
    assert [c["call_id"] for c in theirs["calls"]] == ["call_000004"] and theirs["totals"]["cost_usd"] == "0.08"
    assert get(gateway, "/api/sessions/s-2", key=globex)[0] == 404
    _, admin_view = get(gateway, "/api/sessions?user=alice&days=1")  # the user's accounts, found by the call log
    assert sorted((s["account"], s["session"]) for s in admin_view["sessions"]) == [
        ("acme", "s-1"), ("acme", "s-2"), ("globex", "s-1")]
    assert get(gateway, "/api/sessions?days=1")[0] == 400  # `user` is required
    assert get(gateway, "/api/sessions/nope?account=acme")[0] == 404


def test_team_filter_with_an_account_key_and_group_by_team(gateway, upstream):
    log(1, 5, team="search", cost="0.5", model="gpt-4o")
    log(2, 6, team="search", cost="0.25", model="gpt-4o-mini")
    log(3, 7, team="search", cost="1", account="globex")
    roll_up()
    key = scoped_key(gateway, "acme")
    _, summary = get(gateway, "/api/summary?days=1&team=search", key=key)
    assert summary["cost_usd"] == "0.75" and summary["filter"] == {"team": "search"}
    _, everyone = get(gateway, "/api/summary?days=1&team=search")
    assert everyone["cost_usd"] == "1.75" and everyone["scope"] == "team"
    _, grouped = get(gateway, "/api/usage/daily?days=1&group_by=team", key=key)
    assert grouped["daily"][0]["groups"]["search"]["cost_usd"] == "0.75"
    _, by_model = get(gateway, "/api/usage/daily?days=1&group_by=model&team=search")
    assert by_model["daily"][0]["groups"]["gpt-4o-mini"]["cost_usd"] == "0.25"
    status, refused = get(gateway, "/api/usage/timeseries?hours=6&team=search", key=key)
    assert status == 400 and "kept by the day" in refused["error"]["message"]


def test_latency_and_first_token_per_model(gateway, upstream):
    log(1, 5, model="gpt-4o", ttft_ms=120, stream=True)
    log(2, 6, model="gpt-4o", status=500)
    log(3, 7, model="claude-haiku-4-5", provider="anthropic")
    roll_up()
    _, models = get(gateway, "/api/usage/models?hours=24")
    rows = {m["model"]: m for m in models["models"]}
    assert rows["gpt-4o"]["calls"] == 2 and rows["gpt-4o"]["success_rate"] == 0.5
    assert rows["gpt-4o"]["ttft_ms"]["p50"] >= 120 and rows["claude-haiku-4-5"]["ttft_ms"]["p50"] is None
    assert rows["gpt-4o"]["latency_ms"]["p95"] >= 202
    _, theirs = get(gateway, "/api/usage/models?hours=24", key=scoped_key(gateway, "globex"))
    assert theirs["models"] == []
    assert get(gateway, "/api/usage/models?days=7")[0] == 400
    yesterday, today = (TODAY - timedelta(days=1)).strftime("%Y-%m-%d"), TODAY.strftime("%Y-%m-%d")
    _, whole_days = get(gateway, f"/api/usage/models?start={yesterday}&end={today}")
    assert {m["model"]: m["calls"] for m in whole_days["models"]} == {"gpt-4o": 2, "claude-haiku-4-5": 1}
    earlier = (TODAY - timedelta(days=2)).strftime("%Y-%m-%d")
    _, before = get(gateway, f"/api/usage/models?start={earlier}&end={earlier}")
    assert before["models"] == [] and before["start"] == earlier


def test_the_months_projection_waits_for_data_and_says_how(gateway, upstream):
    from chalicelib.reports.forecast import MIN_DAYS

    log(1, 5, cost="2")
    roll_up()
    _, forecast = get(gateway, "/api/forecast")
    assert forecast["month_to_date_usd"] == "2" and "rate" in forecast["method"]
    # one call, today: no whole day of data yet (MIN_DAYS), and too few calls: no projection, and why
    assert forecast["projected_usd"] is None and forecast["enough_data"] is False
    assert f"{MIN_DAYS} whole days of data (there are 0)" in forecast["reason"]
    assert forecast["by_provider"]["openai"]["month_to_date_usd"] == "2"
    _, previous = get(gateway, f"/api/forecast?month={(TODAY.replace(day=1) - timedelta(days=1)):%Y-%m}")
    assert previous["month_to_date_usd"] == "0" and previous["projected_usd"] == "0"
    _, theirs = get(gateway, "/api/forecast", key=scoped_key(gateway, "globex"))
    assert theirs["month_to_date_usd"] == "0" and theirs["account"] == "globex"


def test_a_user_budget_counts_that_users_calls(gateway, upstream):
    status, _ = gateway.admin("put", "/admin/budgets/alice-daily", {
        "scope": "user", "scope_id": "alice", "account": "acme", "period": "daily", "limit_usd": "1",
        "thresholds": [0.5], "mode": "soft", "channels": []})
    assert status == 200
    log(1, 1, user="alice", cost="0.6")
    log(2, 1, user="bob", cost="5")
    log(3, 1, user="alice", cost="7", account="globex")  # another account's alice: someone else
    roll_up()
    _, budgets = get(gateway, "/api/budgets")
    [alice] = [b for b in budgets["budgets"] if b["budget_id"] == "alice-daily"]
    assert alice["spent"] == "0.6" and alice["unit"] == "usd"
    status, refused = gateway.admin("put", "/admin/budgets/alice-window", {
        "scope": "user", "scope_id": "alice", "account": "acme", "period": "window", "window_minutes": 60,
        "limit_usd": "1"})
    assert status == 400 and "UTC day" in refused["error"]["message"]


def test_a_session_past_the_session_cost_alerts_once(gateway, upstream, channels, sink):
    from chalicelib.alerting.measure import evaluate
    from chalicelib.ledger import signals
    from chalicelib.ledger.models import Alert

    log(1, 9, user="alice", session="long-chat", cost="3")
    log(2, 8, user="alice", session="short-chat", cost="0.5")
    roll_up()
    assert [a for a in evaluate(now=NOW)["opened"] if Alert.get(a).rule == "session_cost"] == []
    log(3, 7, user="alice", session="long-chat", cost="2.5")  # $5.50 in all: past the $5 default
    roll_up()
    opened = [Alert.get(a) for a in evaluate(now=NOW)["opened"]]
    [alert] = [a for a in opened if a.rule == "session_cost"]
    assert (alert.scope, alert.scope_id, alert.title) == ("session", "acme|long-chat", "A session has cost $5.5")
    log(4, 6, user="alice", session="long-chat", cost="1")  # more spend in the same session: no second alert
    roll_up()
    again = [Alert.get(a) for a in evaluate(now=NOW)["opened"]]
    assert [a for a in again if a.rule == "session_cost"] == []
    # the taken-up marker is keyed by session, not time, so nothing prunes it: it expires with the calls (TTL)
    [marker] = boto3.client("dynamodb").query(
        TableName="tollgate-dev-aggregates", KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": signals.SESSIONS_TAKEN_PK}})["Items"]
    kept = int(marker["expires_at"]["N"]) - NOW.timestamp()
    assert timedelta(days=89) < timedelta(seconds=kept) <= timedelta(days=91)
