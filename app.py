"""Tollgate's table of contents: admin, JSON API and event sources, each handing off to chalicelib.

The provider routes (CONTRACT §2) are not here: they stream, so they are the ASGI app in
`chalicelib/gateway/proxy_app.py`, its own function in AWS, on the same base URL.
"""
from chalice import Chalice, CORSConfig, Cron, Rate

from chalicelib import chalice_http, clock, coldstart_gc  # coldstart_gc: the collector rests while the modules below load (cold start)
from chalicelib.alerting import alert_store, budget_store, credits, digest, listeners, measure, notify
from chalicelib.alerting import provider_balances
from chalicelib.errors import NotFound
from chalicelib.gateway import fallbacks, reprice
from chalicelib.ledger import audit, auth, calllog, fallback_rules, gdpr, key_limits, keys, rate_limits
from chalicelib.reports import calls as call_reports
from chalicelib.reports import exports, forecast, openapi, people, providers, usage
from chalicelib.rollup import DETAIL, SUMMARY, handler, rebuild
from chalicelib.settings import get_settings

coldstart_gc.loaded()
app = Chalice(app_name="tollgate")
ANY = ["*/*"]  # a wrong Content-Type gets our own JSON error, not Chalice's
_origin = get_settings().dashboard_origin
# The dashboard (an S3 site) may call /api from its own origin, and no other origin may.
DASHBOARD_CORS = CORSConfig(allow_origin=_origin, allow_headers=["X-Dashboard-Key"], max_age=600) if _origin else None


@app.middleware("http")
def audit_admin_requests(event, get_response):
    """Every /admin request, and every acknowledgement and resolution of an alert, allowed or refused, lands in
    the audit trail."""
    response = get_response(event)
    if audit.is_audited(event.method, event.path):
        audit.record(event, response.status_code)
    return response


# --- Admin (CONTRACT §3) ------------------------------------------------------------------------
@app.route("/admin/keys", methods=["POST"], content_types=ANY)
@chalice_http.json_api
def create_key():
    """Issue a gateway key; the secret is in this answer only."""
    _admin()
    return 201, keys.create_gateway_key(chalice_http.json_body(app.current_request))


@app.route("/admin/keys", methods=["GET"])
@chalice_http.json_api
def list_keys():
    """Every gateway and dashboard key, without secrets."""
    _admin()
    return {"keys": keys.list_keys()}


@app.route("/admin/keys/{key_id}", methods=["DELETE"])
@chalice_http.json_api
def revoke_key(key_id):
    """Revoke a key; containers stop accepting it within the key cache TTL."""
    _admin()
    return keys.revoke_key(key_id)


@app.route("/admin/keys/{key_id}/limits", methods=["PUT"], content_types=ANY)
@chalice_http.json_api
def set_key_limits(key_id):
    """Set a key's requests and tokens per minute (`{"rpm"?, "tpm"?}`; null removes one)."""
    _admin()
    return key_limits.set_limits(key_id, chalice_http.json_body(app.current_request))


@app.route("/admin/limits", methods=["GET"])
@chalice_http.json_api
def list_limits():
    """Every account's and team's requests and tokens per minute (a key's: PUT /admin/keys/{key_id}/limits)."""
    _admin()
    return {"limits": [limit.view() for limit in rate_limits.all_limits()]}


@app.route("/admin/limits/{scope}/{scope_id}", methods=["PUT"], content_types=ANY)
@chalice_http.json_api
def set_scope_limits(scope, scope_id):
    """Set an account's or a team's requests and tokens per minute (`{"rpm"?, "tpm"?}`; null removes one)."""
    _admin()
    return rate_limits.set_limits(scope, scope_id, chalice_http.json_body(app.current_request), clock.now())


@app.route("/admin/limits/{scope}/{scope_id}", methods=["DELETE"])
@chalice_http.json_api
def delete_scope_limits(scope, scope_id):
    """Remove an account's or a team's rate limits."""
    _admin()
    return rate_limits.delete(scope, scope_id)


@app.route("/admin/dashboard-keys", methods=["POST"], content_types=ANY)
@chalice_http.json_api
def create_dashboard_key():
    """Issue a read-only key for /api, scoped to one account or to all."""
    _admin()
    return 201, keys.create_dashboard_key(chalice_http.json_body(app.current_request))


