"""Fold call records into aggregate deltas: one item per (scope, UTC day) with day, hour and 5-minute counters.

Pure: no AWS. The item layout (keys, counter names) is chalicelib/rollup/layout.py's. Keeping a whole
day in one item is what makes a batch cost one write per scope value it touches. Names that come from
calls (model, operation, account, …) enter keys and attribute names through `stored_name`, so no
caller can make an item's key or attribute name unbounded.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable

from chalicelib.clock import day_of
from chalicelib.rollup.histogram import bucket_of
from chalicelib.rollup.layout import (
    BREAKDOWN_SCOPES,
    DAY,
    DAY_BREAKDOWNS,
    GLOBAL_ID,
    HOUR_BREAKDOWNS,
    SCOPE_KINDS,
    TOKEN_KINDS,
    Scope,
    breakdown_head,
    dim_entry,
    error_counter,
    five_minute_prefix,
    hour_prefix,
    lane_of,
    latency_counter,
    stored_name,
)

# What one call may add to a counter: DynamoDB Numbers hold 38 digits, and a day item sums many calls.
TOKENS_MAX = 10**12  # CONTRACT §2: upstream counts outside [0, 10^12) are logged as usage_invalid
COST_MAX_USD = 10**9
LATENCY_MAX_MS = 10**10


@dataclass(frozen=True)
class Fact:
    """One call's contribution: +1 when logged, -1 when deleted (erasure); `seq` orders it in its lane.

    A call changed in place (re-priced) is one fact: the call as it is now (+1) with `was`, the call as it
    was (-1), folded together, so the difference lands whole or not at all under one stream position.
    """

    sign: int
    lane: str  # stream label + call-log partition (account): sequence numbers only order records within it
    seq: int
    ts: datetime
    account: str
    key_id: str
    provider: str
    model: str | None
    operation: str | None
    team: str | None
    is_error: bool
    error_type: str | None
    tokens: tuple[int, int, int, int, int]  # TOKEN_KINDS order
    cost_usd: Decimal | None
    latency_ms: int
    was: "Fact | None" = None  # a change: the call before it, with sign -1 and the same lane and seq

    @classmethod
    def from_call(cls, call: Any, sign: int = 1, seq: int = 0, stream: str = "") -> "Fact":
        """From a CallRecord (or anything with its attributes), as delivered by `stream` (its label)."""
        return cls(
            sign=sign, lane=lane_of(stream, call.account), seq=seq,
            ts=datetime.strptime(call.ts, "%Y-%m-%dT%H:%M:%S.%fZ"),
            account=call.account, key_id=call.key_id, provider=call.provider, model=call.model,
            operation=call.operation, team=call.team,
            is_error=call.status >= 400 or call.error_type is not None, error_type=call.error_type,
            tokens=(call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens,
                    call.reasoning_tokens),
            cost_usd=call.cost_usd, latency_ms=call.latency_ms,
        )

    def changed(self, before: "Fact") -> "Fact | None":
        """This call, replacing `before` (the same call as it was); None if nothing the rollup counts differs."""
        was = replace(before, sign=-1, lane=self.lane, seq=self.seq)
        if replace(was, sign=self.sign) == self:
            return None
        return replace(self, sign=1, was=was)

    def parts(self) -> tuple["Fact", ...]:
        """What folding this fact adds up: the call, and for a change, the call as it was (subtracted)."""
        return (self.was, self) if self.was is not None else (self,)

    def scopes(self) -> list[tuple[str, str]]:
        values = {"global": GLOBAL_ID, "account": self.account, "team": self.team, "key": self.key_id,
                  "provider": self.provider, "model": self.model, "operation": self.operation}
        return [(kind, values[kind]) for kind in SCOPE_KINDS if values[kind]]

    def unfoldable(self) -> str | None:
        """Why this call cannot be added to counters, or None: a number outside what a call can hold."""
        if self.was is not None and (problem := self.was.unfoldable()):
            return f"before the change: {problem}"
        for kind, count in zip(TOKEN_KINDS, self.tokens):
            if type(count) is not int or not 0 <= count < TOKENS_MAX:
                return f"token count `{kind}` is {count!r}, not an integer in [0, 10^12)"
        cost = self.cost_usd
        if cost is not None and not (isinstance(cost, Decimal) and cost.is_finite() and 0 <= cost < COST_MAX_USD):
            return f"cost_usd is {cost!r}, not an amount in [0, 10^9)"
        latency = self.latency_ms
        if (isinstance(latency, bool) or not isinstance(latency, (int, float)) or not math.isfinite(latency)
                or not 0 <= latency < LATENCY_MAX_MS):
            return f"latency_ms is {latency!r}, not a duration in [0, 10^10)"
        return None


@dataclass(frozen=True)
class AggregateKey:
    kind: str
    scope_id: str  # a stored name (see `stored_name`)
    day: str  # YYYY-MM-DD, UTC

    @property
    def scope(self) -> Scope:
        return Scope(self.kind, self.scope_id)

    @property
    def pk(self) -> str:
        return self.scope.pk


@dataclass
class Delta:
    """What one batch adds to one aggregate item, and the stream positions it covers per lane."""

    counters: dict[str, Any] = field(default_factory=lambda: defaultdict(int))
    dims: set[str] = field(default_factory=set)
    first_seq: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)

    def nonzero(self) -> dict[str, Any]:
        return {name: value for name, value in self.counters.items() if value != 0}


def _add_core(counters: dict[str, Any], prefix: str, fact: Fact, with_errors_by_type: bool) -> None:
    s = fact.sign
    counters[f"{prefix}calls"] += s
    counters[f"{prefix}errors"] += s if fact.is_error else 0
    for kind, count in zip(TOKEN_KINDS, fact.tokens):
        counters[f"{prefix}{kind}"] += s * count
    if fact.cost_usd is None:
        counters[f"{prefix}unpriced"] += s
    else:
        counters[f"{prefix}cost"] += s * fact.cost_usd
    counters[f"{prefix}lat_sum"] += s * fact.latency_ms
    counters[latency_counter(prefix, bucket_of(fact.latency_ms))] += s
    if with_errors_by_type and fact.is_error:
        counters[error_counter(fact.error_type or "error")] += s


def _add_breakdown(counters: dict[str, Any], prefix: str, dim: str, value: str, fact: Fact, full: bool) -> None:
    """`value` is a stored name."""
    s = fact.sign
    base = breakdown_head(prefix, dim, value)
    counters[f"{base}calls"] += s
    counters[f"{base}errors"] += s if fact.is_error else 0
    if fact.cost_usd is None:
        counters[f"{base}unpriced"] += s
    else:
        counters[f"{base}cost"] += s * fact.cost_usd
    if full:
        for kind, count in zip(TOKEN_KINDS, fact.tokens):
            counters[f"{base}{kind}"] += s * count
    else:
        counters[f"{base}tok"] += s * sum(fact.tokens)




def fold(facts: Iterable[Fact]) -> dict[AggregateKey, Delta]:
    """Sum facts into one delta per aggregate item they touch."""
    deltas: dict[AggregateKey, Delta] = defaultdict(Delta)
    for fact in (part for whole in facts for part in whole.parts()):
        day = day_of(fact.ts)
        dim_values = {dim: stored_name(value) if value else value for dim, value in (
            ("account", fact.account), ("team", fact.team), ("key", fact.key_id), ("provider", fact.provider),
            ("model", fact.model), ("operation", fact.operation))}
        for kind, scope_id in fact.scopes():
            delta = deltas[AggregateKey(kind, stored_name(scope_id), day)]
            delta.first_seq.setdefault(fact.lane, fact.seq)
            delta.first_seq[fact.lane] = min(delta.first_seq[fact.lane], fact.seq)
            delta.last_seq[fact.lane] = max(delta.last_seq.get(fact.lane, fact.seq), fact.seq)
            counters = delta.counters
            _add_core(counters, DAY, fact, with_errors_by_type=True)
            _add_core(counters, hour_prefix(fact.ts), fact, with_errors_by_type=False)
            _add_core(counters, five_minute_prefix(fact.ts), fact, with_errors_by_type=False)
            if kind not in BREAKDOWN_SCOPES:
                continue
            for dim in DAY_BREAKDOWNS[kind]:
                if dim_values[dim]:
                    _add_breakdown(counters, DAY, dim, dim_values[dim], fact, full=True)
                    delta.dims.add(dim_entry(dim, dim_values[dim]))
            for dim in HOUR_BREAKDOWNS:
                if dim_values[dim]:
                    _add_breakdown(counters, hour_prefix(fact.ts), dim, dim_values[dim], fact, full=False)
    return dict(deltas)
