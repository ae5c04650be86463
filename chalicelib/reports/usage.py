"""Usage reports for the JSON API (§4): summary, daily, timeseries, rolling window; aggregates only.

Each report is at most three DynamoDB requests whatever the call volume: one Query per family of small
items it needs (days, hours, 5-minute buckets, one breakdown), each projected to the counters it shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from chalicelib import clock
from chalicelib.clock import day_of, iso
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import Principal, scoped_account
from chalicelib.reports import aggregates as agg
from chalicelib.reports import ranges
from chalicelib.rollup import store
from chalicelib.rollup import BUCKETS_PER_DOUBLING, percentile
from chalicelib.rollup import (
    BREAKDOWN_SCOPES,
    CORE_COUNTERS,
    DAY,
    DAY_BREAKDOWN_ITEM,
    DAY_BREAKDOWNS,
    HOUR_BREAKDOWN_ITEM,
    HOUR_BREAKDOWNS,
    HOUR_ITEM,
    IN_OWN_ITEM,
    SEP,
    TOKEN_KINDS,
    Scope,
    breakdown_head,
    five_minute_prefix,
    hour_prefix,
    latency_counter,
    scope_id_of_day_id,
    split_breakdown,
    stored_name,
)
from chalicelib.query import Query

GROUPS = ("model", "provider", "account", "key", "operation", "team", "user")
WHOLE_ITEMS_DAYS = 3  # up to this many days, read whole items; beyond, project
LATENCY_NAMES = [latency_counter(DAY, i) for i in range(0, 21 * BUCKETS_PER_DOUBLING + 1)]  # up to ~35 min
DAY_COUNTERS = [*CORE_COUNTERS, *agg.REFUSED_COUNTERS, "lat_sum", *LATENCY_NAMES]


FILTERS = ("team", "key", "user", "model", "provider")  # at most one, besides the account


@dataclass(frozen=True)
class Target:
    """Which aggregate items answer: `item`'s scope, and for an account filtered by one of its splits, `part`."""

    item: Scope
    part: tuple[str, str] | None = None
    account: str | None = None

    def view(self) -> dict[str, Any]:
        out = {"scope": self.item.kind, "scope_id": self.item.stored_id}
        if self.part:
            out["filter"] = {self.part[0]: self.part[1]}
        return out

    @property
    def hourly(self) -> bool:
        """Whether the answer has hour (and 5-minute) counters: a scope's own, or an account's split by model
        or provider; its split by team, key or user is kept by the day."""
        return self.part is None or self.part[0] in HOUR_BREAKDOWNS


def resolve_scope(principal: Principal, params: Query) -> Target:
    """The item (and breakdown) that answers, named as the rollup stores names (long ones in short form).
    An account-scoped key always reads its account's items, whatever else it filters by."""
    account = scoped_account(principal, params.get("account"))
    named = [(name, params[name]) for name in FILTERS if params.get(name)]
    if len(named) > 1 and not (len(named) == 2 and {n for n, _ in named} == {"model", "provider"}):
        raise InvalidRequest(f"filter by one of {', '.join(FILTERS)} at a time (with or without an account)")
    dim, value = named[0] if named else (None, None)
    if account:
        return Target(Scope("account", account), (dim, stored_name(value)) if dim else None, account)
    return Target(Scope(dim, value)) if dim else Target(Scope.everything())


def _hourly_only(scope: Target) -> None:
    if not scope.hourly:
        raise InvalidRequest(f"an account's split by {scope.part[0]} is kept by the day: ask for whole days "
                             "(`days`, `start`/`end`, `month`)")


def _family(item: str, dim: str) -> str:
    """The family holding a breakdown: `b|model` (per day) or `bh|model` (per hour), or the day's or hour's
    own items for the few values kept there (providers)."""
    if dim in IN_OWN_ITEM:
        return "day" if item == DAY_BREAKDOWN_ITEM else HOUR_ITEM
    return f"{item}{SEP}{dim}"


