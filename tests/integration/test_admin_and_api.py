"""Admin keys API and the /api/calls + /health JSON API: auth, account scoping, paging, clear 400s."""
import json

import boto3
import pytest

from tests.conftest import ADMIN_KEY

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_admin_routes_need_the_admin_key(gateway, upstream):
    gateway_key = gateway.new_key()
    _, dashboard = gateway.admin("post", "/admin/dashboard-keys", {})
    for method, path, body in (("get", "/admin/keys", None), ("post", "/admin/keys", {"name": "x", "account": "a"}),
                               ("delete", "/admin/keys/abc", None), ("post", "/admin/dashboard-keys", {})):
        assert gateway.admin(method, path, body, key="")[0] == 401
        for wrong in (gateway_key, dashboard["key"], "not-the-admin-key"):
            status, error = gateway.admin(method, path, body, key=wrong)
            assert status == 403 and error["error"]["type"] == "permission_error"


def test_a_key_is_shown_once_and_stored_only_as_a_hash(gateway, upstream):
    status, created = gateway.admin("post", "/admin/keys", {"name": "ci", "account": "acme", "team": "search"})
    assert status == 201 and created["key"].startswith("tg-") and created["active"]
    _, listed = gateway.admin("get", "/admin/keys")
    assert [k["key_id"] for k in listed["keys"]] == [created["key_id"]]
    assert "key" not in listed["keys"][0] and "key_hash" not in listed["keys"][0]
    stored = boto3.client("dynamodb").scan(TableName="tollgate-dev-keys")["Items"]
    assert created["key"] not in json.dumps(stored) and created["key"].split("_", 1)[1] not in json.dumps(stored)


@pytest.mark.parametrize("body,message", [
    (None, "JSON object"), ({"account": "a"}, "`name`"), ({"name": "x"}, "`account`"),
    ({"name": "x", "account": 7}, "`account`"), ({"name": "x" * 200, "account": "a"}, "`name`"),
])
def test_bad_key_requests_are_400(gateway, upstream, body, message):
    status, error = gateway.admin("post", "/admin/keys", body)
    assert status == 400 and message in error["error"]["message"]


def test_bad_json_to_admin_is_400(gateway, upstream):
    response = gateway.client.http.post("/admin/keys", body="{nope", headers={
        "Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"})
    assert response.status_code == 400 and "not valid JSON" in json.loads(response.body)["error"]["message"]


def test_revoking_an_unknown_key_is_404(gateway, upstream):
    status, error = gateway.admin("delete", "/admin/keys/nope")
    assert status == 404 and "nope" in error["error"]["message"]


def test_calls_are_newest_first_and_scoped_to_the_dashboard_keys_account(gateway, upstream):
    acme, globex = gateway.new_key(account="acme"), gateway.new_key(account="globex")
    for key, model in ((acme, "gpt-4o-mini"), (globex, "gpt-4o"), (acme, "gpt-4o")):
        assert gateway.call("/openai/v1/chat/completions", {**CHAT, "model": model}, acme if key == acme else globex
                            ).status_code == 200
    status, everything = gateway.calls()
    assert status == 200 and [c["account"] for c in everything["calls"]] == ["acme", "globex", "acme"]
    assert [c["ts"] for c in everything["calls"]] == sorted((c["ts"] for c in everything["calls"]), reverse=True)

    _, scoped = gateway.admin("post", "/admin/dashboard-keys", {"account": "acme"})
    status, mine = gateway.calls(key=scoped["key"])
    assert status == 200 and {c["account"] for c in mine["calls"]} == {"acme"} and len(mine["calls"]) == 2
    status, other = gateway.calls(key=scoped["key"], query="?account=globex")
    assert status == 403 and "acme" in other["error"]["message"]

    _, filtered = gateway.calls(query="?model=gpt-4o")
    assert {c["model"] for c in filtered["calls"]} == {"gpt-4o"} and len(filtered["calls"]) == 2
    _, by_account = gateway.calls(query="?account=globex&provider=openai")
    assert [c["account"] for c in by_account["calls"]] == ["globex"]


