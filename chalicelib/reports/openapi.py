"""The OpenAPI 3.1 document of the admin API and the JSON API (CONTRACT §3 and §4), built from a table."""
from __future__ import annotations

from typing import Any

ADMIN, DASHBOARD = [{"admin": []}], [{"dashboard": []}, {"admin_as_dashboard": []}]
FILTERS = ("account", "provider", "model", "team", "key", "user")


def _param(name: str, kind: str = "string", where: str = "query", required: bool = False, **schema: Any):
    return {"name": name, "in": where, "required": required or where == "path", "schema": {"type": kind, **schema}}


def _op(summary: str, security: list, params=(), body: dict | None = None, status: str = "200",
        answer: str | None = None) -> dict[str, Any]:
    """An operation; `answer` names its response's schema in `SCHEMAS` (else any object)."""
    schema = {"$ref": f"#/components/schemas/{answer}"} if answer else {"type": "object"}
    operation: dict[str, Any] = {"summary": summary, "security": security, "parameters": list(params),
                                 "responses": {status: {"description": "OK",
                                                        "content": {"application/json": {"schema": schema}}},
                                               "400": {"$ref": "#/components/responses/Error"},
                                               "401": {"$ref": "#/components/responses/Error"},
                                               "403": {"$ref": "#/components/responses/Error"}}}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


def _obj(**properties: dict) -> dict[str, Any]:
    return {"type": "object", "properties": properties}


STRING, NUMBER_TEXT = {"type": "string"}, {"type": ["string", "number"]}
INTEGER, COUNT, NAME = {"type": "integer"}, {"type": "integer", "minimum": 0}, {"type": ["string", "null"]}
MONEY = {"type": ["string", "null"], "pattern": "^-?[0-9]+(\\.[0-9]+)?$"}  # a decimal in USD; null: none priced
COUNTS = {"type": "object", "additionalProperties": COUNT}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _strict(required: tuple[str, ...] | list[str], optional: dict | None = None, **properties: dict) -> dict[str, Any]:
    """An object with exactly these fields: `properties` always there, `optional` sometimes."""
    return {"type": "object", "properties": {**properties, **(optional or {})}, "required": list(required or properties),
            "additionalProperties": False}


# What the reports answer. One shape per field in every report: `tokens` is always the object by kind (never a
# bare number), a group of a split is always a Group, and each split has its `(none)` group so its groups add up.
TOKENS = _strict((), input_tokens=COUNT, cache_read_tokens=COUNT, cache_write_tokens=COUNT, output_tokens=COUNT,
                 reasoning_tokens=COUNT, total=COUNT)
TOKENS["required"] = list(TOKENS["properties"])
GROUP_FIELDS = dict(calls=INTEGER, errors=INTEGER, refused=INTEGER, tokens=_ref("Tokens"), cost_usd=MONEY,
                    unpriced_calls=INTEGER)
ROW_FIELDS = dict(GROUP_FIELDS, error_rate={"type": "number", "minimum": 0})
GROUPS = {"type": "object", "additionalProperties": _ref("Group")}
LATENCY = _strict((), p50={"type": ["number", "null"]}, p95={"type": ["number", "null"]},
                  p99={"type": ["number", "null"]}, mean={"type": ["number", "null"]})
LATENCY["required"] = list(LATENCY["properties"])
PERCENTILES = _strict(("p50", "p95"), p50={"type": ["number", "null"]}, p95={"type": ["number", "null"]})
RANGE_ECHO = {"hours": INTEGER, "days": INTEGER, "start": STRING, "end": STRING, "month": STRING,
              "offset_hours": INTEGER}
SCOPE_ECHO = {"scope": STRING, "scope_id": STRING, "filter": {"type": "object", "additionalProperties": STRING}}
SESSION_ROW = _strict((), session=STRING, user=NAME, account=STRING, calls=INTEGER, errors=INTEGER,
                      tokens=_ref("Tokens"), cost_usd=MONEY, first_ts=NAME, last_ts=NAME)
SESSION_ROW["required"] = list(SESSION_ROW["properties"])
PROJECTION = _strict(("month_to_date_usd", "projected_usd"), {"reason": STRING}, month_to_date_usd=MONEY,
                     projected_usd=MONEY)  # `reason`: why there is no projection yet
