"""The OpenAPI document is the JSON API's schema (issue #25, item 3): every GET /api route, with a few parameter
variants, answers what /openapi.json says (the `client` fixture checks each answer against it, tests/api_schema.py).
"""
import json
from datetime import datetime, timedelta, timezone

from chalicelib.ledger import calllog
from tests import api_schema
from tests.conftest import ADMIN_KEY
from tests.integration.helpers import log, roll_up

VARIANTS = {
    "/api/summary": ["hours=24", "hours=1", "days=7", "days=1&account=acme", "hours=24&account=acme", "hours=24&model=gpt-4o",
                     "days=1&account=acme&model=gpt-4o", "hours=6&offset_hours=6", "days=1&team=ml", "hours=24&user=alice"],
    "/api/usage/daily": ["days=7", *(f"days=7&group_by={g}" for g in ("model", "provider", "account", "key", "operation",
                                                                        "team", "user")),
                         "days=7&account=acme&group_by=user", "days=7&account=acme&group_by=provider",
                         "days=7&team=ml&group_by=operation", "days=7&account=acme&team=ml"],
    "/api/usage/timeseries": ["hours=24&interval=1h", "hours=6&interval=5m", "hours=24&interval=1h&account=acme",
                              "hours=24&interval=1h&account=acme&model=gpt-4o", "days=2&interval=1h"],
    "/api/usage/window": ["minutes=300", "minutes=60&account=acme", "minutes=300&model=gpt-4o"],
    "/api/usage/users": ["days=7", "days=7&account=acme", "days=7&team=ml", "days=1&limit=1"],
    "/api/usage/models": ["hours=24", "hours=24&account=acme", "hours=24&team=ml"],
    "/api/sessions": ["user=alice&days=7", "user=alice&days=7&account=acme"],
    "/api/sessions/{session}": ["account=acme"],
    "/api/forecast": ["", "account=acme", "month=2026-01"],
    "/api/calls": ["limit=5", "limit=2&model=gpt-4o", "account=acme"],
    "/api/calls/{call_id}": [""],
    "/api/budgets": [""],
    "/api/alerts": ["state=all", "state=open", ""],
    "/api/credits": ["", "account=acme"],
    "/api/providers": ["", "hours=1"],
    "/api/export": ["format=json&hours=24", "format=csv&hours=24"],
}


def test_every_api_route_answers_what_the_openapi_document_says(gateway):
    now = datetime.now(timezone.utc)
    log(1, 5, user="alice", session="s-1", team="ml", operation="chat")
    log(2, 65, model="gpt-4o-mini", session="s-1", user="alice", team="ml")
    log(3, 30, account="globex", provider="anthropic", model="claude-haiku-4-5", cost="0.02")
    log(4, 10, status=500)
    refused_at = now - timedelta(minutes=9)
    call_id = calllog.new_call_id(refused_at)
    calllog.write(calllog.new_record(  # a budget refusal, without a model: `refused` and the `(none)` groups
        call_id, refused_at, "acme", provider="openai", endpoint="chat/completions", model=None,
        key_id="key-acme", status=429, error_type="budget_exceeded", upstream_reached=False, latency_ms=3))
    gateway.new_key("acme", team="ml")
    assert gateway.admin("put", "/admin/budgets/b1", {"scope": "account", "scope_id": "acme", "period": "monthly",
                                                      "limit_usd": "10", "thresholds": [0.5], "mode": "soft",
                                                      "channels": []})[0] == 200
    assert gateway.admin("post", "/admin/credits/acme", {"amount_usd": "50"})[0] in (200, 201)
    roll_up()
    api_schema.seen.clear()
    for template, variants in VARIANTS.items():
        path = template.replace("{session}", "s-1").replace("{call_id}", call_id)
        for query in variants:
            response = gateway.client.http.get(f"{path}?{query}" if query else path,
                                               headers={"X-Dashboard-Key": ADMIN_KEY})
            assert response.status_code == 200, (template, query, response.body)
            if template != "/api/export":
                assert json.loads(response.body)
    document = json.loads(gateway.client.http.get("/openapi.json").body)
    routes = {path for path, methods in document["paths"].items() if path.startswith("/api/") and "get" in methods}
    assert routes - api_schema.seen == {"/api/export", "/api/exports/{export_id}"}  # downloads; a job's state