def _five_minute_names(at: datetime) -> list[str]:
    """The 5-minute counters a report shows (no histograms: those are read by the hour)."""
    return [f"{five_minute_prefix(at)}{counter}" for counter in (*CORE_COUNTERS, *agg.REFUSED_COUNTERS)]


def _edge_and_hour_pairs(items: list[dict[str, Any]], edge: list[datetime],
                         whole_hours: list[datetime]) -> list[tuple[dict[str, Any], str]]:
    """The (day view, prefix) pairs of a range read as 5-minute buckets at its edge and whole hours after it."""
    return (agg.resolution_pairs(items, edge, five_minute_prefix)
            + agg.resolution_pairs(items, whole_hours, hour_prefix))


def _kind_breakdown(kind: str, first: str, last: str, whole: agg.Totals) -> dict[str, dict[str, Any]]:
    """All traffic split by provider or model over whole days: the by_kind index over those scopes' day items,
    and `(none)` for what `whole` counts beyond them."""
    entries = store.query_kind(kind, first, last)
    split = agg.breakdown_of_scopes(entries, lambda entry: scope_id_of_day_id(entry["day_id"]))
    return agg.reported(agg.with_none(split, whole))


def summary(principal: Principal, params: Query) -> dict[str, Any]:
    """Totals, error rate, tokens by kind, cost, latency percentiles, by provider and by model."""
    offset = params.integer("offset_hours", 0, 0, 24 * 366)  # the period before: offset_hours=hours
    if offset and not params.get("hours"):
        raise InvalidRequest("`offset_hours` goes with `hours`")
    period = ranges.parse(params, clock.now() - timedelta(hours=offset))
    scope = resolve_scope(principal, params)
    start, end = period.start, period.end
    first, last = period.first_day, period.last_day
    hours = period.named.get("hours")
    if hours and hours <= 48 and offset + hours <= 24 * (WHOLE_ITEMS_DAYS - 1) and scope.hourly:
        parts = [HOUR_ITEM] + ([_family(HOUR_BREAKDOWN_ITEM, "model")] if scope.item.kind in BREAKDOWN_SCOPES else [])
        slots = [slot for slot in agg.five_minutes_between(start, end) if slot >= start]
        edge, whole_hours = agg.edge_and_hours(slots, through_now=not offset)
        items = store.query_days(scope.item, first, last, _five_minute_names(start) if edge else [], parts=parts,
                                 since=start, five_minutes_until=edge[-1] if edge else None)
        pairs = _edge_and_hour_pairs(items, edge, whole_hours)
        hourly = agg.resolution_pairs(items, agg.hours_between(start, end), hour_prefix)
        since = slots[0] if slots else end
        return {**period.named, "from": iso(since), "to": iso(end), "resolution": "5m",
                "breakdown_from": iso(start.replace(minute=0, second=0, microsecond=0)),
                **scope.view(), **agg.summarize(pairs, scope.part, breakdown_pairs=hourly, latency_pairs=hourly,
                                                split=HOUR_BREAKDOWNS if scope.item.kind in BREAKDOWN_SCOPES else ())}
    since = start.replace(hour=0, minute=0, second=0, microsecond=0)
    head = {**period.named, "from": iso(since), "to": iso(end), "resolution": "1d", **scope.view()}
    if scope.item.is_everything:
        items = store.query_days(scope.item, first, last, DAY_COUNTERS, max_requests=1)
        whole = agg.total([(item, DAY) for item in items])
        return head | whole.view() | {"price_drift_calls": whole.drift,
                                      "by_provider": _kind_breakdown("provider", first, last, whole),
                                      "by_model": _kind_breakdown("model", first, last, whole)}
    dims = {dim for dim in ("provider", "model") if dim in DAY_BREAKDOWNS.get(scope.item.kind, ())}
    if scope.part:
        dims.add(scope.part[0])
    items = store.query_days(scope.item, first, last, DAY_COUNTERS,
                             parts=sorted({_family(DAY_BREAKDOWN_ITEM, dim) for dim in dims}))
    return head | agg.summarize([(item, DAY) for item in items], scope.part, split=dims)