@app.route("/admin/budgets/{budget_id}", methods=["PUT"], content_types=ANY)
@chalice_http.json_api
def put_budget(budget_id):
    """Create or replace a budget."""
    _admin()
    return budget_store.put_budget(budget_id, chalice_http.json_body(app.current_request))


@app.route("/admin/budgets", methods=["GET"])
@chalice_http.json_api
def list_budgets():
    """Every budget, as configured, with its last evaluated state."""
    _admin()
    return {"budgets": [budget_store.budget_view(b) for b in budget_store.all_budgets()]}


@app.route("/admin/budgets/{budget_id}", methods=["DELETE"])
@chalice_http.json_api
def delete_budget(budget_id):
    """Delete a budget (its alerts keep their history)."""
    _admin()
    return budget_store.delete_budget(budget_id)


@app.route("/admin/credits/{account}", methods=["POST"], content_types=ANY)
@chalice_http.json_api
def top_up(account):
    """Add prepaid credit to an account: {"amount_usd", "note"?}."""
    _admin()
    return credits.top_up(account, chalice_http.json_body(app.current_request), clock.now())


@app.route("/admin/audit", methods=["GET"])
@chalice_http.json_api
def audit_trail():
    """Who did what on the admin API, and when (newest first)."""
    _admin()
    return audit.list_entries(chalice_http.query_of(app.current_request))


@app.route("/admin/fallbacks/{name}", methods=["PUT"], content_types=ANY)
@chalice_http.json_api
def put_fallback(name):
    """Create or replace a fallback rule: {"match": {provider, model}, "targets": [{provider, model}], "on"?}."""
    _admin()
    return fallback_rules.save(fallbacks.parse_rule(name, chalice_http.json_body(app.current_request)), clock.now())


@app.route("/admin/fallbacks", methods=["GET"])
@chalice_http.json_api
def list_fallbacks():
    """Every fallback rule, by name."""
    _admin()
    return {"fallbacks": [rule.view() for rule in fallback_rules.all_rules()]}


@app.route("/admin/fallbacks/{name}", methods=["GET"])
@chalice_http.json_api
def get_fallback(name):
    """One fallback rule."""
    _admin()
    return fallback_rules.one(name).view()


@app.route("/admin/fallbacks/{name}", methods=["DELETE"])
@chalice_http.json_api
def delete_fallback(name):
    """Delete a fallback rule; containers stop using it within the cache TTL."""
    _admin()
    return fallback_rules.delete(name)


@app.route("/admin/provider-balances/{provider}", methods=["PUT"], content_types=ANY)
@chalice_http.json_api
def put_provider_balance(provider):
    """Record a provider's prepaid balance as at now: {"balance_usd", "low_usd"?} (exact decimals)."""
    _admin()
    return provider_balances.put_balance(provider, chalice_http.json_body(app.current_request),
                                         clock.now())


@app.route("/admin/provider-balances", methods=["GET"])
@chalice_http.json_api
def list_provider_balances():
    """Every provider balance as it stands now."""
    _admin()
    return provider_balances.balances_view(clock.now())


JOBS = {"recalculate": rebuild.recalculate, "reconcile": rebuild.reconcile, "reprice": reprice.reprice,
        "evaluate": measure.evaluate, "digest": digest.digest}


@app.route("/admin/jobs/{job}", methods=["POST"], content_types=ANY)
@chalice_http.json_api
def run_job(job):
    """Run a job now: evaluate, digest {kind}, recalculate {from, to} closed days, reconcile {day, fix?}."""
    _admin()
    if job not in JOBS:
        raise NotFound(f"unknown job {job!r}; available: {', '.join(sorted(JOBS))}")
    return JOBS[job](chalice_http.json_body(app.current_request))


@app.route("/admin/alerts/test", methods=["POST"], content_types=ANY)
@chalice_http.json_api
def test_notification():
    """Send a test message to one channel now: {"channel": "slack"|"sns"|"webhook"}."""
    _admin()
    return notify.send_test(chalice_http.json_body(app.current_request), clock.now())


@app.route("/admin/users/{user}/export", methods=["GET"])
@chalice_http.json_api
def export_user(user):
    """Every call attributed to a user (data access request)."""
    _admin()
    return gdpr.export(user)


