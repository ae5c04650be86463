"""Usage reports, jobs and per-user requests over real aggregates (moto), through the Chalice routes."""
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import pytest

from tests.conftest import ADMIN_KEY
from tests.integration.helpers import expected_counters, log, roll_up, stored_counters

NOW = datetime.now(timezone.utc)


def get(gateway, path, key=ADMIN_KEY):
    response = gateway.client.http.get(path, headers={"X-Dashboard-Key": key})
    return response.status_code, json.loads(response.body)


@pytest.fixture
def traffic(gateway):
    calls = [log(1, 10), log(2, 20, model="gpt-4o-mini", cost="0.002"),
             log(3, 30, account="globex", provider="anthropic", model="claude-haiku-4-5", cost="0.5"),
             log(4, 40, status=500, cost="0"), log(5, 400, account="globex"), log(6, 60 * 30, cost="1")]
    roll_up()
    return calls


def test_summary_matches_the_calls(gateway, traffic):
    status, body = get(gateway, "/api/summary?hours=24")
    recent = traffic[:5]
    assert status == 200 and body["calls"] == 5 and body["errors"] == 1 and body["error_rate"] == 0.2
    assert Decimal(body["cost_usd"]) == sum(c.cost_usd for c in recent)
    assert body["tokens"] == {"input_tokens": 500, "cache_read_tokens": 250, "cache_write_tokens": 0,
                              "output_tokens": 50, "reasoning_tokens": 25, "total": 825}
    assert set(body["by_provider"]) == {"openai", "anthropic"} and body["by_model"]["gpt-4o-mini"]["calls"] == 1
    assert 200 <= body["latency_ms"]["p50"] <= 260 and body["resolution"] == "5m"
    _, week = get(gateway, "/api/summary?hours=168")
    assert week["calls"] == 6 and week["resolution"] == "1d" and week["by_model"]["gpt-4o"]["calls"] == 4


def test_account_scoped_key_and_filters(gateway, traffic):
    _, dashboard = gateway.admin("post", "/admin/dashboard-keys", {"account": "globex"})
    status, body = get(gateway, "/api/summary?hours=24", key=dashboard["key"])
    assert status == 200 and body["scope"] == "account" and body["calls"] == 2
    assert get(gateway, "/api/summary?account=acme", key=dashboard["key"])[0] == 403
    _, model = get(gateway, "/api/summary?hours=24&model=gpt-4o")
    assert model["scope"] == "model" and model["calls"] == 3
    _, acme_mini = get(gateway, "/api/summary?hours=24&account=acme&model=gpt-4o-mini")
    assert acme_mini["calls"] == 1 and acme_mini["cost_usd"] == "0.002"


def test_daily_grouped_globally_and_within_an_account(gateway, traffic):
    status, body = get(gateway, "/api/usage/daily?days=3&group_by=model")
    assert status == 200
    totals = {}
    for day in body["daily"]:
        for model, group in day["groups"].items():
            totals[model] = totals.get(model, 0) + group["calls"]
    assert totals == {"gpt-4o": 4, "gpt-4o-mini": 1, "claude-haiku-4-5": 1}
    assert sum(day["calls"] for day in body["daily"]) == 6
    _, keys = get(gateway, "/api/usage/daily?days=3&account=globex&group_by=key")
    assert sum(day["groups"]["key-globex"]["calls"] for day in keys["daily"]) == 2
    _, plain = get(gateway, "/api/usage/daily?days=3")
    assert sum(Decimal(d["cost_usd"]) for d in plain["daily"]) == sum(c.cost_usd for c in traffic)


def test_rolling_window_and_timeseries(gateway, traffic):
    _, window = get(gateway, "/api/usage/window?minutes=300")
    assert window["calls"] == 4 and window["minutes"] == 300  # the call 400 minutes ago is outside
    _, five = get(gateway, "/api/usage/timeseries?hours=2&interval=5m")
    assert sum(p["calls"] for p in five["points"]) == 4 and len(five["points"]) in (24, 25)
    _, hourly = get(gateway, "/api/usage/timeseries?hours=24&interval=1h")
    assert sum(p["calls"] for p in hourly["points"]) == 5
    assert sum(p["by_provider"].get("anthropic", {}).get("calls", 0) for p in hourly["points"]) == 1
    _, week = get(gateway, "/api/usage/timeseries?hours=168&interval=1h")
    assert sum(p["calls"] for p in week["points"]) == 6


@pytest.mark.parametrize("path,message", [
    ("/api/summary?hours=0", "`hours`"), ("/api/summary?hours=x", "`hours`"),
    ("/api/usage/daily?days=999", "`days`"), ("/api/usage/daily?group_by=colour", "`group_by`"),
    ("/api/usage/daily?group_by=model&model=gpt-4o", "cannot be combined"),
    ("/api/usage/timeseries?interval=10m", "`interval`"), ("/api/usage/timeseries?interval=5m&hours=100", "`hours`"),
    ("/api/usage/window?minutes=1", "`minutes`"), ("/api/usage/window?account=a&model=m", "rolling window"),
])
def test_bad_report_parameters_are_400(gateway, upstream, path, message):
    status, body = get(gateway, path)
    assert status == 400 and message in body["error"]["message"]


@pytest.mark.parametrize("path", ["/api/summary", "/api/usage/daily", "/api/usage/timeseries", "/api/usage/window"])
def test_reports_need_a_key(gateway, upstream, path):
    assert get(gateway, path, key="")[0] == 401


