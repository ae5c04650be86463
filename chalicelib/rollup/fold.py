"""Fold call records into aggregate deltas: one per small item they touch (a scope's day, hour or breakdown
value, in the lane's write shard), so a batch costs one write per item whatever it holds.

Pure: no AWS. The item layout (keys, counter names, which item holds what) is chalicelib/rollup/layout.py's.
Names that come from calls (model, operation, account, …) enter keys and attribute names through
`stored_name`, so no caller can make an item's key or attribute name unbounded.
"""
from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable

from chalicelib.clock import day_of, parse_precise
from chalicelib.errors import is_refusal
from chalicelib.money import sums_exactly
from chalicelib.clock import precise as iso_ts
from chalicelib.rollup.histogram import bucket_of
from chalicelib.rollup.layout import (
    BREAKDOWN_SCOPES,
    DAY,
    DAY_BREAKDOWN_ITEM,
    DAY_BREAKDOWNS,
    FIVE_MINUTE_ITEM,
    GLOBAL_ID,
    HOUR_BREAKDOWN_ITEM,
    HOUR_BREAKDOWNS,
    HOUR_ITEM,
    HOURLESS_KINDS,
    IN_OWN_ITEM,
    SCOPE_KINDS,
    SESSION_ITEM,
    TOKEN_KINDS,
    Part,
    Scope,
    breakdown_head,
    day_views,
    error_counter,
    lane_of,
    latency_counter,
    refusal_counter,
    session_of_user,
    shard_of,
    stored_name,
    ttft_counter,
)

# What one call may add to a counter: DynamoDB Numbers hold 38 digits, and a day item sums many calls.
TOKENS_MAX = 10**12  # CONTRACT §2: upstream counts outside [0, 10^12) are logged as usage_invalid
COST_MAX_USD = 10**9
LATENCY_MAX_MS = 10**10