@app.route("/admin/users/{user}", methods=["DELETE"])
@chalice_http.json_api
def erase_user(user):
    """Delete a user's calls; the stream subtracts them from the aggregates."""
    _admin()
    return gdpr.erase(user)


# --- JSON API (CONTRACT §4) ---------------------------------------------------------------------
@app.route("/health", methods=["GET"])
@chalice_http.json_api
def health():
    """Tables and spill queue reachable → healthy."""
    return call_reports.health()


@app.route("/api/calls", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def calls():
    """Newest calls first, filtered by account, provider, model; paged by `before`."""
    return call_reports.list_calls(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/calls/{call_id}", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def call(call_id):
    """One call by its id (the `X-Tollgate-Call-Id` header or a stream's closing comment)."""
    return call_reports.get_call(_dashboard(), call_id)


@app.route("/api/summary", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def summary():
    """Calls, errors, tokens by kind, cost, latency percentiles, by provider and model, last `hours`."""
    return usage.summary(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/usage/daily", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def usage_daily():
    """Per UTC day for `days`, optionally `group_by` model|provider|account|key|operation|team."""
    return usage.daily(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/usage/timeseries", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def usage_timeseries():
    """Points every 5m or 1h over the last `hours`."""
    return usage.timeseries(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/usage/window", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def usage_window():
    """Calls, tokens and cost in the rolling window of the last `minutes`."""
    return usage.window(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/usage/users", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def usage_users():
    """Users by cost, highest first, by account or team, over a range."""
    return people.users(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/usage/models", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def usage_models():
    """Per model: success rate, latency and time to first token, cost."""
    return usage.models(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/sessions", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def list_sessions():
    """A user's sessions in a range, newest first."""
    return people.sessions(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/sessions/{session}", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def get_session(session):
    """One session: totals and calls."""
    return people.session(_dashboard(), session, chalice_http.query_of(app.current_request))


@app.route("/api/forecast", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def month_forecast():
    """Month-to-date spend and its projection, in all and per provider."""
    return forecast.forecast(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/budgets", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def budgets():
    """Each budget with spent, limit, percent, state and forecast for the period end."""
    return budget_store.budgets_report(_dashboard().account)


@app.route("/api/alerts", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def list_alerts():
    """Alerts, newest first: `state=open|acknowledged|resolved|all`, or `active` (open and acknowledged; the
    default)."""
    params = chalice_http.query_of(app.current_request)
    return alert_store.list_alerts(params.get("state") or "active", _dashboard().account)


@app.route("/api/alerts/{alert_id}/ack", methods=["POST"], content_types=ANY, cors=DASHBOARD_CORS)
@chalice_http.json_api
def acknowledge_alert(alert_id):
    """Acknowledge an open alert (it still resolves by itself when its condition clears; an expensive-call
    alert is resolved by it)."""
    principal = _dashboard()
    return alert_store.acknowledge(alert_id, principal.account, _who(principal), clock.now())


@app.route("/api/alerts/{alert_id}/resolve", methods=["POST"], content_types=ANY, cors=DASHBOARD_CORS)
@chalice_http.json_api
def resolve_alert(alert_id):
    """Resolve an open or acknowledged alert by hand: {"note"?}; the channels are told who did."""
    principal, body = _dashboard(), chalice_http.json_body(app.current_request)
    return alert_store.resolve_by_hand(alert_id, principal.account, _who(principal), body, clock.now())


@app.route("/api/providers", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def provider_health():
    """Each provider's calls, errors, p95, last success and fallbacks taken (`hours`, 24), and its balance."""
    return providers.providers_report(_dashboard(), chalice_http.query_of(app.current_request), clock.now())


@app.route("/api/credits", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def list_credits():
    """Credits per account: allocated, used, remaining, top-ups."""
    account = auth.scoped_account(_dashboard(), chalice_http.query_of(app.current_request).get("account"))
    return credits.credits_report(account, clock.now())


@app.route("/api/export", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def export():
    """The calls of a time range as a CSV or JSON download; over 5 MB, 202 {"export_id"} and a job."""
    return exports.export(_dashboard(), chalice_http.query_of(app.current_request))


@app.route("/api/exports/{export_id}", methods=["GET"], cors=DASHBOARD_CORS)
@chalice_http.json_api
def export_status(export_id):
    """A large export's state and progress, and its download link once ready."""
    return exports.status(_dashboard(), export_id)


@app.route("/openapi.json", methods=["GET"])
@chalice_http.json_api
def openapi_document():
    """The OpenAPI document of the admin API and the JSON API."""
    return openapi.document()


# --- Event sources ------------------------------------------------------------------------------
@app.schedule(Rate(1, unit=Rate.MINUTES))
def evaluate_every_minute(event):
    """Budgets and alert rules; queued messages delivered."""
    return measure.evaluate()


@app.schedule(Cron(0, 8, "*", "*", "?", "*"))
def daily_digest(event):
    """Yesterday's cost, tokens, top models and accounts, budget status."""
    return digest.digest({"kind": "daily"})


@app.schedule(Cron(0, 8, "?", "*", "MON", "*"))
def weekly_report(event):
    """Last week's latency percentiles and error rates by operation."""
    return digest.digest({"kind": "weekly"})


# Chalice wants a stream ARN here, which exists only once the table does: `make package` merges
# infra/resources.json, whose `Fn::GetAtt CallsTable.StreamArn` replaces this; locally the pump finds the stream.
CALLS_STREAM_SET_BY_INFRA = "arn:aws:dynamodb:::table/calls/stream/set-by-infra"


# What each batch the rollup folds is handed to, as facts read once, by the tier it follows: calls over the alert
# rules' thresholds are noted for the evaluator; the budgets the batch touched are measured again, and costly
# sessions noted, once the detail's items (every scope but all traffic, and sessions) hold the batch.
ROLLUP_LISTENERS = {SUMMARY: (listeners.note_expensive_calls,),
                    DETAIL: (budget_store.refresh_touched, listeners.note_costly_sessions)}


@app.on_dynamodb_record(stream_arn=CALLS_STREAM_SET_BY_INFRA, batch_size=100)
def rollup_calls(event):
    """Fold new, erased and expired calls into the summary's aggregates (and the detail's, unless the stage folds
    them in rollup_details), tell the listeners; report the first record not applied."""
    return handler.handle_records(event, ROLLUP_LISTENERS, handler.tiers_of_rollup_calls())


@app.on_dynamodb_record(stream_arn=CALLS_STREAM_SET_BY_INFRA, batch_size=100)
def rollup_details(event):
    """Fold the same calls into the detail's aggregates from batches of minutes (AWS: its own stream mapping)."""
    return handler.handle_records(event, ROLLUP_LISTENERS, (DETAIL,))


@app.schedule(Rate(1, unit=Rate.MINUTES))
def merge_details(event):
    """Where the stage merges the detail tier (rollup/merge.py): start each lane group's merge that is due."""
    return handler.merge_due(ROLLUP_LISTENERS)


@app.lambda_function(name="merge_group")
def merge_group(event, context):
    """Fold one lane group's staged batches into the detail's aggregates, chunk by chunk, then tell the listeners."""
    return handler.merge_group(handler.group_of_event(event), ROLLUP_LISTENERS,
                               context.get_remaining_time_in_millis() / 1000)


@app.lambda_function(name="export_calls")
def export_calls(event, context):
    """Write a large export to S3 page by page; before the timeout, hand the rest to a fresh invocation."""
    return exports.run(event, context.get_remaining_time_in_millis() / 1000)


@app.on_sqs_message(queue=get_settings().spill_queue_name, batch_size=10)
def replay_spill(event):
    """Write call records that spilled when the call log was unavailable (idempotent); one that can never
    be written goes to the dead-letter queue with the reason; one to retry is reported alone."""
    replayed = calllog.replay_bodies(record.to_dict() for record in event)
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in replayed.get("retry", [])]}


# --- helpers ------------------------------------------------------------------------------------
def _admin():
    return auth.require_admin(chalice_http.headers_of(app.current_request))


def _dashboard():
    return auth.require_dashboard(chalice_http.headers_of(app.current_request))


def _who(principal) -> str:
    """Who acted, as messages name them: the person the `X-Tollgate-Actor` header names (as the audit trail
    records it), with the key they used; else the key."""
    key = principal.key_id or "admin"
    actor = chalice_http.actor_of(app.current_request)
    return f"{actor} ({key})" if actor else key
