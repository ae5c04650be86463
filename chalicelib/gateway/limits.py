"""Hard limits at the proxy: budgets cached for a few seconds, so enforcing them costs no read per call.

A hard budget blocks once its state says `blocked_until` is in the future (set by the stream rollup
as soon as it adds spend to the budget's scope, and by the evaluator every run), or as soon as its
last measured spend plus what this container has itself served since that measurement reaches the
limit. So one container overshoots by at most the calls it has in flight; across N containers, by
what each has in flight plus what the others served in the stream's lag and the cache's TTL.
"""
from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from chalicelib.clock import iso, parse_iso, precise
from chalicelib.errors import BudgetExceeded
from chalicelib.ledger import Principal
from chalicelib.ledger import budget_cache, spec_of
from chalicelib.ledger import Budget
from chalicelib.money import money


class ServedLedger:
    """What this container has served per budget, kept until a measurement of the budget covers it.

    A call logged just before a measurement but not yet folded by the stream (about a second) is in
    neither: the rollup measures again right after folding it, so that gap lasts about a second.
    """

    def __init__(self) -> None:
        self._entries: dict[str, deque] = defaultdict(deque)  # budget_id → (logged at, cost, tokens)
        self._lock = threading.Lock()

    def add(self, budget_id: str, logged_at: str, cost_usd: Decimal, tokens: int) -> None:
        with self._lock:
            self._entries[budget_id].append((logged_at, cost_usd, tokens))

    def since(self, budget_id: str, measured_at: str | None) -> tuple[Decimal, int]:
        """Cost and tokens served at or after `measured_at` (everything when never measured); older ones go."""
        with self._lock:
            entries = self._entries.get(budget_id)
            if not entries:
                return Decimal(0), 0
            while measured_at and entries and entries[0][0] < measured_at:
                entries.popleft()
            return sum((e[1] for e in entries), Decimal(0)), sum(e[2] for e in entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


served = ServedLedger()


@dataclass(frozen=True)
class LimitCheck:
    remaining_usd: Decimal | None  # the least left among the USD budgets that apply


def check(principal: Principal, provider: str, model: str | None, now: datetime, user: str | None = None) -> LimitCheck:
    """Raise BudgetExceeded if a blocking budget applies to this call; else what is left to spend."""
    remaining: list[Decimal] = []
    stamp = iso(now)
    for item in budget_cache.budgets():
        spec = spec_of(item)
        if not spec.applies_to(principal.account, principal.team, principal.key_id, provider, model, user):
            continue
        spent_usd, spent_tokens = _spent_so_far(item, stamp)
        if item.mode == "hard":
            if item.blocked_until and item.blocked_until > stamp:
                raise _exceeded(item, item.blocked_until, now)
            if _reached(item.limit_usd, spent_usd) or _reached(item.limit_tokens, spent_tokens):
                raise _exceeded(item, item.period_end if _open(item, stamp) else None, now)
        if item.limit_usd is not None:
            remaining.append(item.limit_usd - spent_usd)
    return LimitCheck(min(remaining) if remaining else None)


def note_served(principal: Principal, provider: str, model: str | None, cost_usd: Decimal | None, tokens: int,
                logged_at: datetime, user: str | None = None) -> None:
    """Count a call this container just logged against the budgets it applies to, before the rollup does."""
    if not cost_usd and not tokens:
        return
    stamp = precise(logged_at)
    for item in budget_cache.budgets():
        if spec_of(item).applies_to(principal.account, principal.team, principal.key_id, provider, model, user):
            served.add(item.budget_id, stamp, cost_usd or Decimal(0), tokens)


def _open(item: Budget, stamp: str) -> bool:
    """Is the period the budget was last measured in still running?"""
    return bool(item.period_end and item.period_end > stamp)


def _spent_so_far(item: Budget, stamp: str) -> tuple[Decimal, int]:
    """The last measured spend of the current period plus what this container served since."""
    if _open(item, stamp):
        measured_at = item.evaluated_at
        base_usd, base_tokens = item.spent_usd or Decimal(0), item.spent_tokens or 0
    else:  # never measured (count from its creation), or measured in a period that has ended
        measured_at, base_usd, base_tokens = item.period_end or item.created_at, Decimal(0), 0
    cost, tokens = served.since(item.budget_id, _precise(measured_at))
    return base_usd + cost, base_tokens + tokens


def _precise(stamp: str | None) -> str | None:
    """Second-precision stamps (`…:05Z`) as microsecond ones (`…:05.000000Z`), so the two sort together."""
    return stamp[:-1] + ".000000Z" if stamp and len(stamp) == 20 else stamp


def _reached(limit: Decimal | int | None, spent: Decimal | int) -> bool:
    return limit is not None and spent >= limit


def _exceeded(item: Budget, until: str | None, now: datetime) -> BudgetExceeded:
    retry_after = 60
    if until:
        retry_after = max(1, int((parse_iso(until) - now).total_seconds()))
    where = f"until {until}" if until else "until its spend is measured again"
    headers = {"Retry-After": str(retry_after), "X-Tollgate-Budget-Id": item.budget_id}
    if until:
        headers["X-Tollgate-Budget-Period-End"] = until
    return BudgetExceeded(f"budget {item.budget_id!r} ({item.scope} {item.scope_id}, {item.period}) is "
                          f"exhausted {where}", headers=headers)


def remaining_header(check_result: LimitCheck, cost_usd: Decimal | None) -> dict[str, str]:
    if check_result.remaining_usd is None:
        return {}
    left = check_result.remaining_usd - (cost_usd or 0)
    return {"X-Tollgate-Budget-Remaining-USD": money(max(left, Decimal(0)))}
