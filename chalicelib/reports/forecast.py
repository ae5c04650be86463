"""Month-to-date spend and a projection to the month's end, for all traffic or one account, and per provider.

The method, stated in every answer: spend so far, plus a daily rate times the days left (today's rest pro
rata). The rate is the spend of the month's last (up to) seven whole UTC days with data plus today's spend so
far, over those days plus the share of today gone, so a day that runs hot moves the projection at once. Data
starts at the month's first day with calls (a fresh install has none before it): fewer than MIN_DAYS whole
days of it, or fewer than MIN_CALLS calls, is too little, and the answer says so instead of projecting.
A month that is over projects to what it spent.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib import clock
from chalicelib.clock import day_of
from chalicelib.ledger import Principal, scoped_account
from chalicelib.money import money, sums_exactly
from chalicelib.reports import ranges
from chalicelib.rollup import store
from chalicelib.rollup import Scope, breakdown_head, scope_id_of_day_id, split_breakdown
from chalicelib.query import Query

RATE_DAYS = 7
MIN_DAYS = 3
MIN_CALLS = 20
METHOD = (f"month to date, plus a daily rate times the days left (today's rest pro rata); the rate is the spend of "
          f"the last {RATE_DAYS} whole UTC days with data and of today so far, over those days and the share of "
          f"today gone; none before {MIN_DAYS} whole days of data and {MIN_CALLS} calls")


@dataclass(frozen=True)
class Projection:
    month_to_date: Decimal
    projected: Decimal | None  # None: too little data
    enough_data: bool
    reason: str | None = None  # why there is no projection

    def view(self) -> dict[str, Any]:
        view = {"month_to_date_usd": money(self.month_to_date),
                "projected_usd": None if self.projected is None else money(self.projected)}
        return view | ({"reason": self.reason} if self.reason else {})


@sums_exactly
def project(daily: dict[str, Decimal], calls: int, first: date, last: date, now: datetime) -> Projection:
    """Pure: a month's projection from its spend per UTC day (`daily`, days with calls) and its calls, at `now`."""
    spent = sum(daily.values(), Decimal(0))
    today = now.date()
    if today > last:
        return Projection(spent, spent, True)
    started = min((date.fromisoformat(d) for d in daily), default=today)  # the first day with data
    whole = [d for d in (first + timedelta(days=n) for n in range((today - first).days)) if d >= started]
    if len(whole) < MIN_DAYS or calls < MIN_CALLS:
        return Projection(spent, None, False, f"a projection needs {MIN_DAYS} whole days of data (there are "
                                              f"{len(whole)}) and {MIN_CALLS} calls (there are {calls})")
    recent = whole[-RATE_DAYS:]
    tomorrow = clock.midnight(today + timedelta(days=1))
    rest_of_today = Decimal((tomorrow - now).total_seconds()) / Decimal(86_400)
    seen = sum((daily.get(d.isoformat(), Decimal(0)) for d in [*recent, today]), Decimal(0))
    rate = seen / (len(recent) + 1 - rest_of_today)
    left = Decimal((last - today).days) + rest_of_today
    return Projection(spent, (spent + rate * left).quantize(Decimal("0.000001")), True)


@sums_exactly
def forecast(principal: Principal, params: Query) -> dict[str, Any]:
    """`GET /api/forecast`: this month (or `month=`) so far and projected, in all and per provider."""
    now = clock.now()
    period = ranges.parse(Query(month=params.get("month") or now.strftime("%Y-%m")), now)
    first, last = date.fromisoformat(period.first_day), date.fromisoformat(period.last_day)
    account = scoped_account(principal, params.get("account"))
    through = min(day_of(now), period.last_day)
    total: dict[str, Decimal] = defaultdict(Decimal)
    calls = 0
    by_provider: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    if account:  # the account's day items carry its split by provider
        head = breakdown_head("", "provider")
        for item in store.query_days(Scope("account", account), period.first_day, through, parts=["day"]):
            total[item["day"]] += Decimal(item.get("cost", 0))
            calls += int(item.get("calls", 0))
            for name, value in item.items():
                provider, counter = split_breakdown(name[len(head):]) if name.startswith(head) else (None, None)
                if counter == "cost":
                    by_provider[provider][item["day"]] += Decimal(value)
    else:
        for entry in store.query_kind("global", period.first_day, through):
            total[entry["day"]] += Decimal(entry.get("cost", 0))
            calls += int(entry.get("calls", 0))
        for entry in store.query_kind("provider", period.first_day, through):
            by_provider[scope_id_of_day_id(entry["day_id"])][entry["day"]] += Decimal(entry.get("cost", 0))
    overall = project(total, calls, first, last, now)
    return {"month": period.named["month"], "account": account, **overall.view(),
            "enough_data": overall.enough_data, "method": METHOD,  # providers: the rate, once the whole is enough
            "by_provider": {name: project(days, calls if overall.enough_data else 0, first, last, now).view()
                            for name, days in sorted(by_provider.items())}}
