"""The OpenAPI 3.1 document of the admin API and the JSON API (CONTRACT §3 and §4), built from a table."""
from __future__ import annotations

from typing import Any

ADMIN, DASHBOARD = [{"admin": []}], [{"dashboard": []}, {"admin_as_dashboard": []}]
FILTERS = ("account", "provider", "model", "team", "key", "user")


def _param(name: str, kind: str = "string", where: str = "query", required: bool = False, **schema: Any):
    return {"name": name, "in": where, "required": required or where == "path", "schema": {"type": kind, **schema}}


def _op(summary: str, security: list, params=(), body: dict | None = None, status: str = "200") -> dict[str, Any]:
    operation: dict[str, Any] = {"summary": summary, "security": security, "parameters": list(params),
                                 "responses": {status: {"description": "OK",
                                                        "content": {"application/json": {"schema": {"type": "object"}}}},
                                               "400": {"$ref": "#/components/responses/Error"},
                                               "401": {"$ref": "#/components/responses/Error"},
                                               "403": {"$ref": "#/components/responses/Error"}}}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _obj(**properties: dict) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


STRING, NUMBER_TEXT = {"type": "string"}, {"type": ["string", "number"]}
FILTER_PARAMS = [_param(name) for name in FILTERS]
RANGE_PARAMS = [_param("hours", "integer", minimum=1), _param("days", "integer", minimum=1, maximum=366),
                _param("start", format="date"), _param("end", format="date"),
                _param("month", pattern="^[0-9]{4}-[0-9]{2}$")]

