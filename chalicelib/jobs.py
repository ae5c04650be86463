"""Admin jobs over the call log: rebuild aggregates of closed days, and check a day for drift."""
from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable

from . import aggstore
from .digest import digest
from .evaluate import evaluate
from .errors import InvalidRequest, NotFound
from .models import CallRecord
from .rollup import INDEXED_COUNTERS, SCOPE_KINDS, Fact, fold

MAX_RANGE_DAYS = 366


def _parse_day(value: Any, name: str) -> date:
    try:
        return datetime.strptime(str(value), "%Y-%m-%d").date()
    except ValueError:
        raise InvalidRequest(f"`{name}` must be a date like 2026-01-31") from None


def _today() -> date:
    return datetime.now(timezone.utc).date()


def _facts(day: str) -> list[Fact]:
    return [Fact.from_call(call) for call in CallRecord.by_day.query(day)]


def recalculate(body: Any, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Rebuild the aggregates of closed UTC days `from`..`to` from the call log (today stays with the stream)."""
    body = body if isinstance(body, dict) else {}
    first, last = _parse_day(body.get("from"), "from"), _parse_day(body.get("to", body.get("from")), "to")
    if last < first:
        raise InvalidRequest("`to` is before `from`")
    if last >= _today():
        raise InvalidRequest("only closed days can be rebuilt: today's aggregates are still being written "
                             "by the stream")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidRequest(f"at most {MAX_RANGE_DAYS} days at a time")
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    calls = items = 0
    for done, day in enumerate(days, start=1):
        facts = _facts(day)
        items += aggstore.replace_day(day, fold(facts))
        calls += len(facts)
        if progress:
            progress(done, len(days), day)
    return {"job": "recalculate", "from": days[0], "to": days[-1], "days": len(days), "calls": calls,
            "items": items}


def reconcile(body: Any) -> dict[str, Any]:
    """Compare a day's stored aggregates with the call log; with `fix: true`, rebuild the day if it drifted."""
    body = body if isinstance(body, dict) else {}
    day = _parse_day(body.get("day", (_today() - timedelta(days=1)).isoformat()), "day").isoformat()
    expected = {(key.kind, key.scope_id): delta.counters for key, delta in fold(_facts(day)).items()}
    stored = {}
    for kind in SCOPE_KINDS:
        for item in aggstore.query_kind(kind, day, day, max_requests=1000):
            stored[(kind, item["day_id"].split("#", 1)[1])] = item
    drift = []
    for scope in sorted(set(expected) | set(stored)):
        want, have = expected.get(scope, {}), stored.get(scope, {})
        for counter in INDEXED_COUNTERS:
            if want.get(counter, 0) != have.get(counter, 0):
                drift.append({"scope": scope[0], "scope_id": scope[1], "counter": counter,
                              "call_log": str(want.get(counter, 0)), "aggregates": str(have.get(counter, 0))})
    result: dict[str, Any] = {"job": "reconcile", "day": day, "scopes": len(expected), "drift": drift,
                              "fixed": False}
    if drift and body.get("fix") is True:
        if day >= _today().isoformat():
            result["note"] = "today cannot be rebuilt while the stream writes it; run again tomorrow"
        else:
            recalculate({"from": day, "to": day})
            result["fixed"] = True
    return result


JOBS: dict[str, Callable[[Any], dict[str, Any]]] = {"recalculate": recalculate, "reconcile": reconcile,
                                                    "evaluate": evaluate, "digest": digest}


def run(job: str, body: Any) -> dict[str, Any]:
    if job not in JOBS:
        raise NotFound(f"unknown job {job!r}; available: {', '.join(sorted(JOBS))}")
    return JOBS[job](body)
