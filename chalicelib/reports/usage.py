"""Usage reports for the JSON API (§4): summary, daily, timeseries, rolling window; aggregates only.

Each report is at most three DynamoDB requests whatever the call volume: one Query per family of small
items it needs (days, hours, 5-minute buckets, one breakdown), each projected to the counters it shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib.clock import day_of, iso, utc_now
from chalicelib.edge import int_param
from chalicelib.errors import InvalidRequest
from chalicelib.ledger.auth import Principal, scoped_account
from chalicelib.reports import aggregates as agg
from chalicelib.rollup import store
from chalicelib.rollup.histogram import BUCKETS_PER_DOUBLING
from chalicelib.rollup.layout import (
    BREAKDOWN_SCOPES,
    CORE_COUNTERS,
    DAY,
    DAY_BREAKDOWN_ITEM,
    DAY_BREAKDOWNS,
    HOUR_BREAKDOWN_ITEM,
    HOUR_ITEM,
    IN_OWN_ITEM,
    INDEXED_COUNTERS,
    SEP,
    Scope,
    breakdown_head,
    five_minute_prefix,
    hour_prefix,
    latency_counter,
    scope_id_of_day_id,
    stored_name,
)

GROUPS = ("model", "provider", "account", "key", "operation", "team")
ACCOUNT_GROUPS = ("model", "provider", "key", "operation", "team")
WHOLE_ITEMS_DAYS = 3  # up to this many days, read whole items; beyond, project
LATENCY_NAMES = [latency_counter(DAY, i) for i in range(0, 21 * BUCKETS_PER_DOUBLING + 1)]  # up to ~35 min
DAY_COUNTERS = [*INDEXED_COUNTERS, "lat_sum", *LATENCY_NAMES]


@dataclass(frozen=True)
class Target:
    """Which aggregate items answer: `item`'s scope, and for an account filtered by model or provider, `part`."""

    item: Scope
    part: tuple[str, str] | None = None
    account: str | None = None

    def view(self) -> dict[str, Any]:
        out = {"scope": self.item.kind, "scope_id": self.item.stored_id}
        if self.part:
            out["filter"] = {self.part[0]: self.part[1]}
        return out


def resolve_scope(principal: Principal, params: dict[str, str]) -> Target:
    """The item (and breakdown) that answers, named as the rollup stores names (long ones in short form)."""
    account = scoped_account(principal, params.get("account"))
    provider, model = params.get("provider") or None, params.get("model") or None
    for name in ("team", "key"):
        if params.get(name):
            if account:
                raise InvalidRequest(f"`{name}` cannot be combined with an account")
            return Target(Scope(name, params[name]))
    if account:
        part = ("model", stored_name(model)) if model else ("provider", stored_name(provider)) if provider else None
        return Target(Scope("account", account), part, account)
    if model:
        return Target(Scope("model", model))
    if provider:
        return Target(Scope("provider", provider))
    return Target(Scope.everything())





def _family(item: str, dim: str) -> str:
    """The family holding a breakdown: `b|model` (per day) or `bh|model` (per hour), or the day's or hour's
    own items for the few values kept there (providers)."""
    if dim in IN_OWN_ITEM:
        return "day" if item == DAY_BREAKDOWN_ITEM else HOUR_ITEM
    return f"{item}{SEP}{dim}"


def _five_minute_names(at: datetime) -> list[str]:
    """The 5-minute counters a report shows (no histograms: those are read by the hour)."""
    return [f"{five_minute_prefix(at)}{counter}" for counter in CORE_COUNTERS]


def _kind_breakdown(kind: str, first: str, last: str) -> dict[str, dict[str, Any]]:
    """All traffic split by provider or model over whole days: the by_kind index over those scopes' day items."""
    entries = store.query_kind(kind, first, last)
    return agg.reported(agg.breakdown_of_scopes(entries, lambda entry: scope_id_of_day_id(entry["day_id"])))


def summary(principal: Principal, params: dict[str, str]) -> dict[str, Any]:
    """Totals, error rate, tokens by kind, cost, latency percentiles, by provider and by model."""
    hours = int_param(params, "hours", 24, 1, 24 * 366)
    offset = int_param(params, "offset_hours", 0, 0, 24 * 366)  # the period before: offset_hours=hours
    scope = resolve_scope(principal, params)
    end = utc_now() - timedelta(hours=offset)
    start = end - timedelta(hours=hours) + timedelta(microseconds=1)
    first, last = day_of(start), day_of(end)
    if hours <= 48 and offset + hours <= 24 * (WHOLE_ITEMS_DAYS - 1):
        parts = [HOUR_ITEM] + ([_family(HOUR_BREAKDOWN_ITEM, "model")] if scope.item.kind in BREAKDOWN_SCOPES else [])
        items = store.query_days(scope.item, first, last, _five_minute_names(start), parts=parts, since=start)
        slots = [slot for slot in agg.five_minutes_between(start, end) if slot >= start]
        pairs = agg.resolution_pairs(items, slots, five_minute_prefix)
        hourly = agg.resolution_pairs(items, agg.hours_between(start, end), hour_prefix)
        since = slots[0] if slots else end
        return {"hours": hours, "from": iso(since), "to": iso(end), "resolution": "5m",
                "breakdown_from": iso(start.replace(minute=0, second=0, microsecond=0)),
                **scope.view(), **agg.summarize(pairs, scope.part, breakdown_pairs=hourly, latency_pairs=hourly)}
    since = start.replace(hour=0, minute=0, second=0, microsecond=0)
    head = {"hours": hours, "from": iso(since), "to": iso(end), "resolution": "1d", **scope.view()}
    if scope.item.is_everything:
        items = store.query_days(scope.item, first, last, DAY_COUNTERS, max_requests=1)
        return head | agg.total([(item, DAY) for item in items]).view() | {
            "by_provider": _kind_breakdown("provider", first, last), "by_model": _kind_breakdown("model", first, last)}
    dims = [dim for dim in ("provider", "model") if dim in DAY_BREAKDOWNS.get(scope.item.kind, ())]
    items = store.query_days(scope.item, first, last, DAY_COUNTERS,
                             parts=[_family(DAY_BREAKDOWN_ITEM, dim) for dim in dims])
    return head | agg.summarize([(item, DAY) for item in items], scope.part)


