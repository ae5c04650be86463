"""The JSON API the dashboard reads: calls and health (views over calllog, scoped to the caller's account).
Exports of calls are chalicelib/reports/exports.py."""
from __future__ import annotations

import time
from typing import Any

from chalicelib.clock import parse_precise, utc_today
from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.ledger import calllog, dead_letters
from chalicelib.ledger import Principal, scoped_account
from chalicelib.ledger import call_view
from chalicelib.ledger import ApiKey, CallRecord
from chalicelib import clock
from chalicelib.reports import providers, ranges
from chalicelib.rollup import merge, quarantine, store
from chalicelib.settings import get_settings
from chalicelib.query import Query

CALLS_LIMIT_MAX = 500


def cursor_to_sort_key(cursor: str | None) -> str | None:
    """Cursors are sort keys with `#` → `~`, so they go in a URL as they are."""
    if not cursor:
        return None
    ts, sep, call_id = cursor.partition("~")
    try:
        at = parse_precise(ts)
        valid = bool(sep and len(ts) == 27 and calllog.CALL_ID.fullmatch(call_id))
    except ValueError:
        valid = False
    if not valid:
        raise InvalidRequest("`before` must be the `next_before` cursor of a previous page")
    ranges.in_years(at.date(), "before")
    return f"{ts}#{call_id}"


def list_calls(principal: Principal, params: Query) -> dict[str, Any]:
    """`GET /api/calls`: newest first, with a `next_before` cursor for the following page."""
    limit = params.integer("limit", 50, 1, CALLS_LIMIT_MAX)
    before = cursor_to_sort_key(params.get("before"))
    account = scoped_account(principal, params.get("account"))
    records = list(calllog.recent_calls(
        account=account, limit=limit, provider=params.get("provider"), model=params.get("model"), before=before,
        days_with_calls=None if account else _days_with_calls(),
    ))
    return {
        "calls": [call_view(r) for r in records],
        "next_before": records[-1].sk.replace("#", "~") if len(records) == limit else None,
    }


def _days_with_calls() -> list[str]:
    """The UTC days within retention on which any call was logged (all traffic's day items, one Query), and
    today whatever they say (a call logged a moment ago may not be rolled up yet): the all-accounts list
    walks only those, 32 shard Queries each."""
    first, last = calllog.oldest_logged_day().isoformat(), utc_today().isoformat()
    return [last, *(entry["day"] for entry in store.query_kind("global", first, last) if entry.get("calls"))]


def get_call(principal: Principal, call_id: str) -> dict[str, Any]:
    """`GET /api/calls/{call_id}`: one call, if the key may see its account."""
    record = calllog.find_call(call_id, principal.account)
    if record is None:
        raise NotFound(f"no call {call_id!r}" + (f" in account {principal.account!r}" if principal.account else ""))
    return call_view(record)


HEALTH_CACHE_SECONDS = 30.0
_health_cache: dict[str, Any] = {}


def health() -> tuple[int, dict[str, Any]]:
    """`GET /health` (no key): the components' state, at most HEALTH_CACHE_SECONDS old when healthy.

    Anyone may call it, so a healthy answer is reused: however often it is hit, a healthy container
    makes 7 AWS requests (DescribeTable twice, GetQueueAttributes on the spill queue and on each
    dead-letter queue, one quarantine Query, one by_kind Query for the providers' state today; where the stage
    merges the rollup's detail, a Query of its marks and a LIST of what is staged) per HEALTH_CACHE_SECONDS. A
    degraded answer is checked again on every call, so recovery shows at once (the stage's throttling bounds that).
    A cached answer belongs to the settings it was found with.
    """
    settings, now = get_settings(), time.monotonic()
    cached = _health_cache.get("answer")
    if cached is not None and _health_cache["settings"] is settings and now < _health_cache["until"]:
        return cached
    answer = _check_health()
    if answer[0] == 200:
        _health_cache.update(answer=answer, settings=settings, until=now + HEALTH_CACHE_SECONDS)
    else:
        _health_cache.clear()
    return answer


def _dead_letter_components() -> dict[str, dict[str, Any]]:
    """Each dead-letter queue (chalicelib/ledger/dead_letters.py): empty → ok, else the records it holds."""
    components: dict[str, dict[str, Any]] = {}
    for name, url in dead_letters.queues().items():
        try:
            count = dead_letters.held(url)
            components[name] = {"status": "ok" if not count else "dead_lettered", "records": count}
        except Exception as exc:  # health reports failures, it does not raise them
            components[name] = {"status": "error", "error": type(exc).__name__}
    return components


def _check_health() -> tuple[int, dict[str, Any]]:
    """Each table answers DescribeTable, the spill queue is empty, no stream record is quarantined, both
    dead-letter queues are empty and no staged batch waits past the merge's bound → healthy; else degraded."""
    components: dict[str, Any] = {}
    for model in (CallRecord, ApiKey):
        try:
            status = model.describe_table()["TableStatus"]
            components[model.Meta.table_name] = {"status": "ok" if status == "ACTIVE" else status.lower()}
        except Exception as exc:  # health reports failures, it does not raise them
            components[model.Meta.table_name] = {"status": "error", "error": type(exc).__name__}
    try:
        backlog = calllog.spill_backlog()
        components["spill_queue"] = {"status": "ok" if not backlog else "backlog", "pending": backlog}
    except Exception as exc:
        components["spill_queue"] = {"status": "error", "error": type(exc).__name__}
    try:
        held, more = quarantine.count()
        components["rollup_quarantine"] = {"status": "ok" if not held else "quarantined", "records": held,
                                           **({"more": True} if more else {})}
    except Exception as exc:
        components["rollup_quarantine"] = {"status": "error", "error": type(exc).__name__}
    components.update(_dead_letter_components())
    if merge.minutes():
        try:
            components["rollup_merge"] = merge.health(clock.now())
        except Exception as exc:
            components["rollup_merge"] = {"status": "error", "error": type(exc).__name__}
    try:
        components["providers"] = providers.health_component(clock.now())
    except Exception as exc:
        components["providers"] = {"status": "error", "error": type(exc).__name__}
    healthy = all(c["status"] == "ok" for c in components.values())
    return (200 if healthy else 503), {"status": "healthy" if healthy else "degraded", "components": components}