REPORTS = ["/api/summary?hours=24", "/api/summary?hours=720", "/api/usage/daily?days=30",
           "/api/usage/daily?days=30&group_by=model", "/api/usage/daily?days=30&account=acme&group_by=key",
           "/api/usage/timeseries?hours=24&interval=5m", "/api/usage/timeseries?hours=168&interval=1h",
           "/api/usage/window?minutes=300"]


def test_dynamodb_requests_per_report_do_not_grow_with_calls(gateway, aws_calls, monkeypatch):
    """Both rounds read as of one instant: a round that crosses an hour reads another part-hour's buckets (the
    count depends on the clock, not on the calls; CI saw 3 then 2 across 13:00)."""
    from chalicelib import clock

    frozen = datetime.now(timezone.utc) + timedelta(minutes=1)
    monkeypatch.setattr(clock, "now", lambda: frozen)

    def requests_per_report():
        counts = {}
        for path in REPORTS:
            aws_calls.clear()
            assert get(gateway, path)[0] == 200, path
            counts[path] = len(aws_calls)
        return counts

    for n in range(10):
        log(n, n * 7)
    roll_up()
    small = requests_per_report()
    for n in range(10, 210):
        log(n, n % 1400, account=f"acct-{n % 7}", model=f"model-{n % 4}")
    roll_up()
    assert requests_per_report() == small
    assert max(small.values()) <= 3, small


def test_a_day_is_read_by_the_hour_with_five_minute_buckets_only_at_its_edge(gateway, monkeypatch):
    """24 hours of traffic in 5-minute buckets is 288 of them per shard; the summary and the window read hours."""
    from chalicelib.rollup import store
    buckets_read = []
    query_range = store._query_range

    def recording(*args, **kwargs):
        items = query_range(*args, **kwargs)
        buckets_read.extend(item["day"].split("~")[0] for item in items if item["day"].startswith("m|"))
        return items

    monkeypatch.setattr(store, "_query_range", recording)
    calls = [log(n, n * 7) for n in range(200)]  # one every 7 minutes over 23 h
    roll_up()
    for path in ("/api/summary?hours=24", "/api/usage/window?minutes=1440"):
        buckets_read.clear()
        _, body = get(gateway, path)
        assert body["calls"] == len(calls), path  # all within the last 23 h 14 min
        assert len(set(buckets_read)) <= 12, (path, len(set(buckets_read)))


def test_recalculate_rebuilds_closed_days_and_reconcile_finds_drift(gateway, upstream):
    three_days_ago = (NOW - timedelta(days=3)).replace(hour=12)
    calls = [log(i, 0, at=three_days_ago + timedelta(minutes=i)) for i in range(1, 6)]
    day = three_days_ago.strftime("%Y-%m-%d")
    status, result = gateway.admin("post", "/admin/jobs/reconcile", {"day": day})
    assert status == 200 and result["drift"] and not result["fixed"]  # nothing rolled up yet
    status, result = gateway.admin("post", "/admin/jobs/recalculate", {"from": day, "to": day})
    assert status == 200 and result["calls"] == 5 and result["days"] == 1
    assert stored_counters() == expected_counters(calls)

    boto3.client("dynamodb").update_item(TableName="tollgate-dev-aggregates",
                                         Key={"pk": {"S": "account#acme"}, "day": {"S": day}},
                                         UpdateExpression="ADD calls :n", ExpressionAttributeValues={":n": {"N": "3"}})
    _, drift = gateway.admin("post", "/admin/jobs/reconcile", {"day": day})
    assert drift["drift"] == [{"scope": "account", "scope_id": "acme", "counter": "calls", "call_log": "5",
                               "aggregates": "8"}]
    _, fixed = gateway.admin("post", "/admin/jobs/reconcile", {"day": day, "fix": True})
    assert fixed["fixed"] and gateway.admin("post", "/admin/jobs/reconcile", {"day": day})[1]["drift"] == []


@pytest.mark.parametrize("job,body,status,message", [
    ("recalculate", {"from": NOW.strftime("%Y-%m-%d")}, 400, "closed days"),
    ("recalculate", {"from": "yesterday"}, 400, "`from`"),
    ("recalculate", {"from": "2026-01-05", "to": "2026-01-01"}, 400, "before"),
    ("explode", {}, 404, "unknown job"),
])
def test_bad_jobs(gateway, upstream, job, body, status, message):
    got, error = gateway.admin("post", f"/admin/jobs/{job}", body)
    assert got == status and message in error["error"]["message"]


def test_user_export_and_erasure_correct_the_aggregates(gateway, upstream):
    alice = [log(1, 5, user="alice"), log(2, 6, user="alice")]
    bob = log(3, 7, user="bob")
    roll_up()
    status, export = gateway.admin("get", "/admin/users/alice/export")
    assert status == 200 and sorted(c["call_id"] for c in export["calls"]) == ["call_000001", "call_000002"]
    status, erased = gateway.admin("delete", "/admin/users/alice")
    assert status == 200 and erased["deleted"] == 2
    roll_up()  # the stream carries the deletions
    assert stored_counters() == expected_counters([bob])
    assert gateway.admin("get", "/admin/users/alice/export")[1]["calls"] == []
    # an erased user leaves no row anywhere: not a row of zeros among the users, the daily groups or by account
    _, users = get(gateway, "/api/usage/users?days=7")
    _, in_acme = get(gateway, f"/api/usage/users?days=7&account={bob.account}")
    _, daily = get(gateway, "/api/usage/daily?days=7&group_by=user")
    assert [u["user"] for u in users["users"]] == [u["user"] for u in in_acme["users"]] == ["bob"]
    assert daily["daily"] and all("alice" not in day["groups"] for day in daily["daily"]), daily
    assert alice and gateway.admin("get", "/admin/users/alice/export", key="nope")[0] == 403
