"""Hardening: the audit trail, no secrets or prompts in logs, unknown routes, log writes failing at 10 %."""
import hashlib
import json

import pytest

from chalicelib.ledger.models import CallRecord
from local.pump import drain_spill_queue
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "PROMPT-TEXT-never-logged"}]}


def test_every_admin_action_is_audited_with_who_what_and_when(gateway, upstream):
    headers = {"X-Tollgate-Actor": "ops@example.com"}
    status, created = gateway.admin("post", "/admin/keys", {"name": "ci", "account": "acme"})
    gateway.admin("put", "/admin/budgets/b1", {"scope": "global", "period": "daily", "limit_usd": 5})
    gateway.admin("post", "/admin/dashboard-keys", {"account": "acme"})
    gateway.admin("post", "/admin/jobs/reconcile", {"day": "2026-01-01"})
    gateway.admin("delete", "/admin/users/alice")
    gateway.admin("delete", f"/admin/keys/{created['key_id']}")
    gateway.admin("get", "/admin/keys", key="wrong-key")
    gateway.client.http.post("/admin/credits/acme", body=json.dumps({"amount_usd": "5"}),
                             headers={"Authorization": f"Bearer {ADMIN_KEY}", **headers})
    status, trail = gateway.admin("get", "/admin/audit?limit=50")
    assert status == 200
    entries = trail["entries"]  # newest first; this read itself is recorded after it answers
    actions = [(e["method"], e["path"], e["status"], e["principal"]) for e in reversed(trail["entries"])]
    assert actions[:8] == [
        ("POST", "/admin/keys", 201, "admin"), ("PUT", "/admin/budgets/b1", 200, "admin"),
        ("POST", "/admin/dashboard-keys", 201, "admin"), ("POST", "/admin/jobs/reconcile", 200, "admin"),
        ("DELETE", "/admin/users/alice", 200, "admin"), ("DELETE", f"/admin/keys/{created['key_id']}", 200, "admin"),
        ("GET", "/admin/keys", 403, "refused"), ("POST", "/admin/credits/acme", 200, "admin")]
    first = trail["entries"][-1]
    assert first["details"] == {"name": "ci", "account": "acme"} and first["ts"].endswith("Z")
    assert any(e["actor"] == "ops@example.com" for e in entries)
    assert created["key"] not in json.dumps(trail) and ADMIN_KEY not in json.dumps(trail)
    assert gateway.admin("get", "/admin/audit", key="nope")[0] == 403


def test_logs_carry_no_keys_and_no_prompts(gateway, upstream, caplog, dynamo_faults):
    from chalicelib.observability import logger

    caplog.set_level("DEBUG")
    logger.setLevel("DEBUG")
    try:
        key = gateway.new_key()
        gateway.call("/openai/v1/chat/completions", CHAT, key)
        gateway.call("/openai/v1/chat/completions", {**CHAT, "stream": True}, key)
        gateway.call("/anthropic/v1/messages", {**CHAT, "max_tokens": 5}, key)
        gateway.call("/openai/v1/chat/completions", CHAT, "tg-000000000000_bad")
        upstream.enqueue(status=500)
        gateway.call("/openai/v1/chat/completions", CHAT, key)
        dynamo_faults.fail("PutItem", times=100, code="InternalServerError", status=500)
        gateway.call("/openai/v1/chat/completions", CHAT, key)  # spills, and logs why
    finally:
        logger.setLevel("WARNING")
    logs = "\n".join(logger.registered_formatter.format(record) for record in caplog.records)  # as CloudWatch gets them
    assert '"message":"call"' in logs and "spilling" in logs  # the logs were really captured
    for secret in (key, key.split("_", 1)[1], UPSTREAM_KEY, ADMIN_KEY, "PROMPT-TEXT", "mock answer"):
        assert secret not in logs, secret


@pytest.mark.parametrize("method,path", [("get", "/openai/v1/nope"), ("post", "/v1/chat/completions"),
                                         ("get", "/admin/../health"), ("delete", "/api/calls")])
def test_unknown_routes_are_refused_without_a_server_error(gateway, upstream, method, path):
    response = getattr(gateway.client.http, method)(path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert 400 <= response.status_code < 500


def test_a_tenth_of_1000_log_writes_failing_still_logs_every_call_once(gateway, upstream, monkeypatch):
    """10 % of calls find DynamoDB failing for every attempt: they spill; replay logs them exactly once."""
    from tests.integration import conftest as faults_module

    key = gateway.new_key()
    failing = faults_module.DynamoFaults()

    def unlucky(request, operation_model):
        body = request.body.decode() if isinstance(request.body, bytes) else str(request.body)
        if operation_model.name == "PutItem" and "tollgate-dev-calls" in body:
            call_id = json.loads(body)["Item"]["call_id"]["S"]
            if int(hashlib.sha256(call_id.encode()).hexdigest(), 16) % 10 == 0:
                failing.injected["PutItem"] += 1
                failing.failures["PutItem"] = (10**9, "InternalServerError", 500)
                return original_response(request, operation_model)
        return None

    original_response = failing.response_for
    faults_module.install_faults(failing, monkeypatch)
    monkeypatch.setattr(failing, "response_for", unlucky)
    ids = [gateway.call("/openai/v1/chat/completions", CHAT, key).headers["X-Tollgate-Call-Id"] for _ in range(1000)]
    logged_now = len(list(CallRecord.scan()))
    assert 50 <= 1000 - logged_now <= 150  # about a tenth spilled
    monkeypatch.setattr(failing, "response_for", lambda request, operation_model: None)
    replayed = drain_spill_queue()
    assert replayed == {"replayed": 1000 - logged_now, "duplicates": 0}
    logged = [r.call_id for r in CallRecord.scan()]
    assert sorted(logged) == sorted(ids) and len(set(logged)) == 1000
