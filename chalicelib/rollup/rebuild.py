"""Rebuild aggregates from the call log: a closed day recalculated whole, or checked for drift first.

The stream keeps aggregates current; these jobs repair them (after a bug, a restore, a quarantined
record put right) from the call log, which is the source of truth while it is retained.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any, Callable, Iterable

from chalicelib import clock
from chalicelib.clock import midnight, parse_day, utc_today
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import calllog
from chalicelib.rollup import merge, store
from chalicelib.money import sums_exactly
from chalicelib.rollup.fold import AggregateKey, Delta, Fact, fold
from chalicelib.rollup.layout import INDEXED_COUNTERS, SCOPE_KINDS

MAX_RANGE_DAYS = 366
# A call belongs to the UTC day it started and reaches the stream when it ends, up to 15 minutes later (Lambda's
# limit); the detail tier's batches gather for up to 5 minutes more (layout.py's tiers), and where the stage merges
# them, wait for their chunk (merge.lag()). A day is closed for a rebuild, which would count again whatever is
# still to come, once all have passed, with room for the writes.
SETTLED_AFTER = timedelta(minutes=25)


def settled_after() -> timedelta:
    return SETTLED_AFTER + merge.lag()


def closes_at() -> str:
    """When yesterday closes, as the refusals say it: `00:25 UTC`."""
    minutes = int(settled_after().total_seconds() // 60)
    return f"{minutes // 60:02d}:{minutes % 60:02d} UTC"


def closed(day: date) -> bool:
    """Whether the stream has written all of a day: it ended `settled_after()` ago."""
    return day < utc_today() and clock.now() >= midnight(day + timedelta(days=1)) + settled_after()  # no overflow


def _facts(day: str) -> list[Fact]:
    """Every call of the day, read from all of its `by_day` shards."""
    return [Fact.from_call(call) for call in calllog.calls_of_day(day, newest_first=False)]


def recalculate(body: Any, progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Rebuild the aggregates of closed UTC days `from`..`to` from the call log (today stays with the stream)."""
    body = body if isinstance(body, dict) else {}
    first, last = parse_day(body.get("from"), "from"), parse_day(body.get("to", body.get("from")), "to")
    if last < first:
        raise InvalidRequest("`to` is before `from`")
    if not closed(last):
        raise InvalidRequest(f"only closed days can be rebuilt: today's aggregates (and until {closes_at()} "
                             "yesterday's) are still being written by the stream")
    if (last - first).days >= MAX_RANGE_DAYS:
        raise InvalidRequest(f"at most {MAX_RANGE_DAYS} days at a time")
    calllog.within_retention(first, "rebuilt")  # a rebuild deletes the day's aggregates first: never for an expired day
    days = [(first + timedelta(days=n)).isoformat() for n in range((last - first).days + 1)]
    calls = items = 0
    for done, day in enumerate(days, start=1):
        facts = _facts(day)
        items += store.replace_day(day, fold(facts))
        calls += len(facts)
        if progress:
            progress(done, len(days), day)
    return {"job": "recalculate", "from": days[0], "to": days[-1], "days": len(days), "calls": calls,
            "items": items}


@sums_exactly
def day_sums(deltas: Iterable[tuple[AggregateKey, Delta]]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each scope's day as the call log makes it: a sharded scope's day is the sum of its shards, as the index
    read sums them (at DynamoDB's 38 digits, so an exact sum is no drift)."""
    expected: dict[tuple[str, str], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for key, delta in deltas:
        if key.is_day_item:
            for counter, value in delta.counters.items():
                expected[(key.kind, key.scope_id)][counter] += value
    return expected


def reconcile(body: Any) -> dict[str, Any]:
    """Compare a day's stored aggregates with the call log; with `fix: true`, rebuild the day if it drifted."""
    body = body if isinstance(body, dict) else {}
    day = parse_day(body.get("day", (utc_today() - timedelta(days=1)).isoformat()), "day").isoformat()
    expected = day_sums(fold(_facts(day)).items())
    stored = {}
    for kind in SCOPE_KINDS:
        for item in store.query_kind(kind, day, day, max_requests=1000):
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
        if not closed(parse_day(day, "day")):
            result["note"] = f"the stream still writes this day: run again once it is closed ({closes_at()} after it)"
        else:
            recalculate({"from": day, "to": day})
            result["fixed"] = True
    return result