PATHS: dict[str, dict[str, Any]] = {
    "/health": {"get": {"summary": "Health of tables and spill queue", "security": [],
                        "responses": {"200": {"description": "healthy"}, "503": {"description": "degraded"}}}},
    "/admin/keys": {
        "post": _op("Issue a gateway key (the secret is shown once)", ADMIN,
                    body=_obj(name=STRING, account=STRING, team=STRING, user=STRING), status="201"),
        "get": _op("List keys (never secrets)", ADMIN)},
    "/admin/keys/{key_id}": {"delete": _op("Revoke a key", ADMIN, [_param("key_id", where="path")])},
    "/admin/dashboard-keys": {"post": _op("Issue a read-only dashboard key", ADMIN, body=_obj(account=STRING),
                                          status="201")},
    "/admin/budgets": {"get": _op("List budgets", ADMIN)},
    "/admin/audit": {"get": _op("The audit trail of admin requests, newest first", ADMIN,
                                [_param("limit", "integer", minimum=1, maximum=1000)])},
    "/admin/budgets/{budget_id}": {
        "put": _op("Create or replace a budget", ADMIN, [_param("budget_id", where="path")],
                   body=_obj(scope=STRING, scope_id=STRING, period=STRING, window_minutes={"type": "integer"},
                             limit_usd=NUMBER_TEXT, limit_tokens={"type": "integer"},
                             thresholds={"type": "array", "items": {"type": "number"}}, mode=STRING,
                             channels={"type": "array", "items": STRING}, timezone=STRING)),
        "delete": _op("Delete a budget", ADMIN, [_param("budget_id", where="path")])},
    "/admin/jobs/{job}": {"post": _op("Run a job now: evaluate, digest, recalculate, reconcile, reprice", ADMIN,
                                      [_param("job", where="path", enum=["evaluate", "digest", "recalculate",
                                                                         "reconcile", "reprice"])],
                                      body=_obj(**{"from": STRING, "to": STRING, "day": STRING,
                                                   "fix": {"type": "boolean"}, "kind": STRING, "start": STRING,
                                                   "end": STRING, "provider": STRING, "model": STRING}))},
    "/admin/alerts/test": {"post": _op("Send a test notification to one channel now", ADMIN,
                                       body=_obj(channel={"type": "string", "enum": ["slack", "sns", "webhook"]}))},
    "/admin/credits/{account}": {"post": _op("Top up an account's credits", ADMIN, [_param("account", where="path")],
                                             body=_obj(amount_usd=NUMBER_TEXT, note=STRING))},
    "/admin/users/{user}/export": {"get": _op("Every call attributed to a user", ADMIN, [_param("user", where="path")])},
    "/admin/users/{user}": {"delete": _op("Erase a user's calls", ADMIN, [_param("user", where="path")])},
    "/api/summary": {"get": _op("Totals, tokens by kind, cost, latency percentiles, by provider and model", DASHBOARD,
                                [*RANGE_PARAMS, _param("offset_hours", "integer", minimum=0), *FILTER_PARAMS])},
    "/api/usage/daily": {"get": _op("Per UTC day, optionally grouped", DASHBOARD,
                                    [*RANGE_PARAMS, _param("group_by", enum=["model", "provider", "account", "key",
                                                                             "operation", "team", "user"]),
                                     *FILTER_PARAMS])},
    "/api/usage/timeseries": {"get": _op("Points every 5 minutes or hour", DASHBOARD,
                                         [*RANGE_PARAMS, _param("interval", enum=["5m", "1h"]), *FILTER_PARAMS])},
    "/api/usage/users": {"get": _op("Users by cost, highest first (by account or team)", DASHBOARD,
                                    [*RANGE_PARAMS, _param("limit", "integer", minimum=1, maximum=1000),
                                     _param("account"), _param("team")])},
    "/api/usage/models": {"get": _op("Per model: success rate, latency and time to first token p50/p95, cost "
                                     "(at most 48 hours)", DASHBOARD, [*RANGE_PARAMS, _param("account"),
                                                                       _param("team")])},
    "/api/sessions": {"get": _op("A user's sessions, newest first", DASHBOARD,
                                 [_param("user", required=True), *RANGE_PARAMS, _param("account"),
                                  _param("limit", "integer", minimum=1, maximum=1000)])},
    "/api/sessions/{session}": {"get": _op("One session: its totals and its calls", DASHBOARD,
                                           [_param("session", where="path"), _param("account")])},
    "/api/forecast": {"get": _op("Month-to-date spend and its projection to the month's end, per provider too",
                                 DASHBOARD, [_param("month", pattern="^[0-9]{4}-[0-9]{2}$"), _param("account")])},
    "/api/usage/window": {"get": _op("Rolling window totals", DASHBOARD,
                                     [_param("minutes", "integer", minimum=5, maximum=1440), *FILTER_PARAMS])},
    "/api/calls": {"get": _op("Newest calls first", DASHBOARD,
                              [_param("limit", "integer", minimum=1, maximum=500), _param("before"), *FILTER_PARAMS])},
    "/api/calls/{call_id}": {"get": _op(
        "One call, by the id in its X-Tollgate-Call-Id header or its stream's closing `: tollgate` comment "
        "(ttft_ms, output_tokens_per_s, cost_usd)", DASHBOARD, [_param("call_id", where="path")])},
    "/api/budgets": {"get": _op("Budgets with spend, percent, state, forecast", DASHBOARD)},
    "/api/alerts": {"get": _op("Alerts, newest first; resolved ones with `duration_seconds`", DASHBOARD,
                               [_param("state", enum=["open", "acknowledged", "resolved", "active", "all"])])},
    "/api/alerts/{alert_id}/ack": {"post": _op("Acknowledge an open alert (an expensive-call alert resolves)",
                                               DASHBOARD, [_param("alert_id", where="path")])},
    "/api/alerts/{alert_id}/resolve": {"post": _op("Resolve an open or acknowledged alert by hand", DASHBOARD,
                                                   [_param("alert_id", where="path")],
                                                   body=_obj(note=STRING))},
    "/api/credits": {"get": _op("Credits per account", DASHBOARD, [_param("account")])},
    "/api/export": {"get": _op("The calls as a CSV or JSON download, oldest first; over 5 MB, 202 "
                               "{export_id, state, status_url} and a job", DASHBOARD,
                               [_param("format", enum=["csv", "json"]), *RANGE_PARAMS, *FILTER_PARAMS])},
    "/api/exports/{export_id}": {"get": _op(
        "A large export: state (queued, running, ready, failed), progress, and once ready download_url "
        "(valid until expires_at)", DASHBOARD, [_param("export_id", where="path", pattern="^exp_[0-9a-f]{32}$")])},
}


PATHS["/api/alerts/{alert_id}/resolve"]["post"]["requestBody"]["required"] = False  # the note is optional


def document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tollgate admin and JSON API", "version": "1.0.0",
                 "description": "Money is a decimal string in USD; times are UTC ISO-8601."},
        "paths": PATHS,
        "components": {
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "the admin key"},
                "dashboard": {"type": "apiKey", "in": "header", "name": "X-Dashboard-Key"},
                "admin_as_dashboard": {"type": "apiKey", "in": "header", "name": "X-Dashboard-Key",
                                       "description": "the admin key also reads /api"}},
            "responses": {"Error": {"description": "an error", "content": {"application/json": {"schema": _obj(
                error=_obj(type=STRING, message=STRING))}}}},
        },
    }
