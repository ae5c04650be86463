"""Reading the aggregates: the one door to them above the rollup. Typed reads at the end (`spend`, `traffic`,
`day_totals`, `scope_days`, `breakdown_by_scope`) give `Totals`; no caller builds a counter name.

The maths before them is pure: items are plain dicts (one scope, one UTC day) as rollup/store.py returns
them; a *prefix* picks the resolution inside an item: "" for the day, "h07|" for an hour, "m0705|" for a
5-minute bucket.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable

from chalicelib.clock import day_of, iso, midnight
from chalicelib.errors import REFUSALS
from chalicelib.money import money, sums_exactly
from chalicelib.rollup import bucket_of, percentile
from chalicelib.rollup import store
from chalicelib.rollup import (
    DAY,
    ERROR_PREFIX,
    HOURLESS_KINDS,
    INDEXED_COUNTERS,
    SEP,
    TOKEN_KINDS,
    Scope,
    breakdown_head,
    five_minute_prefix,
    latency_counter,
    refusal_counter,
    scope_id_of_day_id,
    split_breakdown,
    stored_name,
    ttft_counter,
)

LATENCY_BUCKETS = bucket_of(24 * 3600 * 1000) + 1  # up to a day, far beyond any timeout
TOKEN_FIELDS = {"in": "input_tokens", "cr": "cache_read_tokens", "cw": "cache_write_tokens",
                "out": "output_tokens", "rs": "reasoning_tokens"}
NONE = "(none)"  # the group of calls without the grouped attribute (no user, team, operation…): groups add up
REFUSED_COUNTERS = [refusal_counter(error_type) for error_type in sorted(REFUSALS)]


@dataclass
class Totals:
    calls: int = 0
    errors: int = 0
    tokens: dict[str, int] = field(default_factory=lambda: {k: 0 for k in TOKEN_KINDS})
    cost: Decimal = Decimal(0)
    unpriced: int = 0
    drift: int = 0  # calls whose provider-stated cost and our estimate differ past the tolerance
    latency_sum: int = 0
    latency: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    errors_by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    unsplit_tokens: int = 0  # tokens known only as a total (hourly breakdowns)
    ttft: dict[int, int] = field(default_factory=lambda: defaultdict(int))  # streamed calls' first tokens
    refused: int = 0  # the gateway's own refusals: in `calls`, not in `errors` nor the latency
    refused_by_type: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    fallbacks: int = 0  # a provider's tries that failed before the call moved on to the next target (in `calls`)

    @sums_exactly
    def add(self, item: dict[str, Any], prefix: str) -> None:
        """Add one resolution's counters of one item (names exactly `prefix + counter`)."""
        self.calls += int(item.get(f"{prefix}calls", 0))
        self.errors += int(item.get(f"{prefix}errors", 0))
        self.refused += int(item.get(f"{prefix}refused", 0))
        self.fallbacks += int(item.get(f"{prefix}fallbacks", 0))
        for name in REFUSED_COUNTERS:
            if count := item.get(f"{prefix}{name}"):
                self.refused_by_type[name.split(SEP, 1)[1]] += int(count)
        for kind in TOKEN_KINDS:
            self.tokens[kind] += int(item.get(f"{prefix}{kind}", 0))
        self.cost += Decimal(item.get(f"{prefix}cost", 0))
        self.unpriced += int(item.get(f"{prefix}unpriced", 0))
        self.drift += int(item.get(f"{prefix}drift", 0))
        self.latency_sum += int(item.get(f"{prefix}lat_sum", 0))
        for index in range(LATENCY_BUCKETS):  # probe the known names: items hold thousands of attributes
            if (count := item.get(latency_counter(prefix, index))) is not None:
                self.latency[index] += int(count)
            if (count := item.get(ttft_counter(prefix, index))) is not None:
                self.ttft[index] += int(count)
        if prefix == DAY:  # errors by type are kept per day only
            for name, value in item.items():
                if name.startswith(ERROR_PREFIX):
                    self.errors_by_type[name[len(ERROR_PREFIX):]] += int(value)

    @sums_exactly
    def add_breakdown(self, item: dict[str, Any], prefix: str, dim: str, value: str) -> None:
        """Add one dimension value's share (`b|<dim>|<value>|…`); breakdowns carry no latency."""
        head = breakdown_head(prefix, dim, value)
        self.calls += int(item.get(f"{head}calls", 0))
        self.errors += int(item.get(f"{head}errors", 0))
        self.refused += int(item.get(f"{head}refused", 0))
        self.cost += Decimal(item.get(f"{head}cost", 0))
        self.unpriced += int(item.get(f"{head}unpriced", 0))
        for kind in TOKEN_KINDS:
            self.tokens[kind] += int(item.get(f"{head}{kind}", 0))
        self.unsplit_tokens += int(item.get(f"{head}tok", 0))

    @sums_exactly
    def absorb(self, other: Totals, sign: int = 1) -> Totals:
        """Add (or with `sign` -1, take away) another Totals' counts (a window made of buckets); returns self."""
        self.calls += sign * other.calls
        self.errors += sign * other.errors
        self.refused += sign * other.refused
        self.fallbacks += sign * other.fallbacks
        for kind, count in other.tokens.items():
            self.tokens[kind] += sign * count
        self.cost += sign * other.cost
        self.unpriced += sign * other.unpriced
        self.drift += sign * other.drift
        self.latency_sum += sign * other.latency_sum
        self.unsplit_tokens += sign * other.unsplit_tokens
        for mine, theirs in ((self.latency, other.latency), (self.ttft, other.ttft),
                             (self.errors_by_type, other.errors_by_type),
                             (self.refused_by_type, other.refused_by_type)):
            for key, count in theirs.items():
                mine[key] += sign * count
        return self

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens.values()) + self.unsplit_tokens

    @property
    def answered(self) -> int:
        """The calls the gateway sent on (all but its own refusals): what error and success rates divide by."""
        return self.calls - self.refused

    @property
    def error_rate(self) -> float:
        return round(self.errors / self.answered, 4) if self.answered > 0 else 0.0

    def tokens_view(self) -> dict[str, int]:
        """Tokens as every report shows them: by kind, and their `total`."""
        return {TOKEN_FIELDS[k]: v for k, v in self.tokens.items()} | {"total": self.total_tokens}

    def group_view(self) -> dict[str, Any]:
        """One group of a split (a model, a user, a day's provider…): the same fields in every report."""
        return {"calls": self.calls, "errors": self.errors, "tokens": self.tokens_view(),
                "cost_usd": money(self.cost), "unpriced_calls": self.unpriced}

    def view(self, with_latency: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "calls": self.calls, "errors": self.errors, "error_rate": self.error_rate, "refused": self.refused,
            "tokens": self.tokens_view(), "cost_usd": money(self.cost), "unpriced_calls": self.unpriced,
        }
        known_cost_only(out)
        if with_latency:
            out["latency_ms"] = {f"p{q}": percentile(self.latency, q) for q in (50, 95, 99)}
            out["latency_ms"]["mean"] = round(self.latency_sum / self.answered, 1) if self.answered > 0 else None
            out["errors_by_type"] = dict(self.errors_by_type)
            out["refused_by_type"] = {kind: count for kind, count in sorted(self.refused_by_type.items()) if count}
        return out


