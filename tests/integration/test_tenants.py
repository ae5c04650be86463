"""Tenants stay apart: a user budget is one account's, a provider's names are checked like a caller's, and the
export cap holds at any concurrency."""
import json
import threading
from datetime import datetime, timedelta, timezone

from chalicelib.query import Query
from tests.conftest import ADMIN_KEY
from tests.integration.helpers import roll_up, stored_counters

CHAT = {"model": "gpt-4o", "max_tokens": 300, "messages": [{"role": "user", "content": "hi"}]}  # worst case $0.003
OPENAI_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300}  # gpt-4o: $0.006 a call


def chat(gateway, upstream, key, user):
    upstream.enqueue(usage=OPENAI_USAGE)
    return gateway.call("/openai/v1/chat/completions", CHAT, key, headers={"X-Tollgate-User": user})


def budgets_seen(gateway, account):
    _, made = gateway.admin("post", "/admin/dashboard-keys", {"account": account})
    response = gateway.client.http.get("/api/budgets", headers={"X-Dashboard-Key": made["key"]})
    return [b["budget_id"] for b in json.loads(response.body)["budgets"]]


# --- a user budget is one account's ------------------------------------------------------------------------------
def test_a_user_budget_counts_and_refuses_only_its_own_accounts_calls(gateway, upstream):
    acme, other = gateway.new_key(account="acme"), gateway.new_key(account="other")
    status, view = gateway.admin("put", "/admin/budgets/acme-alice", {
        "scope": "user", "scope_id": "alice", "account": "acme", "period": "daily", "limit_usd": "0.01",
        "thresholds": [1.0], "mode": "hard", "channels": []})
    assert status == 200

    for _ in range(5):  # another account's alice: $0.03, three times acme's alice's limit
        answer = chat(gateway, upstream, other, "alice")
        assert answer.status_code == 200 and "X-Tollgate-Budget-Remaining-USD" not in answer.headers
    roll_up()
    answer = chat(gateway, upstream, other, "alice")
    assert answer.status_code == 200, answer.body  # never refused by, nor told of, acme's budget
    assert chat(gateway, upstream, acme, "alice").status_code == 200  # acme's alice has spent nothing yet

    assert chat(gateway, upstream, acme, "alice").status_code == 200  # $0.012 served: over the limit
    roll_up()
    refused = chat(gateway, upstream, acme, "alice")
    assert refused.status_code == 429 and "acme-alice" in json.loads(refused.body)["error"]["message"]
    assert chat(gateway, upstream, acme, "bob").status_code == 200
    assert chat(gateway, upstream, other, "alice").status_code == 200
    assert "acme-alice" in budgets_seen(gateway, "acme") and "acme-alice" not in budgets_seen(gateway, "other")
    assert (view["scope_id"], view["account"]) == ("alice", "acme")


def test_a_user_budget_names_its_account(gateway):
    body = {"scope": "user", "scope_id": "alice", "period": "daily", "limit_usd": "1"}
    status, refused = gateway.admin("put", "/admin/budgets/no-account", body)
    assert status == 400 and "`account`" in refused["error"]["message"]
    status, refused = gateway.admin("put", "/admin/budgets/bad-account", body | {"account": "a\x00b"})
    assert status == 400 and "`account`" in refused["error"]["message"]
    status, refused = gateway.admin("put", "/admin/budgets/not-a-user", {
        "scope": "model", "scope_id": "gpt-4o", "account": "acme", "period": "daily", "limit_usd": "1"})
    assert status == 400 and "`account`" in refused["error"]["message"]


# --- a provider's names pass the caller's check -------------------------------------------------------------------
def test_an_unfit_upstream_error_type_is_logged_under_the_status(gateway, upstream):
    key = gateway.new_key(account="acme")
    for bad in ("bad\ud800type", "bad\x00type\nnext"):
        upstream.enqueue(status=400, body={"error": {"type": bad, "message": "no"}})
        answer = gateway.call("/openai/v1/chat/completions", CHAT, key)
        assert answer.status_code == 400
        call_id = answer.headers["X-Tollgate-Call-Id"]
        response = gateway.client.http.get(f"/api/calls/{call_id}", headers={"X-Dashboard-Key": ADMIN_KEY})
        assert response.status_code == 200, response.body
        assert json.loads(response.body)["error_type"] == "upstream_400"
    roll_up()
    for counters in stored_counters().values():
        assert not any(ch in name for name in counters for ch in "\x00\n")


# --- the export cap ----------------------------------------------------------------------------------------------
def _spec(account="acme"):
    from chalicelib.reports.export_format import ExportSpec

    now = datetime.now(timezone.utc)
    return ExportSpec.from_params(Query({"hours": "24"}), now, account), now


def test_six_concurrent_exports_of_one_account_get_three_slots(gateway, atomic_moto, monkeypatch):
    import time

    from moto.core.botocore_stubber import BotocoreStubber

    from chalicelib.reports import export_jobs

    one_at_a_time = BotocoreStubber.__call__

    def with_latency(self, *args, **kwargs):  # a network's worth of delay, so the requests interleave
        time.sleep(0.01)
        return one_at_a_time(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", with_latency)

    spec, now = _spec()
    accepted, refused, start = [], [], threading.Barrier(6)

    def ask():
        start.wait()
        try:
            accepted.append(export_jobs.create(spec, now).export_id)
        except export_jobs.TooManyExports:
            refused.append(1)

    threads = [threading.Thread(target=ask) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert (len(accepted), len(refused)) == (3, 3)
    assert export_jobs.create(*_spec("globex")).export_id  # another account's slots


def test_a_finished_failed_or_stale_export_frees_its_slot(gateway, atomic_moto):
    from chalicelib.reports import export_jobs

    spec, now = _spec()
    jobs = [export_jobs.create(spec, now) for _ in range(3)]
    try:
        export_jobs.create(spec, now)
        raise AssertionError("a fourth export was accepted")
    except export_jobs.TooManyExports:
        pass
    jobs[0].update(actions=[type(jobs[0]).state.set("ready")])
    fourth = export_jobs.create(spec, now)
    export_jobs.fail(jobs[1], RuntimeError("gone"))
    fifth = export_jobs.create(spec, now)
    assert fourth.export_id != fifth.export_id
    later = now + timedelta(hours=7)  # none of the three queued ones started: stale, shown as failed
    assert len({export_jobs.create(spec, later).export_id for _ in range(3)}) == 3
    try:
        export_jobs.create(spec, later)
        raise AssertionError("a seventh export was accepted")
    except export_jobs.TooManyExports:
        pass
