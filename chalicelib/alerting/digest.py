"""The daily digest and the weekly performance report, queued once per day / ISO week on every channel."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.alerting import notify
from chalicelib.alerting.budget_store import all_budgets
from chalicelib.clock import day_of, iso, utc_now
from chalicelib.errors import InvalidRequest
from chalicelib.money import money
from chalicelib.reports import aggregates as agg
from chalicelib.rollup import store
from chalicelib.rollup.histogram import percentile
from chalicelib.rollup.layout import Scope

TOP = 5


def _top(breakdown: dict[str, dict[str, Any]], key: str = "cost_usd") -> str:
    ranked = sorted(breakdown.items(), key=lambda kv: float(kv[1][key]), reverse=True)[:TOP]
    return ", ".join(f"{name} ${values['cost_usd']}" for name, values in ranked) or "none"


def daily_facts(day: str, item: dict[str, Any] | None) -> dict[str, Any]:
    item = item or {"day": day}
    totals = agg.total([(item, "")])
    budget_lines = [f"{b.budget_id}: {money(b.spent_usd) if b.spent_usd is not None else b.spent_tokens} of "
                    f"{money(b.limit_usd) if b.limit_usd is not None else b.limit_tokens} ({b.period})"
                    for b in all_budgets()]
    message = "\n".join([
        f"Cost ${money(totals.cost)} over {totals.calls} calls ({totals.errors} errors, "
        f"{totals.unpriced} unpriced); {totals.total_tokens} tokens.",
        f"Top models: {_top(agg.breakdown([item], None, 'model'))}",
        f"Top accounts: {_top(agg.breakdown([item], None, 'account'))}",
        "Budgets: " + ("; ".join(budget_lines) if budget_lines else "none"),
    ])
    return {"event": "digest.daily", "provider": None, "severity": "info", "title": f"Tollgate daily digest for {day}",
            "message": message}


def weekly_facts(week: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    totals = agg.total([(item, "") for item in items])
    latency = {q: percentile(totals.latency, q) for q in (50, 95, 99)}
    operations = agg.breakdown(items, None, "operation")
    rates = ", ".join(f"{name} {v['errors'] / v['calls']:.1%} of {v['calls']}" for name, v in operations.items()
                      if v["calls"]) or "no operations tagged"
    message = "\n".join([
        f"{totals.calls} calls, {totals.errors} errors ({totals.errors / totals.calls:.1%}), cost ${money(totals.cost)}."
        if totals.calls else "No calls this week.",
        f"Latency p50 {latency[50]} ms, p95 {latency[95]} ms, p99 {latency[99]} ms.",
        f"Error rate by operation: {rates}",
    ])
    return {"event": "report.weekly", "provider": None, "severity": "info",
            "title": f"Tollgate weekly performance report, {week}", "message": message}


def digest(body: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """The `digest` job: `{"kind": "daily"}` (yesterday, UTC) or `{"kind": "weekly"}` (the last ISO week)."""
    now = now or utc_now()
    kind = (body or {}).get("kind", "daily") if isinstance(body, dict) else "daily"
    if kind == "daily":
        day = day_of(now - timedelta(days=1))
        items = store.get_days(Scope.everything(), [day])
        facts, key = daily_facts(day, items[0] if items else None), f"digest#{day}"
    elif kind == "weekly":
        monday = (now - timedelta(days=now.weekday() + 7)).replace(hour=0, minute=0, second=0, microsecond=0)
        year, week, _ = monday.isocalendar()
        items = store.query_days(Scope.everything(), day_of(monday),
                                    day_of(monday + timedelta(days=6)))
        facts, key = weekly_facts(f"{year}-W{week:02d}", items), f"report#{year}-W{week:02d}"
    else:
        raise InvalidRequest("`kind` must be daily or weekly")
    facts["timestamp"] = iso(now)
    queued = notify.queue(key, facts["event"], facts, now)
    return {"job": "digest", "kind": kind, "queued": queued, "title": facts["title"], "message": facts["message"],
            "delivered": notify.deliver_pending(now)}