def _duration(value: Any) -> int | None:
    """A stored duration as whole ms, or None when there is none or it is beyond what a call can take."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return int(value) if 0 <= value < LATENCY_MAX_MS else None


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
    user: str | None = None  # the caller's end user, named within its account
    session: str | None = None  # the caller's conversation, named within its account
    ttft_ms: int | None = None  # to the first content event, for streamed calls only
    expires_at: int | None = None  # when the call leaves the call log (epoch seconds): its session's items follow
    was: "Fact | None" = None  # a change: the call before it, with sign -1 and the same lane and seq
    call_id: str | None = None  # which call: the listeners' (an expensive call is noted by it), not the fold's
    refused: bool = False  # the gateway's own refusal (errors.REFUSALS): counted apart from the provider's errors
    price_drift: bool = False  # its stated cost and our estimate differ past the tolerance (pricing.drifts)
    failed_attempts: tuple[tuple[str, str | None, int | None], ...] = ()  # (provider, error_type, latency_ms) of
    # each try before the last (fallbacks): its provider's calls, errors and latency, never its cost

    @classmethod
    def from_call(cls, call: Any, sign: int = 1, seq: int = 0, stream: str = "") -> "Fact":
        """From a CallRecord (or anything with its attributes), as delivered by `stream` (its label)."""
        return cls(
            sign=sign, lane=lane_of(stream, call.account), seq=seq,
            ts=parse_precise(call.ts),
            account=call.account, key_id=call.key_id, provider=call.provider, model=call.model,
            operation=call.operation, team=call.team, user=call.user,
            is_error=call.status >= 400 or call.error_type is not None, error_type=call.error_type,
            tokens=(call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens,
                    call.reasoning_tokens),
            cost_usd=call.cost_usd, latency_ms=call.latency_ms, session=getattr(call, "session", None),
            ttft_ms=_duration(getattr(call, "ttft_ms", None)) if getattr(call, "stream", False) else None,
            expires_at=int(expires.timestamp()) if (expires := getattr(call, "expires_at", None)) else None,
            call_id=getattr(call, "call_id", None), price_drift=getattr(call, "price_drift", None) is True,
            refused=call.status >= 400 and is_refusal(call.error_type, bool(getattr(call, "upstream_reached", False))),
            failed_attempts=_failed_attempts(getattr(call, "attempts", None)),
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
                  "user": self.user,
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


def _failed_attempts(attempts: Any) -> tuple[tuple[str, str | None, int | None], ...]:
    """The tries before the last one (the last is the call as recorded); a provider that is no name is skipped."""
    found = []
    for attempt in list(attempts or [])[:-1]:
        provider, error_type = getattr(attempt, "provider", None), getattr(attempt, "error_type", None)
        if isinstance(provider, str) and provider:
            found.append((provider, error_type if isinstance(error_type, str) and error_type else None,
                          _duration(getattr(attempt, "latency_ms", None))))
    return tuple(found)


@dataclass(frozen=True)
class AggregateKey:
    """One stored item: a scope (kind, stored name), a UTC day, which part of the day view, which write shard."""

    kind: str
    scope_id: str  # a stored name (see `stored_name`)
    day: str  # YYYY-MM-DD, UTC
    part: Part = Part()
    shard: int | None = None

    @property
    def scope(self) -> Scope:
        return Scope(self.kind, self.scope_id)

    @property
    def pk(self) -> str:
        return self.scope.pk

    @property
    def sort_key(self) -> str:
        return self.part.sort_key(self.day, self.shard)

    @property
    def is_day_item(self) -> bool:
        return self.part.kind == ""


@dataclass
class Delta:
    """What one batch adds to one aggregate item, and the stream positions it covers per lane."""

    counters: dict[str, Any] = field(default_factory=lambda: defaultdict(int))
    latest: dict[str, Any] = field(default_factory=dict)  # attributes set to the batch's newest value (last_ts)
    earliest: dict[str, Any] = field(default_factory=dict)  # set once, if the item has none yet (first_ts)
    first_seq: dict[str, int] = field(default_factory=dict)
    last_seq: dict[str, int] = field(default_factory=dict)

    def nonzero(self) -> dict[str, Any]:
        return {name: value for name, value in self.counters.items() if value != 0}

    def covers(self, fact: Fact) -> None:
        self.first_seq[fact.lane] = min(self.first_seq.get(fact.lane, fact.seq), fact.seq)
        self.last_seq[fact.lane] = max(self.last_seq.get(fact.lane, fact.seq), fact.seq)


def _add_core(counters: dict[str, Any], prefix: str, fact: Fact, with_errors_by_type: bool = False,
              with_refusals_by_type: bool = False) -> None:
    """A refused call counts in `calls` and `refused`, never in `errors` or the latency: no provider answered it."""
    s = fact.sign
    counters[f"{prefix}calls"] += s
    counters[f"{prefix}errors"] += s if fact.is_error and not fact.refused else 0
    counters[f"{prefix}refused"] += s if fact.refused else 0
    for kind, count in zip(TOKEN_KINDS, fact.tokens):
        counters[f"{prefix}{kind}"] += s * count
    if fact.cost_usd is None:
        counters[f"{prefix}unpriced"] += s
    else:
        counters[f"{prefix}cost"] += s * fact.cost_usd
    if fact.price_drift:
        counters[f"{prefix}drift"] += s
    if fact.refused:
        if with_refusals_by_type:
            counters[refusal_counter(fact.error_type or "refused")] += s
        return
    counters[f"{prefix}lat_sum"] += s * fact.latency_ms
    counters[latency_counter(prefix, bucket_of(fact.latency_ms))] += s
    if fact.ttft_ms is not None:
        counters[ttft_counter(prefix, bucket_of(fact.ttft_ms))] += s
    if with_errors_by_type and fact.is_error:
        counters[error_counter(fact.error_type or "error")] += s


def _add_failed_attempt(counters: dict[str, Any], sign: int, error_type: str | None, latency_ms: int | None,
                        by_type: bool) -> None:
    """A try that failed before the call moved on: its provider's call, error, latency and one fallback taken."""
    counters[f"{DAY}calls"] += sign
    counters[f"{DAY}errors"] += sign
    counters[f"{DAY}fallbacks"] += sign
    if latency_ms is not None:
        counters[f"{DAY}lat_sum"] += sign * latency_ms
        counters[latency_counter(DAY, bucket_of(latency_ms))] += sign
    if by_type:
        counters[error_counter(error_type or "error")] += sign


def _add_session(delta: Delta, fact: Fact, named: tuple[str, str]) -> None:
    """A session's running totals, and what a list of sessions shows of it: its user or account, and when."""
    _add_breakdown(delta.counters, None, None, fact)
    ts = iso_ts(fact.ts)
    delta.earliest["first_ts"] = min(delta.earliest.get("first_ts", ts), ts)
    delta.latest["last_ts"] = max(delta.latest.get("last_ts", ts), ts)
    delta.latest[named[0]] = named[1]
    if fact.expires_at:
        delta.latest["expires_at"] = max(delta.latest.get("expires_at", 0), fact.expires_at)