def daily(principal: Principal, params: Query) -> dict[str, Any]:
    """Per UTC day, optionally grouped by model, provider, account, key, operation or team."""
    period = ranges.parse(params, clock.now(), default=("days", 30))
    group_by = params.get("group_by") or None
    if group_by and group_by not in GROUPS:
        raise InvalidRequest(f"`group_by` must be one of {', '.join(GROUPS)}")
    scope = resolve_scope(principal, params)
    first, last = period.first_day, period.last_day
    if group_by and scope.part:
        raise InvalidRequest("`group_by` cannot be combined with a filter besides the account")
    if group_by and scope.item.is_everything:  # the groups from the index, each day's totals from all traffic's
        items = store.query_kind(group_by, first, last)
        rows = agg.daily_groups(items, group_by, scope_of=lambda item: scope_id_of_day_id(item["day_id"]),
                                day_items=store.query_days(scope.item, first, last, CORE_COUNTERS, max_requests=10))
    elif group_by:
        splits = DAY_BREAKDOWNS.get(scope.item.kind, ())
        if group_by not in splits:
            raise InvalidRequest(f"for one {scope.item.kind}, `group_by` must be one of {', '.join(splits)}"
                                 if splits else f"`group_by` cannot be combined with a {scope.item.kind} filter")
        items = store.query_days(scope.item, first, last, CORE_COUNTERS,
                                 parts=[_family(DAY_BREAKDOWN_ITEM, group_by)])
        rows = agg.daily_groups(items, group_by)
    elif scope.part:
        items = store.query_days(scope.item, first, last, parts=[_family(DAY_BREAKDOWN_ITEM, scope.part[0])])
        rows = [{"day": item["day"]} | agg.total([(item, DAY)], scope.part).view(with_latency=False)
                for item in items]
    else:  # projected day items
        rows = agg.daily_groups(store.query_days(scope.item, first, last, CORE_COUNTERS, max_requests=10), None)
    return {**period.named, "from": first, "to": last, "group_by": group_by, **scope.view(), "daily": rows}


