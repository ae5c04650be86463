"""Month-to-date spend and a projection to the month's end, for all traffic or one account, and per provider.

The method, stated in every answer: spend so far, plus the average spend of the month's last (up to) seven
whole UTC days times the days left (today's rest counted pro rata). Fewer than MIN_DAYS whole days of the
month: too little data, no projection. A month that is over projects to what it spent.
"""
from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib import clock
from chalicelib.clock import day_of
from chalicelib.ledger.auth import Principal, scoped_account
from chalicelib.money import money
from chalicelib.reports import ranges
from chalicelib.rollup import store
from chalicelib.rollup.layout import Scope, breakdown_head, scope_id_of_day_id, split_breakdown
from chalicelib.query import Query

RATE_DAYS = 7
MIN_DAYS = 3
METHOD = (f"month to date, plus the average daily spend of the month's last {RATE_DAYS} whole UTC days (fewer "
          f"early in the month) times the days left, today's rest pro rata; none before {MIN_DAYS} whole days")


@dataclass(frozen=True)
class Projection:
    month_to_date: Decimal
    projected: Decimal | None  # None: too little data
    enough_data: bool

    def view(self) -> dict[str, Any]:
        return {"month_to_date_usd": money(self.month_to_date),
                "projected_usd": None if self.projected is None else money(self.projected)}


def project(daily: dict[str, Decimal], first: date, last: date, now: datetime) -> Projection:
    """Pure: a month's projection from its spend per UTC day (`daily`), as at `now`."""
    spent = sum(daily.values(), Decimal(0))
    today = now.date()
    if today > last:
        return Projection(spent, spent, True)
    whole = [first + timedelta(days=n) for n in range((today - first).days)]  # the month's days before today
    if len(whole) < MIN_DAYS:
        return Projection(spent, None, False)
    recent = whole[-RATE_DAYS:]
    rate = sum((daily.get(d.isoformat(), Decimal(0)) for d in recent), Decimal(0)) / len(recent)
    midnight = clock.midnight(today + timedelta(days=1))
    left = Decimal((last - today).days) + Decimal((midnight - now).total_seconds()) / Decimal(86_400)
    return Projection(spent, (spent + rate * left).quantize(Decimal("0.000001")), True)


def forecast(principal: Principal, params: Query) -> dict[str, Any]:
    """`GET /api/forecast`: this month (or `month=`) so far and projected, in all and per provider."""
    now = clock.now()
    period = ranges.parse(Query(month=params.get("month") or now.strftime("%Y-%m")), now)
    first, last = date.fromisoformat(period.first_day), date.fromisoformat(period.last_day)
    account = scoped_account(principal, params.get("account"))
    through = min(day_of(now), period.last_day)
    total: dict[str, Decimal] = defaultdict(Decimal)
    by_provider: dict[str, dict[str, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    if account:  # the account's day items carry its split by provider
        head = breakdown_head("", "provider")
        for item in store.query_days(Scope("account", account), period.first_day, through, parts=["day"]):
            total[item["day"]] += Decimal(item.get("cost", 0))
            for name, value in item.items():
                provider, counter = split_breakdown(name[len(head):]) if name.startswith(head) else (None, None)
                if counter == "cost":
                    by_provider[provider][item["day"]] += Decimal(value)
    else:
        for entry in store.query_kind("global", period.first_day, through):
            total[entry["day"]] += Decimal(entry.get("cost", 0))
        for entry in store.query_kind("provider", period.first_day, through):
            by_provider[scope_id_of_day_id(entry["day_id"])][entry["day"]] += Decimal(entry.get("cost", 0))
    overall = project(total, first, last, now)
    return {"month": period.named["month"], "account": account, **overall.view(),
            "enough_data": overall.enough_data, "method": METHOD,
            "by_provider": {name: project(days, first, last, now).view() for name, days in sorted(by_provider.items())}}
