"""Hard limits at the proxy: budgets cached for a few seconds, so enforcing them costs no read per call.

A hard budget blocks once its state says `blocked_until` is in the future. The state is set by the
stream rollup as soon as it adds spend to the budget's scope, and by the evaluator every run;
calls already in flight, the stream's lag (about a second) and this cache's TTL bound the overshoot.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from .auth import Principal
from .budget_store import all_budgets, iso, measure, record_status, remaining_usd, spec_of
from .errors import BudgetExceeded
from .models import Budget
from .pricing import money
from .settings import get_settings


class BudgetCache:
    def __init__(self) -> None:
        self._items: list[Budget] = []
        self._expires = 0.0
        self._lock = threading.Lock()

    def budgets(self) -> list[Budget]:
        now = time.monotonic()
        if now >= self._expires:
            with self._lock:
                if now >= self._expires:
                    self._items = all_budgets()
                    self._expires = now + get_settings().budget_cache_seconds
        return self._items

    def clear(self) -> None:
        self._expires = 0.0


budget_cache = BudgetCache()


@dataclass(frozen=True)
class LimitCheck:
    remaining_usd: Decimal | None  # the least left among the USD budgets that apply


def check(principal: Principal, provider: str, model: str | None, now: datetime) -> LimitCheck:
    """Raise BudgetExceeded if a blocking budget applies to this call; else what is left to spend."""
    remaining: list[Decimal] = []
    stamp = iso(now)
    for item in budget_cache.budgets():
        spec = spec_of(item)
        if not spec.applies_to(principal.account, principal.team, principal.key_id, provider, model):
            continue
        if item.mode == "hard" and item.blocked_until and item.blocked_until > stamp:
            retry_after = max(1, int((datetime.strptime(item.blocked_until, "%Y-%m-%dT%H:%M:%SZ") - now)
                                     .total_seconds()))
            raise BudgetExceeded(
                f"budget {item.budget_id!r} ({item.scope} {item.scope_id}, {item.period}) is exhausted "
                f"until {item.blocked_until}",
                headers={"Retry-After": str(retry_after), "X-Tollgate-Budget-Id": item.budget_id,
                         "X-Tollgate-Budget-Period-End": item.blocked_until})
        if (left := remaining_usd(item)) is not None:
            remaining.append(left)
    return LimitCheck(min(remaining) if remaining else None)


def remaining_header(check_result: LimitCheck, cost_usd: Decimal | None) -> dict[str, str]:
    if check_result.remaining_usd is None:
        return {}
    left = check_result.remaining_usd - (cost_usd or 0)
    return {"X-Tollgate-Budget-Remaining-USD": money(max(left, Decimal(0)))}


def refresh_touched(facts: list, now: datetime) -> list[str]:
    """After the rollup added spend: re-measure the budgets it touched, so a hard budget over its limit
    blocks now (not at the next evaluation) and the remaining-budget header stays about a second old."""
    refreshed = []
    for item in budget_cache.budgets():
        spec = spec_of(item)
        if any(spec.applies_to(f.account, f.team, f.key_id, f.provider, f.model) for f in facts):
            record_status(item, measure(spec, now), now)
            refreshed.append(item.budget_id)
    if refreshed:
        budget_cache.clear()
    return refreshed