def timeseries(principal: Principal, params: Query) -> dict[str, Any]:
    """Points every 5 minutes (up to 48 h) or every hour (up to 7 days), with cost by provider hourly."""
    interval = params.get("interval") or "1h"
    if interval not in ("5m", "1h"):
        raise InvalidRequest("`interval` must be 5m or 1h")
    longest = 48 if interval == "5m" else 31 * 24
    period = ranges.parse(params, clock.now(), max_hours=longest, max_days=longest // 24)
    scope = resolve_scope(principal, params)
    _hourly_only(scope)
    if scope.part and interval == "5m":
        raise InvalidRequest("an account's split by model or provider is kept by the hour: use interval=1h")
    start, end = period.start, period.end
    first, last = period.first_day, period.last_day
    with_providers = interval == "1h" and scope.part is None and scope.item.kind in BREAKDOWN_SCOPES
    if interval == "5m":
        starts, prefix_of = agg.five_minutes_between(start, end), five_minute_prefix
        names = _five_minute_names(start)
    else:
        starts, prefix_of = agg.hours_between(start, end), hour_prefix
        names = [f"{hour_prefix(start)}{counter}" for counter in CORE_COUNTERS]
        split_counters = ("calls", "errors", "refused", "tok", *TOKEN_KINDS, "cost", "unpriced")
        if with_providers:  # the providers seen in the range name the hour items' provider counters
            providers = {scope_id_of_day_id(e["day_id"]) for e in store.query_kind("provider", first, last)}
            names += [f"{breakdown_head(hour_prefix(start), 'provider', stored_name(p))}{counter}"
                      for p in providers for counter in split_counters]
        if scope.part:
            names += [f"{breakdown_head(hour_prefix(start), *scope.part)}{counter}"
                      for counter in split_counters]
    items = store.query_days(scope.item, first, last, names, since=start)
    days = agg.by_day(items)
    buckets = [(t, [(days[day_of(t)], prefix_of(t))] if day_of(t) in days else []) for t in starts]
    points = agg.series(buckets, with_providers=with_providers, part=scope.part)
    return {**period.named, "from": iso(start), "to": iso(end), "interval": interval, **scope.view(),
            "points": points}


def window(principal: Principal, params: Query) -> dict[str, Any]:
    """Calls, tokens and cost in the rolling window of the last `minutes`, from 5-minute buckets."""
    minutes = params.integer("minutes", 300, 5, 24 * 60)
    scope = resolve_scope(principal, params)
    if scope.part:
        raise InvalidRequest("a rolling window is kept per scope: filter by account alone, or by one of "
                             f"{', '.join(FILTERS)} without an account")
    end = clock.now()
    start = end - timedelta(minutes=minutes) + timedelta(microseconds=1)
    slots = agg.five_minutes_between(start, end)
    edge, whole_hours = agg.edge_and_hours(slots, through_now=True)
    names = ((_five_minute_names(start) if edge else [])
             + ([f"{hour_prefix(start)}{counter}" for counter in CORE_COUNTERS] if whole_hours else []))
    items = store.query_days(scope.item, day_of(start), day_of(end), names, since=start,
                             five_minutes_until=edge[-1] if edge else None)
    totals = agg.total(_edge_and_hour_pairs(items, edge, whole_hours))
    return {"minutes": minutes, "from": iso(slots[0]), "to": iso(end), **scope.view(),
            **totals.view(with_latency=False)}


def models(principal: Principal, params: Query) -> dict[str, Any]:
    """Per model: calls, success rate, latency and time to first token (p50, p95), cost; from the hour items
    of each model's split (all traffic, an account or a team), so at most two days."""
    period = ranges.parse(params, clock.now(), max_hours=48, max_days=2)
    scope = resolve_scope(principal, params)
    if scope.part or scope.item.kind not in BREAKDOWN_SCOPES:
        raise InvalidRequest("latency per model is kept for all traffic, one account or one team: filter by "
                             "`account` or `team` only")
    items = store.query_days(scope.item, period.first_day, period.last_day,
                             parts=[HOUR_ITEM, _family(HOUR_BREAKDOWN_ITEM, "model")], since=period.start)
    pairs = agg.resolution_pairs(items, agg.hours_between(period.start, period.end), hour_prefix)
    values = {value for item, prefix in pairs for head in [breakdown_head(prefix, "model")] for name in item
              if name.startswith(head) for value, counter in [split_breakdown(name[len(head):])] if counter == "calls"}
    by_model = {}
    for model in values:
        totals = agg.Totals()
        for item, prefix in pairs:
            totals.add(item, breakdown_head(prefix, "model", model))
        by_model[model] = totals
    rest = agg.total(pairs)  # the calls without a model (refused before their body was read): `(none)`
    for totals in by_model.values():
        rest.absorb(totals, sign=-1)
    if rest.calls or rest.total_tokens or rest.cost:
        by_model[agg.NONE] = rest.absorb(by_model.get(agg.NONE, agg.Totals()))
    rows = [_model_row(model, totals) for model, totals in by_model.items()]
    rows.sort(key=lambda row: (-row["calls"], row["model"]))
    return {**period.named, "from": iso(period.start), "to": iso(period.end), **scope.view(), "models": rows}


def _model_row(model: str, totals: agg.Totals) -> dict[str, Any]:
    """A model's calls, errors and success rate among the calls sent to it (refusals aside), latency, cost."""
    view = totals.view()
    return {"model": model, "calls": totals.calls, "errors": totals.errors, "refused": totals.refused,
            "success_rate": round(1 - totals.errors / totals.answered, 4) if totals.answered > 0 else None,
            "latency_ms": {q: view["latency_ms"][q] for q in ("p50", "p95")},
            "ttft_ms": {f"p{q}": percentile(totals.ttft, q) for q in (50, 95)},
            "tokens": view["tokens"], "cost_usd": view["cost_usd"]}
