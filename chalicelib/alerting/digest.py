"""The daily digest and the weekly performance report, queued once per day / ISO week on every channel."""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib.alerting import notify
from chalicelib import clock
from chalicelib.caller_names import GLOBAL_ID
from chalicelib.clock import day_of, iso
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import keys
from chalicelib.ledger import all_budgets
from chalicelib.money import usd
from chalicelib.reports import aggregates as agg
from chalicelib.reports import Totals, percentile

TOP = 5


def _top(breakdown: dict[str, dict[str, Any]], key: str = "cost_usd") -> str:
    ranked = sorted(breakdown.items(), key=lambda kv: Decimal(kv[1][key] or 0), reverse=True)[:TOP]
    return ", ".join(f"{name} {usd(Decimal(values['cost_usd'] or 0))}" for name, values in ranked) or "none"


def daily_facts(day: str, totals: Totals, models: dict[str, dict[str, Any]],
                accounts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    budget_lines = [f"{b.budget_id}: {usd(b.spent_usd) if b.spent_usd is not None else b.spent_tokens} of "
                    f"{usd(b.limit_usd) if b.limit_usd is not None else b.limit_tokens} ({b.period})"
                    for b in all_budgets()]
    message = "\n".join([
        f"Cost {usd(totals.cost)} over {totals.calls} calls ({totals.errors} errors, "
        f"{totals.unpriced} unpriced); {totals.total_tokens} tokens.",
        f"Top models: {_top(models)}",
        f"Top accounts: {_top(accounts)}",
        "Budgets: " + ("; ".join(budget_lines) if budget_lines else "none"),
    ])
    return {"event": "digest.daily", "provider": None, "severity": "info", "title": f"Tollgate daily digest for {day}",
            "message": message}


def weekly_facts(week: str, totals: Totals, operations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The report of one ISO week that has ended (`week`, e.g. 2026-W48), named as such in every line."""
    if not totals.calls:
        message = f"No calls in {week}."
    else:
        latency = ", ".join(f"p{q} {value} ms" for q in (50, 95, 99)
                            if (value := percentile(totals.latency, q)) is not None)
        rates = ", ".join(f"{name} {v['errors'] / v['calls']:.1%} of {v['calls']}" for name, v in operations.items()
                          if v["calls"]) or "no operations tagged"
        message = "\n".join([
            f"{week}: {totals.calls} calls, {totals.errors} errors ({totals.errors / totals.calls:.1%}), "
            f"cost {usd(totals.cost)}.",
            f"Latency {latency}." if latency else "Latency: not measured.",
            f"Error rate by operation: {rates}",
        ])
    return {"event": "report.weekly", "provider": None, "severity": "info",
            "title": f"Tollgate weekly performance report, {week}", "message": message}


def _split(kind: str, first: str, last: str) -> dict[str, dict[str, Any]]:
    """All traffic by model, account or operation."""
    return agg.breakdown_by_scope(kind, first, last, max_requests=100)


def digest(body: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """The `digest` job: `{"kind": "daily"}` (yesterday, UTC) or `{"kind": "weekly"}` (the last ISO week)."""
    now = now or clock.now()
    kind = (body or {}).get("kind", "daily") if isinstance(body, dict) else "daily"
    if kind == "daily":
        day = day_of(now - timedelta(days=1))
        installed = keys.first_created()
        if installed is None or day < installed[:10]:  # no key yet: the day was before the install
            return {"job": "digest", "kind": kind, "queued": False, "skipped": f"{day} is before the first key",
                    "delivered": notify.deliver_pending(now)}
        totals = agg.day_totals("global", GLOBAL_ID, day, day, every_counter=True)
        facts = daily_facts(day, totals, _split("model", day, day), _split("account", day, day))
        key = f"digest#{day}"
    elif kind == "weekly":
        monday = (now - timedelta(days=now.weekday() + 7)).replace(hour=0, minute=0, second=0, microsecond=0)
        year, week, _ = monday.isocalendar()
        first, last = day_of(monday), day_of(monday + timedelta(days=6))
        totals = agg.day_totals("global", GLOBAL_ID, first, last, every_counter=True)
        facts = weekly_facts(f"{year}-W{week:02d}", totals, _split("operation", first, last))
        key = f"report#{year}-W{week:02d}"
    else:
        raise InvalidRequest("`kind` must be daily or weekly")
    facts["timestamp"] = iso(now)
    queued = notify.queue(key, facts["event"], facts, now)
    return {"job": "digest", "kind": kind, "queued": queued, "title": facts["title"], "message": facts["message"],
            "delivered": notify.deliver_pending(now)}