SCHEMAS: dict[str, Any] = {
    "Tokens": TOKENS,
    "Group": _strict(list(GROUP_FIELDS), **GROUP_FIELDS),
    "Summary": _strict(
        ["from", "to", "resolution", "scope", "scope_id", *ROW_FIELDS, "by_provider", "by_model"],
        {**RANGE_ECHO, **SCOPE_ECHO, "latency_ms": LATENCY, "errors_by_type": COUNTS, "refused_by_type": COUNTS,
         "breakdown_from": STRING, "price_drift_calls": {"type": ["integer", "null"], "minimum": 0}},
        **{"from": STRING, "to": STRING, "resolution": {"enum": ["5m", "1d"]}}, **ROW_FIELDS,
        by_provider=GROUPS, by_model=GROUPS),
    "Daily": _strict(["from", "to", "group_by", "scope", "scope_id", "daily"], {**RANGE_ECHO, **SCOPE_ECHO},
                     **{"from": STRING, "to": STRING}, group_by=NAME,
                     daily={"type": "array", "items": _strict(["day", *ROW_FIELDS], {"groups": GROUPS}, day=STRING,
                                                             **ROW_FIELDS)}),
    "Timeseries": _strict(["from", "to", "interval", "scope", "scope_id", "points"], {**RANGE_ECHO, **SCOPE_ECHO},
                          **{"from": STRING, "to": STRING}, interval={"enum": ["5m", "1h"]},
                          points={"type": "array", "items": _strict(["ts", *ROW_FIELDS], {"by_provider": GROUPS},
                                                                   ts=STRING, **ROW_FIELDS)}),
    "Window": _strict(["minutes", "from", "to", "scope", "scope_id", *ROW_FIELDS], SCOPE_ECHO, minutes=INTEGER,
                      **{"from": STRING, "to": STRING}, **ROW_FIELDS),
    "Users": _strict(["from", "to", "account", "team", "users", "truncated"], RANGE_ECHO,
                     **{"from": STRING, "to": STRING}, account=NAME, team=NAME, truncated={"type": "boolean"},
                     users={"type": "array", "items": _strict((), user=STRING, account=NAME, **GROUP_FIELDS)}),
    "Models": _strict(["from", "to", "scope", "scope_id", "models"], {**RANGE_ECHO, **SCOPE_ECHO},
                      **{"from": STRING, "to": STRING}, models={"type": "array", "items": _strict(
                          (), model=STRING, calls=INTEGER, errors=INTEGER, refused=INTEGER,
                          success_rate={"type": ["number", "null"], "minimum": 0, "maximum": 1},
                          latency_ms=PERCENTILES, ttft_ms=PERCENTILES, tokens=_ref("Tokens"), cost_usd=MONEY)}),
    "Sessions": _strict(["from", "to", "user", "sessions", "truncated"], RANGE_ECHO, **{"from": STRING, "to": STRING},
                        user=STRING, truncated={"type": "boolean"}, sessions={"type": "array", "items": SESSION_ROW}),
    "Session": _strict((), session=STRING, user=NAME, account=STRING, first_ts=NAME, last_ts=NAME,
                       totals=_strict((), calls=INTEGER, errors=INTEGER, tokens=_ref("Tokens"), cost_usd=MONEY),
                       calls={"type": "array", "items": _ref("Call")}, truncated={"type": "boolean"}),
    "Forecast": _strict(["month", "account", "month_to_date_usd", "projected_usd", "enough_data", "method",
                         "by_provider"], {"reason": STRING}, month=STRING, account=NAME, month_to_date_usd=MONEY, projected_usd=MONEY,
                        enough_data={"type": "boolean"}, method=STRING,
                        by_provider={"type": "object", "additionalProperties": PROJECTION}),
    "Call": {"type": "object", "required": ["call_id", "ts", "provider", "model", "account", "status", "error_type",
                                            "input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens",
                                            "reasoning_tokens", "cost_usd", "latency_ms"],
             "properties": {"call_id": STRING, "ts": STRING, "provider": STRING, "model": NAME, "account": STRING,
                            "status": INTEGER, "error_type": NAME, "input_tokens": COUNT,
                            "cache_read_tokens": COUNT, "cache_write_tokens": COUNT, "output_tokens": COUNT,
                            "reasoning_tokens": COUNT, "cost_usd": MONEY, "latency_ms": COUNT,
                            "attempts": {"type": ["array", "null"], "items": _strict(
                                (), provider=STRING, model=NAME, status={"type": ["integer", "null"]},
                                error_type=NAME, latency_ms=COUNT)}}},
    "Calls": _strict((), calls={"type": "array", "items": _ref("Call")}, next_before=NAME),
    "Budgets": _strict((), budgets={"type": "array", "items": {"type": "object", "required": ["budget_id"]}}),
    "Alerts": _strict((), alerts={"type": "array", "items": {"type": "object", "required": ["alert_id", "state"]}}),
    "Providers": _strict((), **{"from": STRING, "to": STRING}, hours=INTEGER, providers={"type": "array", "items": _strict(
        (), provider=STRING, calls=COUNT, errors=COUNT, error_rate={"type": "number", "minimum": 0},
        latency_ms=PERCENTILES, last_success=NAME, fallbacks_taken=COUNT,
        state={"type": "string", "enum": ["idle", "ok", "degraded", "failing"]},
        balance={"oneOf": [{"type": "null"}, _strict(
            (), balance_usd=MONEY, low_usd=MONEY, source={"type": "string", "enum": ["admin", "api"]},
            set_at=STRING, recorded_usd=MONEY, spent_since_usd=MONEY, daily_rate_usd=MONEY,
            days_left={"type": ["number", "null"], "minimum": 0})]})}),
    "Credits": _strict((), credits={"type": "array", "items": {"type": "object", "required": [
        "account", "allocated_usd", "used_usd", "remaining_usd"]}}),
}
for _name in ("Session", "Calls", "Budgets", "Alerts", "Credits"):
    SCHEMAS[_name]["required"] = list(SCHEMAS[_name]["properties"])
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
    "/admin/keys/{key_id}/limits": {"put": _op("Set a key's requests and tokens per minute", ADMIN,
                                               [_param("key_id", where="path")],
                                               body=_obj(rpm={"type": ["integer", "null"]},
                                                         tpm={"type": ["integer", "null"]}))},
    "/admin/limits": {"get": _op("List the accounts' and teams' rate limits", ADMIN)},
    "/admin/limits/{scope}/{scope_id}": {
        "put": _op("Set an account's or a team's requests and tokens per minute (null removes one)", ADMIN,
                   [_param("scope", where="path", enum=["account", "team"]), _param("scope_id", where="path")],
                   body=_obj(rpm={"type": ["integer", "null"], "minimum": 1},
                             tpm={"type": ["integer", "null"], "minimum": 1})),
        "delete": _op("Remove an account's or a team's rate limits", ADMIN,
                      [_param("scope", where="path", enum=["account", "team"]), _param("scope_id", where="path")])},
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
    "/admin/fallbacks": {"get": _op("List fallback rules", ADMIN)},
    "/admin/fallbacks/{name}": {
        "put": _op("Create or replace a fallback rule: the targets a call tries next when its provider answers "
                   "429 or 5xx, cannot be reached or times out before any byte reached the caller", ADMIN,
                   [_param("name", where="path", pattern="^[A-Za-z0-9._-]{1,64}$")],
                   body=_obj(match=_obj(provider=STRING, model=STRING),
                             targets={"type": "array", "minItems": 1, "maxItems": 5,
                                      "items": _obj(provider=STRING, model=STRING)},
                             on={"type": "array", "items": {"type": ["integer", "string"]}})),
        "get": _op("One fallback rule", ADMIN, [_param("name", where="path")]),
        "delete": _op("Delete a fallback rule", ADMIN, [_param("name", where="path")])},
    "/admin/provider-balances": {"get": _op("Every provider balance as it stands now", ADMIN)},
    "/admin/provider-balances/{provider}": {"put": _op(
        "Record a provider's prepaid balance as at now (less its metered spend from then on); under low_usd, a "
        "low-balance alert", ADMIN, [_param("provider", where="path", pattern="^[a-z0-9-]{1,64}$")],
        body=_obj(balance_usd=NUMBER_TEXT, low_usd=NUMBER_TEXT))},
    "/admin/users/{user}/export": {"get": _op("Every call attributed to a user", ADMIN, [_param("user", where="path")])},
    "/admin/users/{user}": {"delete": _op("Erase a user's calls", ADMIN, [_param("user", where="path")])},
    "/api/summary": {"get": _op("Totals, tokens by kind, cost, latency percentiles, by provider and model", DASHBOARD,
                                [*RANGE_PARAMS, _param("offset_hours", "integer", minimum=0), *FILTER_PARAMS],
                                answer="Summary")},
    "/api/usage/daily": {"get": _op("Per UTC day, optionally grouped", DASHBOARD,
                                    [*RANGE_PARAMS, _param("group_by", enum=["model", "provider", "account", "key",
                                                                             "operation", "team", "user"]),
                                     *FILTER_PARAMS], answer="Daily")},
    "/api/usage/timeseries": {"get": _op("Points every 5 minutes or hour", DASHBOARD,
                                         [*RANGE_PARAMS, _param("interval", enum=["5m", "1h"]), *FILTER_PARAMS],
                                         answer="Timeseries")},
    "/api/usage/users": {"get": _op("Users by cost, highest first (by account or team)", DASHBOARD,
                                    [*RANGE_PARAMS, _param("limit", "integer", minimum=1, maximum=1000),
                                     _param("account"), _param("team")], answer="Users")},
    "/api/usage/models": {"get": _op("Per model: success rate, latency and time to first token p50/p95, cost "
                                     "(at most 48 hours)", DASHBOARD, [*RANGE_PARAMS, _param("account"),
                                                                       _param("team")], answer="Models")},
    "/api/sessions": {"get": _op("A user's sessions, newest first", DASHBOARD,
                                 [_param("user", required=True), *RANGE_PARAMS, _param("account"),
                                  _param("limit", "integer", minimum=1, maximum=1000)], answer="Sessions")},
    "/api/sessions/{session}": {"get": _op("One session: its totals and its calls", DASHBOARD,
                                           [_param("session", where="path"), _param("account")], answer="Session")},
    "/api/forecast": {"get": _op("Month-to-date spend and its projection to the month's end, per provider too",
                                 DASHBOARD, [_param("month", pattern="^[0-9]{4}-[0-9]{2}$"), _param("account")],
                                 answer="Forecast")},
    "/api/usage/window": {"get": _op("Rolling window totals", DASHBOARD,
                                     [_param("minutes", "integer", minimum=5, maximum=1440), *FILTER_PARAMS],
                                     answer="Window")},
    "/api/calls": {"get": _op("Newest calls first", DASHBOARD,
                              [_param("limit", "integer", minimum=1, maximum=500), _param("before"), *FILTER_PARAMS],
                              answer="Calls")},
    "/api/calls/{call_id}": {"get": _op(
        "One call, by the id in its X-Tollgate-Call-Id header or its stream's closing `: tollgate` comment "
        "(ttft_ms, output_tokens_per_s, cost_usd)", DASHBOARD, [_param("call_id", where="path")], answer="Call")},
    "/api/budgets": {"get": _op("Budgets with spend, percent, state, forecast", DASHBOARD, answer="Budgets")},
    "/api/alerts": {"get": _op("Alerts, newest first; resolved ones with `duration_seconds`", DASHBOARD,
                               [_param("state", enum=["open", "acknowledged", "resolved", "active", "all"])],
                               answer="Alerts")},
    "/api/alerts/{alert_id}/ack": {"post": _op("Acknowledge an open alert (an expensive-call alert resolves)",
                                               DASHBOARD, [_param("alert_id", where="path")])},
    "/api/alerts/{alert_id}/resolve": {"post": _op("Resolve an open or acknowledged alert by hand", DASHBOARD,
                                                   [_param("alert_id", where="path")],
                                                   body=_obj(note=STRING))},
    "/api/providers": {"get": _op("Per provider over the window: calls, errors, error rate, p50/p95 latency, the "
                                  "last 5-minute bucket with a success, fallbacks taken, state; its balance and "
                                  "days left at the last 7 days' rate where known (keys for every account only)",
                                  DASHBOARD, [_param("hours", "integer", minimum=1, maximum=48)],
                                  answer="Providers")},
    "/api/credits": {"get": _op("Credits per account", DASHBOARD, [_param("account")], answer="Credits")},
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
            "schemas": SCHEMAS,
            "securitySchemes": {
                "admin": {"type": "http", "scheme": "bearer", "description": "the admin key"},
                "dashboard": {"type": "apiKey", "in": "header", "name": "X-Dashboard-Key"},
                "admin_as_dashboard": {"type": "apiKey", "in": "header", "name": "X-Dashboard-Key",
                                       "description": "the admin key also reads /api"}},
            "responses": {"Error": {"description": "an error", "content": {"application/json": {"schema": _obj(
                error=_obj(type=STRING, message=STRING))}}}},
        },
    }