def _add_breakdown(counters: dict[str, Any], dim: str | None, value: str | None, fact: Fact) -> None:
    """`value` is a stored name; without a dimension, the item's own counters (a session's). Tokens by kind (items
    rolled up before held an hour's split by provider as one total, `tok`, which readers still add)."""
    s = fact.sign
    base = breakdown_head(DAY, dim, value) if dim else DAY
    counters[f"{base}calls"] += s
    counters[f"{base}errors"] += s if fact.is_error and not fact.refused else 0
    if fact.cost_usd is None:
        counters[f"{base}unpriced"] += s
    else:
        counters[f"{base}cost"] += s * fact.cost_usd
    for kind, count in zip(TOKEN_KINDS, fact.tokens):
        counters[f"{base}{kind}"] += s * count


@sums_exactly
def fold(facts: Iterable[Fact]) -> dict[AggregateKey, Delta]:
    """Sum facts into one delta per aggregate item they touch, at DynamoDB's 38 digits (what its ADDs keep)."""
    deltas: dict[AggregateKey, Delta] = defaultdict(Delta)
    for fact in (part for whole in facts for part in whole.parts()):
        day, hour = day_of(fact.ts), fact.ts.hour
        dim_values = {dim: stored_name(value) if value else value for dim, value in (
            ("account", fact.account), ("team", fact.team), ("key", fact.key_id), ("provider", fact.provider),
            ("model", fact.model), ("operation", fact.operation), ("user", fact.user))}
        for kind, scope_id in fact.scopes():
            scope_id, shard = stored_name(scope_id), shard_of(kind, fact.lane)

            def counters(part: Part = Part()) -> dict[str, Any]:
                delta = deltas[AggregateKey(kind, scope_id, day, part, shard)]
                delta.covers(fact)
                return delta.counters

            _add_core(counters(), DAY, fact, with_errors_by_type=True, with_refusals_by_type=True)
            if kind in HOURLESS_KINDS:
                continue
            # Time items store their counters unprefixed: the sort key names the hour or the 5-minute bucket.
            _add_core(counters(Part(HOUR_ITEM, hour)), DAY, fact, with_refusals_by_type=True)
            _add_core(counters(Part(FIVE_MINUTE_ITEM, hour, minute=fact.ts.minute - fact.ts.minute % 5)), DAY, fact,
                      with_refusals_by_type=True)
            if kind not in BREAKDOWN_SCOPES:
                continue
            for dim in DAY_BREAKDOWNS.get(kind, ()):
                if value := dim_values[dim]:
                    part = Part() if dim in IN_OWN_ITEM else Part(DAY_BREAKDOWN_ITEM, dim=dim, value=value)
                    _add_breakdown(counters(part), dim, value, fact)
            for dim in HOUR_BREAKDOWNS:
                if value := dim_values[dim]:
                    if dim in IN_OWN_ITEM:  # tokens by kind, as every split shows them (older items hold `tok`)
                        _add_breakdown(counters(Part(HOUR_ITEM, hour)), dim, value, fact)
                    else:  # one value's hour, with its latency: what a per-model latency table reads
                        _add_core(counters(Part(HOUR_BREAKDOWN_ITEM, hour, dim, value)),
                                  breakdown_head(DAY, dim, value), fact)
        if fact.session:
            _fold_session(deltas, fact)
        for provider, error_type, latency_ms in fact.failed_attempts:
            shard = shard_of("provider", fact.lane)
            bucket = Part(FIVE_MINUTE_ITEM, hour, minute=fact.ts.minute - fact.ts.minute % 5)
            for part in (Part(), Part(HOUR_ITEM, hour), bucket):
                delta = deltas[AggregateKey("provider", stored_name(provider), day, part, shard)]
                delta.covers(fact)
                _add_failed_attempt(delta.counters, fact.sign, error_type, latency_ms, by_type=part == Part())
    return dict(deltas)


def _fold_session(deltas: dict[AggregateKey, Delta], fact: Fact) -> None:
    """A session's totals twice, each a small item that expires with its calls: under the session's own key
    (a session by id, one item per account using that id) and under its user (a user's sessions, named by
    account and session, so no tenant reads another's)."""
    session, account = stored_name(fact.session or ""), stored_name(fact.account)
    by_id = deltas[AggregateKey("session", session, "", Part(SESSION_ITEM, value=account))]
    by_id.covers(fact)
    _add_session(by_id, fact, ("user", fact.user or ""))
    if fact.user:
        by_user = deltas[AggregateKey("user", stored_name(fact.user), "",
                                      Part(SESSION_ITEM, value=session_of_user(account, session)))]
        by_user.covers(fact)
        _add_session(by_user, fact, ("session", fact.session or ""))


def views(deltas: dict[AggregateKey, Delta], scope: Scope) -> list[dict[str, Any]]:
    """The day views `deltas` would make of one scope's empty items: what a reader would get back."""
    return day_views({"day": key.sort_key, **delta.nonzero()} for key, delta in deltas.items() if key.scope == scope)
