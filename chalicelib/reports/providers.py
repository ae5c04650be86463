"""Provider health and balances for `GET /api/providers`, `/health` and the dashboard: per provider, calls, errors,
p95 latency, the last 5-minute bucket with a success and the fallbacks taken (its failed tries, which the rollup
counts under it), from the provider scopes' buckets; its balance where one is known.

A recorded balance is the admin's figure less the provider's metered spend since it was set; OpenRouter's is its
API's last word (chalicelib/alerting/provider_balances.py reads it). Days left are at the last 7 days' rate.
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib import caller_names
from chalicelib.clock import day_of, iso, parse_precise
from chalicelib.errors import PermissionDenied
from chalicelib.ledger import Principal, ProviderBalance, fallback_rules, provider_balances
from chalicelib.money import money
from chalicelib.query import Query
from chalicelib.reports import aggregates as agg
from chalicelib.reports.aggregates import Totals, percentile
from chalicelib.settings import PROVIDERS

HOURS_MAX = 48
RATE_DAYS = 7
FAILING_RATE = 0.5  # a provider that failed at least half its tries today is `failing`; any error, `degraded`
DEGRADED_RATE = 0.05
PROVIDERS_MAX = 50


def balance_now(item: ProviderBalance, now: datetime) -> tuple[Decimal, Decimal]:
    """(balance now, spent since it was set): an API reading is what is left; a recorded one loses the metered
    spend from the start of the 5-minute bucket it was set in (spend is kept by the bucket: a few minutes' calls
    before it may count too, so a balance errs low, as an alert should)."""
    if item.source == provider_balances.API:
        return item.balance_usd, Decimal(0)
    stamp = parse_precise(item.set_at)
    set_at = stamp.replace(minute=stamp.minute - stamp.minute % 5, second=0, microsecond=0)
    spent = agg.spend("provider", item.day, set_at, now, now).cost if set_at < now else Decimal(0)
    return item.balance_usd - spent, spent


def daily_rate(provider: str, now: datetime) -> Decimal:
    """The provider's metered spend per day over the last 7 days."""
    return agg.spend("provider", provider, now - timedelta(days=RATE_DAYS), now, now).cost / RATE_DAYS


def balance_view(item: ProviderBalance, now: datetime) -> dict[str, Any]:
    left, spent = balance_now(item, now)
    rate = daily_rate(item.day, now)
    days_left = None if rate <= 0 else round(float(max(left, Decimal(0)) / rate), 1)
    return {"balance_usd": money(left), "low_usd": None if item.low_usd is None else money(item.low_usd),
            "source": item.source, "set_at": item.set_at, "recorded_usd": money(item.balance_usd),
            "spent_since_usd": money(spent), "daily_rate_usd": money(rate.quantize(Decimal("0.000001"))),
            "days_left": days_left}


def state_of(calls: int, errors: int) -> str:
    if not calls:
        return "idle"
    rate = errors / calls
    return "failing" if rate >= FAILING_RATE else "degraded" if rate >= DEGRADED_RATE else "ok"


def _providers(balances: dict[str, ProviderBalance], seen: set[str]) -> list[str]:
    rules = fallback_rules.all_rules()
    named = {r.match.provider for r in rules} | {t.provider for r in rules for t in r.targets}
    return sorted({*PROVIDERS, *balances, *seen, *named})[:PROVIDERS_MAX]


def _row(provider: str, slots: dict[datetime, Totals], balance: ProviderBalance | None, now: datetime) -> dict:
    window = Totals()
    last_success = None
    for slot, totals in sorted(slots.items()):
        window.absorb(totals)
        if totals.answered - totals.errors > 0:
            last_success = iso(slot)
    return {"provider": provider, "calls": window.answered, "errors": window.errors,
            "error_rate": window.error_rate, "latency_ms": {"p50": percentile(window.latency, 50),
                                                            "p95": percentile(window.latency, 95)},
            "last_success": last_success, "fallbacks_taken": window.fallbacks,
            "state": state_of(window.answered, window.errors),
            "balance": balance_view(balance, now) if balance is not None else None}


def providers_report(principal: Principal, params: Query, now: datetime) -> dict[str, Any]:
    """`GET /api/providers?hours=24`: each provider's health over the window, and its balance where known.
    Provider traffic is every account's, so only a key that sees every account may read it."""
    if principal.account is not None:
        raise PermissionDenied("provider health covers every account's calls: use a dashboard key for all accounts")
    hours = params.integer("hours", 24, 1, HOURS_MAX)
    start = now - timedelta(hours=hours)
    balances = provider_balances.all_balances()
    seen = set(agg.scope_days("provider", day_of(start), day_of(now)))
    rows = [_row(p, agg.traffic("provider", p, start + timedelta(microseconds=1), now), balances.get(p), now)
            for p in _providers(balances, seen) if caller_names.problem(p) is None]
    return {"from": iso(start), "to": iso(now), "hours": hours, "providers": rows}


def health_component(now: datetime) -> dict[str, Any]:
    """`/health`'s `providers`: each provider's state today (UTC), from one by_kind Query. A failing provider is
    the provider's trouble, not the gateway's (fallbacks route around it), so it leaves the status `ok`."""
    today = day_of(now)
    states = {provider: state_of(days[today].answered, days[today].errors)
              for provider, days in agg.scope_days("provider", today, today, max_requests=1).items() if today in days}
    return {"status": "ok", "states": dict(sorted(states.items()))}