def daily(principal: Principal, params: dict[str, str]) -> dict[str, Any]:
    """Per UTC day, optionally grouped by model, provider, account, key, operation or team."""
    days = int_param(params, "days", 30, 1, 366)
    group_by = params.get("group_by") or None
    if group_by and group_by not in GROUPS:
        raise InvalidRequest(f"`group_by` must be one of {', '.join(GROUPS)}")
    scope = resolve_scope(principal, params)
    end = utc_now()
    first, last = day_of(end - timedelta(days=days - 1)), day_of(end)
    if group_by and (scope.part or not scope.item.has_breakdowns):
        raise InvalidRequest("`group_by` cannot be combined with a provider, model, team or key filter")
    if group_by and scope.account is None:
        items = store.query_kind(group_by, first, last)
        rows = agg.daily_groups(items, group_by, scope_of=lambda item: scope_id_of_day_id(item["day_id"]))
    elif group_by:
        if group_by not in ACCOUNT_GROUPS:
            raise InvalidRequest(f"for one account, `group_by` must be one of {', '.join(ACCOUNT_GROUPS)}")
        items = store.query_days(scope.item, first, last, INDEXED_COUNTERS,
                                 parts=[_family(DAY_BREAKDOWN_ITEM, group_by)])
        rows = agg.daily_groups(items, group_by)
    elif scope.part:
        items = store.query_days(scope.item, first, last, parts=[_family(DAY_BREAKDOWN_ITEM, scope.part[0])])
        rows = [{"day": item["day"]} | agg.total([(item, DAY)], scope.part).view(with_latency=False)
                for item in items]
    elif scope.item.is_everything:  # the index holds the day counters: small entries, not whole days
        rows = agg.daily_groups(store.query_kind("global", first, last), None)
    else:
        rows = agg.daily_groups(store.query_days(scope.item, first, last, INDEXED_COUNTERS, max_requests=10), None)
    return {"days": days, "from": first, "to": last, "group_by": group_by, **scope.view(), "daily": rows}


def timeseries(principal: Principal, params: dict[str, str]) -> dict[str, Any]:
    """Points every 5 minutes (up to 48 h) or every hour (up to 7 days), with cost by provider hourly."""
    interval = params.get("interval") or "1h"
    if interval not in ("5m", "1h"):
        raise InvalidRequest("`interval` must be 5m or 1h")
    hours = int_param(params, "hours", 24, 1, 48 if interval == "5m" else 168)
    scope = resolve_scope(principal, params)
    end = utc_now()
    start = end - timedelta(hours=hours) + timedelta(microseconds=1)
    first, last = day_of(start), day_of(end)
    with_providers = interval == "1h" and scope.part is None and scope.item.kind in BREAKDOWN_SCOPES
    if interval == "5m":
        starts, prefix_of = agg.five_minutes_between(start, end), five_minute_prefix
        names = _five_minute_names(start)
    else:
        starts, prefix_of = agg.hours_between(start, end), hour_prefix
        names = [f"{hour_prefix(start)}{counter}" for counter in CORE_COUNTERS]
        if with_providers:  # the providers seen in the range name the hour items' provider counters
            providers = {scope_id_of_day_id(e["day_id"]) for e in store.query_kind("provider", first, last)}
            names += [f"{breakdown_head(hour_prefix(start), 'provider', stored_name(p))}{counter}"
                      for p in providers for counter in ("calls", "errors", "tok", "cost", "unpriced")]
        if scope.part:
            names += [f"{breakdown_head(hour_prefix(start), *scope.part)}{counter}"
                      for counter in ("calls", "errors", "tok", "cost", "unpriced")]
    items = store.query_days(scope.item, first, last, names, since=start)
    days = agg.by_day(items)
    buckets = [(t, [(days[day_of(t)], prefix_of(t))] if day_of(t) in days else []) for t in starts]
    points = agg.series(buckets, with_providers=with_providers, part=scope.part)
    return {"hours": hours, "interval": interval, **scope.view(), "points": points}


def window(principal: Principal, params: dict[str, str]) -> dict[str, Any]:
    """Calls, tokens and cost in the rolling window of the last `minutes`, from 5-minute buckets."""
    minutes = int_param(params, "minutes", 300, 5, 24 * 60)
    scope = resolve_scope(principal, params)
    if scope.part:
        raise InvalidRequest("a rolling window is kept per scope: filter by account, or by model/provider alone")
    end = utc_now()
    start = end - timedelta(minutes=minutes) + timedelta(microseconds=1)
    items = store.query_days(scope.item, day_of(start), day_of(end), _five_minute_names(start), since=start)
    slots = agg.five_minutes_between(start, end)
    totals = agg.total(agg.resolution_pairs(items, slots, five_minute_prefix))
    return {"minutes": minutes, "from": iso(slots[0]), "to": iso(end), **scope.view(),
            **totals.view(with_latency=False)}