@pytest.mark.parametrize("account", [None, "acme"])
def test_calls_page_with_a_cursor(gateway, upstream, account):
    key = gateway.new_key(account="acme")
    for _ in range(5):
        gateway.call("/openai/v1/chat/completions", CHAT, key)
    scope = f"&account={account}" if account else ""
    seen, cursor = [], None
    while True:
        query = f"?limit=2{scope}" + (f"&before={cursor}" if cursor else "")
        status, page = gateway.calls(query=query)
        assert status == 200 and len(page["calls"]) <= 2
        seen += [c["call_id"] for c in page["calls"]]
        cursor = page["next_before"]
        if not cursor:
            break
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.parametrize("query,message", [("?limit=0", "`limit`"), ("?limit=abc", "`limit`"),
                                           ("?limit=100000", "`limit`"), ("?before=yesterday", "`before`")])
def test_bad_api_parameters_are_400(gateway, upstream, query, message):
    status, error = gateway.calls(query=query)
    assert status == 400 and message in error["error"]["message"]


def test_api_needs_a_dashboard_or_admin_key(gateway, upstream):
    gateway_key = gateway.new_key()
    assert gateway.calls(key="")[0] == 401
    assert gateway.calls(key=gateway_key)[0] == 401
    assert gateway.calls(key="tgd-000000000000_nope")[0] == 401


def test_call_view_has_the_contract_fields(gateway, upstream):
    key = gateway.new_key()
    gateway.call("/openai/v1/chat/completions", CHAT, key)
    _, body = gateway.calls()
    call = body["calls"][0]
    for name in ("call_id", "ts", "provider", "model", "operation", "account", "key_id", "user", "session",
                 "status", "error_type", "input_tokens", "cache_read_tokens", "cache_write_tokens",
                 "output_tokens", "reasoning_tokens", "cost_usd", "latency_ms", "stream"):
        assert name in call
    assert isinstance(call["cost_usd"], str) and call["ts"].endswith("Z")


def test_health_reports_each_component(gateway, upstream):
    response = gateway.client.http.get("/health")
    body = json.loads(response.body)
    assert response.status_code == 200 and body["status"] == "healthy"
    assert {"tollgate-dev-calls", "tollgate-dev-keys", "spill_queue"} <= set(body["components"])


def test_health_is_degraded_when_a_table_is_missing(gateway, upstream):
    boto3.client("dynamodb").delete_table(TableName="tollgate-dev-keys")
    response = gateway.client.http.get("/health")
    body = json.loads(response.body)
    assert response.status_code == 503 and body["status"] == "degraded"
    assert body["components"]["tollgate-dev-keys"]["status"] == "error"


def test_secrets_come_from_ssm_when_a_parameter_is_named(gateway, upstream, monkeypatch):
    from tests.integration.conftest import reload_settings

    monkeypatch.setenv("TOLLGATE_ADMIN_KEY_PARAMETER", "/tollgate/test/admin-key")
    monkeypatch.setenv("TOLLGATE_OPENAI_API_KEY_PARAMETER", "/tollgate/test/openai-api-key")
    reload_settings()
    status, error = gateway.admin("get", "/admin/keys", key="from-ssm")
    assert status == 500 and "aws ssm put-parameter" in error["error"]["message"]

    from chalicelib.secret_store import secrets

    ssm = boto3.client("ssm")
    ssm.put_parameter(Name="/tollgate/test/admin-key", Value="from-ssm", Type="SecureString")
    ssm.put_parameter(Name="/tollgate/test/openai-api-key", Value="sk-upstream-test", Type="SecureString")
    secrets.clear()
    assert gateway.admin("get", "/admin/keys", key="from-ssm")[0] == 200
    status, created = gateway.admin("post", "/admin/keys", {"name": "n", "account": "a"}, key="from-ssm")
    response = gateway.call("/openai/v1/chat/completions", CHAT, created["key"])
    assert response.status_code == 200
    secrets.clear()
