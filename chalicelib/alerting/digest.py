"""The daily digest and the weekly performance report, queued once per day / ISO week on every channel."""
from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from chalicelib.alerting import notify
from chalicelib import clock
from chalicelib.clock import day_of, iso
from chalicelib.errors import InvalidRequest
from chalicelib.ledger.budgets import all_budgets
from chalicelib.money import money
from chalicelib.reports import aggregates as agg
from chalicelib.rollup import store
from chalicelib.rollup.histogram import percentile
from chalicelib.rollup.layout import Scope, scope_id_of_day_id

TOP = 5


def _top(breakdown: dict[str, dict[str, Any]], key: str = "cost_usd") -> str:
    ranked = sorted(breakdown.items(), key=lambda kv: float(kv[1][key]), reverse=True)[:TOP]
    return ", ".join(f"{name} ${values['cost_usd']}" for name, values in ranked) or "none"


def daily_facts(day: str, item: dict[str, Any] | None, models: dict[str, dict[str, Any]],
                accounts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    item = item or {"day": day}
    totals = agg.total([(item, "")])
    budget_lines = [f"{b.budget_id}: {money(b.spent_usd) if b.spent_usd is not None else b.spent_tokens} of "
                    f"{money(b.limit_usd) if b.limit_usd is not None else b.limit_tokens} ({b.period})"
                    for b in all_budgets()]
    message = "\n".join([
        f"Cost ${money(totals.cost)} over {totals.calls} calls ({totals.errors} errors, "
        f"{totals.unpriced} unpriced); {totals.total_tokens} tokens.",
        f"Top models: {_top(models)}",
        f"Top accounts: {_top(accounts)}",
        "Budgets: " + ("; ".join(budget_lines) if budget_lines else "none"),
    ])
    return {"event": "digest.daily", "provider": None, "severity": "info", "title": f"Tollgate daily digest for {day}",
            "message": message}


def weekly_facts(week: str, items: list[dict[str, Any]], operations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    totals = agg.total([(item, "") for item in items])
    latency = {q: percentile(totals.latency, q) for q in (50, 95, 99)}
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


def _split(kind: str, first: str, last: str) -> dict[str, dict[str, Any]]:
    """All traffic by model, account or operation: those scopes' own day items, through the by_kind index."""
    return agg.breakdown_of_scopes(store.query_kind(kind, first, last, max_requests=100),
                                   lambda entry: scope_id_of_day_id(entry["day_id"]))


def digest(body: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """The `digest` job: `{"kind": "daily"}` (yesterday, UTC) or `{"kind": "weekly"}` (the last ISO week)."""
    now = now or clock.now()
    kind = (body or {}).get("kind", "daily") if isinstance(body, dict) else "daily"
    if kind == "daily":
        day = day_of(now - timedelta(days=1))
        items = store.query_days(Scope.everything(), day, day, parts=["day"])
        facts = daily_facts(day, items[0] if items else None, _split("model", day, day), _split("account", day, day))
        key = f"digest#{day}"
    elif kind == "weekly":
        monday = (now - timedelta(days=now.weekday() + 7)).replace(hour=0, minute=0, second=0, microsecond=0)
        year, week, _ = monday.isocalendar()
        first, last = day_of(monday), day_of(monday + timedelta(days=6))
        items = store.query_days(Scope.everything(), first, last, parts=["day"])
        facts = weekly_facts(f"{year}-W{week:02d}", items, _split("operation", first, last))
        key = f"report#{year}-W{week:02d}"
    else:
        raise InvalidRequest("`kind` must be daily or weekly")
    facts["timestamp"] = iso(now)
    queued = notify.queue(key, facts["event"], facts, now)
    return {"job": "digest", "kind": kind, "queued": queued, "title": facts["title"], "message": facts["message"],
            "delivered": notify.deliver_pending(now)}