def known_cost_only(view: dict[str, Any]) -> dict[str, Any]:
    """A report's cost reads null when no call in it has a known cost: unpriced is never shown as $0.
    (`cost_usd` otherwise sums the priced calls; `unpriced_calls` says how many it leaves out.)"""
    if view["calls"] and view["unpriced_calls"] >= view["calls"]:
        view["cost_usd"] = None
    return view


def reported(groups: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """A breakdown as reports show it: see `known_cost_only`."""
    return {value: known_cost_only(view) for value, view in groups.items()}


@sums_exactly
def breakdown(items: Iterable[dict[str, Any]], prefixes: Iterable[tuple[dict[str, Any], str]] | None,
              dim: str) -> dict[str, dict[str, Any]]:
    """`{value: {calls, errors, tokens, cost_usd, unpriced_calls}}` for one dimension, from
    `b|<dim>|<value>|<counter>`; `cost_usd` sums the priced calls (reports pass it through `reported`)."""
    sums: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    pairs = prefixes if prefixes is not None else ((item, "") for item in items)
    for item, prefix in pairs:
        head = breakdown_head(prefix, dim)
        for name, value in item.items():
            if not name.startswith(head):
                continue
            scope_value, counter = split_breakdown(name[len(head):])
            sums[scope_value][counter] += value
    return {value: _breakdown_view(counters) for value, counters in sorted(sums.items()) if _counted(counters)}


@sums_exactly
def breakdown_of_scopes(entries: Iterable[dict[str, Any]], scope_of) -> dict[str, dict[str, Any]]:
    """Like `breakdown`, from one entry per scope and day (the by_kind index): each scope is a value."""
    sums: dict[str, dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    for entry in entries:
        for counter in ("calls", "errors", "cost", "unpriced", *TOKEN_KINDS):
            sums[scope_of(entry)][counter] += entry.get(counter, 0)
    return {value: _breakdown_view(counters) for value, counters in sorted(sums.items()) if _counted(counters)}


def _counted(counters: dict[str, Any]) -> bool:
    """Whether a group holds anything: an erased user's (or an expired session's) counters stay as zeros in the
    items, and a group of zeros is no row."""
    return any(counters.values())


def _breakdown_view(counters: dict[str, Any]) -> dict[str, Any]:
    return _group_totals(counters).group_view()


def _group_totals(counters: dict[str, Any]) -> Totals:
    totals = Totals(calls=int(counters.get("calls", 0)), errors=int(counters.get("errors", 0)),
                    cost=Decimal(counters.get("cost", 0)), unpriced=int(counters.get("unpriced", 0)),
                    unsplit_tokens=int(counters.get("tok", 0)))
    for kind in TOKEN_KINDS:
        totals.tokens[kind] = int(counters.get(kind, 0))
    return totals


@sums_exactly
def with_none(groups: dict[str, dict[str, Any]], whole: Totals) -> dict[str, dict[str, Any]]:
    """A split with its `(none)` group: what `whole` counts beyond the groups (the calls without the attribute),
    so the groups' calls, tokens and cost add up to the whole. Before `reported`: group costs are still amounts."""
    rest = Totals(calls=whole.calls, errors=whole.errors, cost=whole.cost, unpriced=whole.unpriced,
                  unsplit_tokens=whole.total_tokens)
    for group in groups.values():
        rest.calls -= group["calls"]
        rest.errors -= group["errors"]
        rest.cost -= Decimal(group["cost_usd"] or 0)
        rest.unpriced -= group["unpriced_calls"]
        rest.unsplit_tokens -= group["tokens"]["total"]
        for kind in TOKEN_KINDS:
            rest.tokens[kind] -= group["tokens"][TOKEN_FIELDS[kind]]
    for kind in TOKEN_KINDS:
        rest.tokens[kind] += whole.tokens[kind]
    rest.unsplit_tokens -= sum(rest.tokens.values())
    if not (rest.calls or rest.total_tokens or rest.cost or rest.unpriced or rest.errors):
        return groups
    if NONE in groups:  # a caller's own value spelled `(none)`: the two are one group
        rest.absorb(_group_totals(_counters_of(groups[NONE])))
    return {**groups, NONE: rest.group_view()}


def _counters_of(group: dict[str, Any]) -> dict[str, Any]:
    tokens = group["tokens"]
    return {"calls": group["calls"], "errors": group["errors"], "cost": Decimal(group["cost_usd"] or 0),
            "unpriced": group["unpriced_calls"],
            "tok": tokens["total"] - sum(tokens[TOKEN_FIELDS[k]] for k in TOKEN_KINDS),
            **{kind: tokens[TOKEN_FIELDS[kind]] for kind in TOKEN_KINDS}}


def hours_between(start: datetime, end: datetime) -> list[datetime]:
    """Hour starts from the hour holding `start` to the one holding `end`."""
    hour = start.replace(minute=0, second=0, microsecond=0)
    hours = []
    while hour <= end:
        hours.append(hour)
        hour += timedelta(hours=1)
    return hours


def five_minutes_between(start: datetime, end: datetime) -> list[datetime]:
    slot = start.replace(minute=start.minute - start.minute % 5, second=0, microsecond=0)
    slots = []
    while slot <= end:
        slots.append(slot)
        slot += timedelta(minutes=5)
    return slots


def edge_and_hours(slots: list[datetime], through_now: bool) -> tuple[list[datetime], list[datetime]]:
    """(5-minute slots, hour starts) that cover `slots` in as few items as can be read. A range that runs to now
    reads hour items from its first whole hour on (an hour holds nothing past now) and 5-minute buckets only for
    the part-hour before it, so a day's report reads 24 hours and at most 11 buckets, not 288 buckets.
    A range that ends in the past keeps every 5-minute slot: its last hour may hold calls after its end."""
    if not slots or not through_now:
        return slots, []
    first_hour = slots[0] if slots[0].minute == 0 else slots[0].replace(minute=0) + timedelta(hours=1)
    return [slot for slot in slots if slot < first_hour], hours_between(first_hour, slots[-1])


def by_day(items: Iterable[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {item["day"]: item for item in items}




def resolution_pairs(items: Iterable[dict[str, Any]], starts: list[datetime], prefix_of) -> list[tuple[dict, str]]:
    days = by_day(items)
    return [(days[day_of(t)], prefix_of(t)) for t in starts if day_of(t) in days]


def total(pairs: list[tuple[dict[str, Any], str]], part: tuple[str, str] | None = None) -> Totals:
    """Totals over (item, prefix) pairs: the item's own counters, or one breakdown `part` (dim, value)."""
    totals = Totals()
    for item, prefix in pairs:
        if part:
            totals.add_breakdown(item, prefix, *part)
        else:
            totals.add(item, prefix)
    return totals


def summarize(pairs: list[tuple[dict[str, Any], str]], part: tuple[str, str] | None = None,
              breakdown_pairs: list[tuple[dict[str, Any], str]] | None = None,
              latency_pairs: list[tuple[dict[str, Any], str]] | None = None,
              split: Iterable[str] = ("provider", "model")) -> dict[str, Any]:
    """Totals and latency percentiles over (item, prefix) pairs; the provider and model breakdowns over
    `breakdown_pairs` (breakdowns exist by the hour and by the day only), by default the same pairs; the
    latency over `latency_pairs` when the pairs carry no histograms (5-minute buckets are read without).
    The dimensions in `split` are kept for these items: each of their breakdowns has its `(none)` group, so it
    adds up to the totals of `breakdown_pairs`."""
    coarse = pairs if breakdown_pairs is None else breakdown_pairs
    totals = total(coarse if part else pairs, part)
    view = totals.view(with_latency=part is None)
    # The summary's pairs carry `drift`; breakdowns keep none: within one, not known rather than 0.
    view["price_drift_calls"] = None if part else totals.drift
    if latency_pairs is not None and part is None:
        latency = total(latency_pairs).view()
        view["latency_ms"], view["errors_by_type"] = latency["latency_ms"], latency["errors_by_type"]
    whole, split = total(coarse), set(split)
    return view | {
        f"by_{dim}": reported(with_none(breakdown([], coarse, dim), whole) if dim in split else breakdown([], coarse, dim))
        for dim in ("provider", "model")}


def series(pairs_by_start: list[tuple[datetime, list[tuple[dict[str, Any], str]]]],
           with_providers: bool, part: tuple[str, str] | None = None) -> list[dict[str, Any]]:
    """One point per bucket start: totals (and the provider breakdown where the resolution has it)."""
    points = []
    for start, pairs in pairs_by_start:
        point = {"ts": iso(start)} | total(pairs, part).view(with_latency=False)
        if with_providers:
            point["by_provider"] = reported(with_none(breakdown([], pairs, "provider"), total(pairs)))
        points.append(point)
    return points


def daily_groups(items: Iterable[dict[str, Any]], dim: str | None, scope_of=None,
                 day_items: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Per day: totals, and per group value when grouped (from breakdowns, or one item per scope), with the
    `(none)` group of the calls without the attribute. With `scope_of`, `items` are the scopes' items (the
    by_kind index) and `day_items` the whole's day items, which give each day's totals."""
    days: dict[str, dict[str, Any]] = {}

    def day_of_item(item: dict[str, Any]) -> dict[str, Any]:
        return days.setdefault(item["day"], {"day": item["day"], "_totals": Totals(), "groups": {}})

    for item in day_items:
        day_of_item(item)["_totals"].add(item, "")
    for item in sorted(items, key=lambda i: i["day"]):
        day = day_of_item(item)
        if scope_of is not None:  # one item per scope value (the by_kind index)
            totals = Totals()
            totals.add(item, "")
            if totals.calls:  # an erased user's item stays, with zeros: no row
                day["groups"][scope_of(item)] = totals.group_view()
        else:
            day["_totals"].add(item, "")
            if dim:
                day["groups"].update(breakdown([item], None, dim))
    out = []
    for day in sorted(days.values(), key=lambda d: d["day"]):
        totals = day.pop("_totals")
        view = {"day": day["day"]} | totals.view(with_latency=False)
        if dim:
            view["groups"] = reported(with_none(day["groups"], totals))
        out.append(view)
    return out


# --- spans of time: whole days and their edges (pure) ---------------------------------------------------------

def days_of(start: datetime, end: datetime) -> list[str]:
    """UTC days overlapping [start, end)."""
    days, day = [], start.replace(hour=0, minute=0, second=0, microsecond=0)
    while day < end:
        days.append(day_of(day))
        day += timedelta(days=1)
    return days


def whole_days(start: datetime, end: datetime) -> set[str]:
    """UTC days entirely inside [start, end)."""
    return {d for d in days_of(start, end)
            if midnight(d) >= start and midnight(d) + timedelta(days=1) <= end}


def _slot_prefixes(item: dict[str, Any], full: set[str], start: datetime, end: datetime) -> list[str]:
    """The counter prefixes of `item` inside [start, end): the day's own for a whole day, else its 5-minute slots."""
    if item["day"] in full:
        return [DAY]
    day = midnight(item["day"])
    return [five_minute_prefix(slot) for slot in (day + timedelta(minutes=5 * n) for n in range(288))
            if start <= slot < end]


def totals_in(items: list[dict[str, Any]], start: datetime, end: datetime) -> Totals:
    """What a scope's items count in [start, end): day counters for whole days, 5-minute buckets at the edges."""
    full = whole_days(start, end)
    return total([(item, prefix) for item in items for prefix in _slot_prefixes(item, full, start, end)])


# --- typed reads ---------------------------------------------------------------------------------------------

def has_time_buckets(kind: str) -> bool:
    """Whether a scope of this kind keeps hours and 5-minute buckets (a rolling window or a zone's midnight can be
    measured), not only whole UTC days."""
    return kind not in HOURLESS_KINDS


def spend(kind: str, scope_id: str, start: datetime, end: datetime, now: datetime | None = None) -> Totals:
    """Calls, cost and tokens one scope counted in [start, end) (days after `now` are not read): whole days from
    their day counters in one projected Query, the edge days (at most two) from their 5-minute buckets."""
    until = min(end, now) if now is not None and now > start else end
    full, days = whole_days(start, end), days_of(start, until)
    scope, items = Scope(kind, scope_id), []
    if full:
        items += store.query_days(scope, min(full), max(full), INDEXED_COUNTERS)
    names = [f"{five_minute_prefix(start)}{counter}" for counter in INDEXED_COUNTERS]
    for edge in (d for d in days if d not in full):
        items += store.query_days(scope, edge, edge, names, since=start if edge == days[0] else None)
    return totals_in(items, start, end)


def user_spend(account: str, user: str, start: datetime, end: datetime) -> Totals:
    """Calls, cost and tokens of one account's user over the UTC days [start, end) touches (users are kept by the
    day only): the account's split by user, one projected Query. The user's own scope sums every account's."""
    value = stored_name(user)
    names = [f"{breakdown_head(DAY, 'user', value)}{counter}" for counter in INDEXED_COUNTERS]
    last = day_of(max(start, end - timedelta(microseconds=1)))
    items = store.query_days(Scope("account", account), day_of(start), last, names)
    return total([(item, DAY) for item in items], part=("user", value))


def traffic(kind: str, scope_id: str, start: datetime, end: datetime) -> dict[datetime, Totals]:
    """One scope's calls, errors, refusals and latency histogram per 5-minute bucket, from the bucket holding `start` to the
    one holding `end` (buckets with no calls left out): one projected Query per family."""
    names = [f"{five_minute_prefix(start)}{counter}"
             for counter in ("calls", "errors", "refused", "fallbacks",
                             *(latency_counter(DAY, i) for i in range(LATENCY_BUCKETS)))]
    days = by_day(store.query_days(Scope(kind, scope_id), day_of(start), day_of(end), names, since=start))
    slots = {}
    for slot in five_minutes_between(start, end):
        if (item := days.get(day_of(slot))) is not None:
            slots[slot] = total([(item, five_minute_prefix(slot))])
    return slots


def since_bucket(slots: dict[datetime, Totals], start: datetime) -> Totals:
    """The buckets of `traffic` from the one holding `start` on, summed."""
    first = five_minutes_between(start, start)[0]
    window = Totals()
    for slot, totals in slots.items():
        if slot >= first:
            window.absorb(totals)
    return window


def day_totals(kind: str, scope_id: str, first_day: str, last_day: str, every_counter: bool = False) -> Totals:
    """One scope over whole UTC days: calls, errors, cost and tokens (one projected Query), or with
    `every_counter` its errors by type and latency too."""
    scope = Scope(kind, scope_id)
    items = (store.query_days(scope, first_day, last_day, parts=["day"]) if every_counter
             else store.query_days(scope, first_day, last_day, INDEXED_COUNTERS))
    return total([(item, DAY) for item in items])


def scope_days(kind: str, first_day: str, last_day: str, max_requests: int = 3) -> dict[str, dict[str, Totals]]:
    """Every scope of one kind with calls in the days, `{scope_id: {day: Totals}}` (calls, errors, cost, tokens),
    from the by_kind index."""
    found: dict[str, dict[str, Totals]] = defaultdict(dict)
    for entry in store.query_kind(kind, first_day, last_day, max_requests=max_requests):
        found[scope_id_of_day_id(entry["day_id"])][entry["day"]] = total([(entry, DAY)])
    return dict(found)


def breakdown_by_scope(kind: str, first_day: str, last_day: str, max_requests: int = 3) -> dict[str, dict[str, Any]]:
    """All traffic split by the scopes of one kind (model, account, operation…) over whole days, as `breakdown`
    shows a split: those scopes' own day items, through the by_kind index."""
    return breakdown_of_scopes(store.query_kind(kind, first_day, last_day, max_requests=max_requests),
                               lambda entry: scope_id_of_day_id(entry["day_id"]))
