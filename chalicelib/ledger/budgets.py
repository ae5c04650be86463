"""Budgets as stored: the spec a Budget item holds, and every budget cached for a few seconds per container.

Here, at the bottom, because the proxy checks hard limits against them on every call and the alerting
measures them: the math (periods, spend, forecasts) and the admin's validation are the alerting's.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Callable
from zoneinfo import ZoneInfo

from chalicelib.clock import iso
from chalicelib.ledger.models import Budget
from chalicelib.caller_names import GLOBAL_ID
from chalicelib.settings import get_settings

DEFAULT_THRESHOLDS = (Decimal("0.5"), Decimal("0.8"), Decimal("1.0"))
WINDOW_LEDGER = "window"  # the `day` of a hard window budget's one ledger


@dataclass(frozen=True)
class BudgetSpec:
    budget_id: str
    scope: str
    scope_id: str
    period: str
    limit_usd: Decimal | None
    limit_tokens: int | None
    thresholds: tuple[Decimal, ...] = DEFAULT_THRESHOLDS
    mode: str = "soft"
    channels: tuple[str, ...] = ()
    timezone: str = "UTC"
    window_minutes: int | None = None
    account: str | None = None  # a user budget's account: only its calls count (None: stored before accounts were named)

    @property
    def limit(self) -> Decimal:
        return self.limit_usd if self.limit_usd is not None else Decimal(self.limit_tokens)

    @property
    def unit(self) -> str:
        return "usd" if self.limit_usd is not None else "tokens"

    def applies_to(self, account: str | None, team: str | None, key_id: str | None, provider: str,
                   model: str | None, user: str | None = None) -> bool:
        values = {"global": GLOBAL_ID, "account": account, "team": team, "key": key_id, "provider": provider,
                  "model": model, "user": user}
        if self.scope == "user" and self.account is not None and account != self.account:
            return False  # a user name is the caller's choice: another account's `alice` is someone else
        return values[self.scope] == self.scope_id


def period_bounds(spec: BudgetSpec, now: datetime) -> tuple[datetime, datetime]:
    """[start, end) of the period holding `now`, in UTC."""
    if spec.period == "window":
        return now - timedelta(minutes=spec.window_minutes), now
    zone = ZoneInfo(spec.timezone)
    local = now.astimezone(zone)
    local_midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if spec.period == "daily":
        start, end = local_midnight, local_midnight + timedelta(days=1)
    elif spec.period == "weekly":  # ISO weeks start on Monday
        start = local_midnight - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
    else:
        start = local_midnight.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    # wall-clock arithmetic in the zone (a ZoneInfo's offset is looked up per time), so a daylight-saving
    # change inside the period moves the bound by an hour
    return start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def ledger_period(spec: BudgetSpec, now: datetime) -> tuple[str, str]:
    """The `day` of the hard budget's ledger that holds `now`, and when that ledger's period ends (UTC ISO-8601):
    a calendar period's start; a rolling window's one ledger, whose spend leaves it minute by minute
    (chalicelib/ledger/reservations.py `retire_window`), ending a window from now."""
    if spec.period == "window":
        return WINDOW_LEDGER, iso(now + timedelta(minutes=spec.window_minutes))
    start, end = period_bounds(spec, now)
    return iso(start), iso(end)


def spec_of(item: Budget) -> BudgetSpec:
    return BudgetSpec(item.budget_id, item.scope, item.scope_id, item.period, item.limit_usd, item.limit_tokens,
                      tuple(item.thresholds), item.mode, tuple(item.channels), item.timezone, item.window_minutes,
                      item.account if item.scope == "user" else None)


def all_budgets() -> list[Budget]:
    return sorted(Budget.scan(), key=lambda b: b.budget_id)


class TableCache:
    """What `read` returns, read at most once per `budget_cache_seconds` per container: the proxy consults budgets
    (every call) and fallback rules (after a failure) without a read each time."""

    def __init__(self, read: Callable[[], list]) -> None:
        self._read = read
        self._items: list = []
        self._expires = 0.0
        self._lock = threading.Lock()

    def items(self) -> list:
        now = time.monotonic()
        if now >= self._expires:
            with self._lock:
                if now >= self._expires:
                    self._items = self._read()
                    self._expires = now + get_settings().budget_cache_seconds
        return self._items

    def clear(self) -> None:
        self._expires = 0.0


class BudgetCache(TableCache):
    def __init__(self) -> None:
        super().__init__(all_budgets)

    def budgets(self) -> list[Budget]:
        return self.items()


budget_cache = BudgetCache()
