"""Budgets in DynamoDB: admin CRUD, current spend from the aggregates, the state the evaluator records.

The spec and the cache the proxy reads are the ledger's (chalicelib/ledger/budgets.py).
"""
from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from pynamodb.exceptions import DoesNotExist

from chalicelib.alerting.budgets import BudgetStatus, parse_budget, status
from chalicelib.alerting.rules import current_rules
from chalicelib import aws, clock
from chalicelib.clock import iso, precise
from chalicelib.errors import NotFound
from chalicelib.ledger import BudgetSpec, all_budgets, budget_cache, ledger_period, period_bounds, reservations
from chalicelib.ledger import spec_of
from chalicelib.ledger import Budget, BudgetLedger
from chalicelib.money import JsonNumber, money
from chalicelib.reports import aggregates

if TYPE_CHECKING:
    from chalicelib.rollup import Batch

WINDOW_BLOCK = timedelta(minutes=5)


def put_budget(budget_id: str, body: Any) -> dict[str, Any]:
    spec = parse_budget(budget_id, body)
    item = Budget(spec.budget_id, scope=spec.scope, scope_id=spec.scope_id, period=spec.period,
                  window_minutes=spec.window_minutes, timezone=spec.timezone, limit_usd=spec.limit_usd,
                  limit_tokens=spec.limit_tokens, thresholds=list(spec.thresholds), mode=spec.mode,
                  channels=list(spec.channels), account=spec.scope_id if spec.scope == "account" else spec.account,
                  created_at=iso(clock.now()))
    item.save()
    if spec.mode == "hard":
        reservations.set_limit(spec.budget_id, ledger_period(spec, clock.now())[0], spec.limit)
    return budget_view(item)


def delete_budget(budget_id: str) -> dict[str, Any]:
    try:
        Budget.get(budget_id).delete()
    except DoesNotExist:
        raise NotFound(f"no budget {budget_id!r}") from None
    return {"budget_id": budget_id, "deleted": True}


def measure(spec: BudgetSpec, now: datetime) -> BudgetStatus:
    """Spend in the current period, as the budget's scope counted it (reports/aggregates.spend)."""
    start, end = period_bounds(spec, now)
    if spec.scope == "user" and spec.account is not None:
        spent = aggregates.user_spend(spec.account, spec.scope_id, start, end)
    else:
        spent = aggregates.spend(spec.scope, spec.scope_id, start, end, now)
    return status(spec, spent.cost, spent.total_tokens, start, end, now, spent.calls)


def measure_period(spec: BudgetSpec, period_start: datetime) -> BudgetStatus:
    """The whole calendar period that starts at `period_start` (one that has ended), measured as at its last moment."""
    _, end = period_bounds(spec, period_start)
    return measure(spec, end - timedelta(microseconds=1))


def record_status(item: Budget, result: BudgetStatus, now: datetime) -> bool:
    """Store what evaluation found; a hard budget over its limit blocks until its period ends. False if the budget
    was deleted since it was read: an UpdateItem would bring it back as a stub of these fields alone."""
    blocked = None
    if item.mode == "hard" and result.state == "exceeded":
        # a calendar period unblocks when it ends; a window when the next evaluation finds room again
        blocked = iso(result.end if item.period != "window" else now + WINDOW_BLOCK)
    return aws.conditional(lambda: item.update(actions=[
        Budget.spent_usd.set(result.spent if item.limit_usd is not None else None),
        Budget.spent_tokens.set(int(result.spent) if item.limit_tokens is not None else None),
        Budget.period_start.set(iso(result.start)), Budget.period_end.set(iso(result.end)),
        Budget.blocked_until.set(blocked), Budget.evaluated_at.set(precise(now)),
    ], condition=Budget.budget_id.exists()))


def budget_view(item: Budget, result: BudgetStatus | None = None, now: datetime | None = None) -> dict[str, Any]:
    spec = spec_of(item)
    view: dict[str, Any] = {
        "budget_id": item.budget_id, "scope": item.scope, "scope_id": item.scope_id, "account": item.account,
        "period": item.period,
        "window_minutes": item.window_minutes, "timezone": item.timezone, "mode": item.mode,
        "limit_usd": None if item.limit_usd is None else money(item.limit_usd), "limit_tokens": item.limit_tokens,
        "thresholds": [JsonNumber(t) for t in item.thresholds], "channels": list(item.channels),
        "blocked_until": item.blocked_until,
    }
    if result is not None:
        spent = money(result.spent) if spec.unit == "usd" else int(result.spent)
        projected = money(result.forecast) if spec.unit == "usd" else int(result.forecast)
        rules, now = current_rules(), now or clock.now()
        ready = spec.period != "window" and result.forecast_ready(now, rules.forecast_min_elapsed,
                                                                   rules.forecast_min_calls)
        view |= {"spent": spent, "limit": money(spec.limit) if spec.unit == "usd" else int(spec.limit),
                 "unit": spec.unit, "percent": JsonNumber(result.percent), "state": result.state,
                 "forecast": projected, "forecast_ready": ready,
                 "projected_to_exceed": ready and result.state != "exceeded" and result.forecast >= spec.limit,
                 "period_start": iso(result.start), "period_end": iso(result.end)}
    return view


def budgets_report(account: str | None) -> dict[str, Any]:
    """`GET /api/budgets`: every budget the caller may see, measured now; a hard budget's spend and what calls in
    flight hold are its ledger's (the single source of truth the proxy enforces)."""
    now = clock.now()
    items = [b for b in all_budgets() if account is None or b.account == account]
    return {"budgets": [_with_ledger(item, now) for item in items]}


def _with_ledger(item: Budget, now: datetime) -> dict[str, Any]:
    spec = spec_of(item)
    measured = measure(spec, now)
    if item.mode != "hard":
        return budget_view(item, measured, now)
    ledger = current_ledger(spec, now)
    result = measured if ledger is None else status(
        spec, ledger.spent if spec.unit == "usd" else Decimal(0), int(ledger.spent) if spec.unit == "tokens" else 0,
        measured.start, measured.end, now, measured.calls)
    view = budget_view(item, result, now)
    held = ledger.held if ledger is not None else Decimal(0)
    left = spec.limit - result.spent - held
    view |= {"reserved_usd": money(held) if spec.unit == "usd" else None,
             "remaining": money(max(left, Decimal(0))) if spec.unit == "usd" else max(int(left), 0)}
    if spec.unit == "tokens":
        view["reserved_tokens"] = int(held)
    if ledger is not None:
        view["measured_spent"] = money(measured.spent) if spec.unit == "usd" else int(measured.spent)
    return view


def current_ledger(spec: BudgetSpec, now: datetime) -> BudgetLedger | None:
    """The hard budget's ledger of the period holding `now` (None: a soft budget, or no call held on it yet)."""
    if spec.mode != "hard":
        return None
    return reservations.ledger_of(spec.budget_id, ledger_period(spec, now)[0])


def release_holds(now: datetime) -> dict[str, int]:
    """The evaluator's part in holds: release those whose calls never logged by their expiry (each once), and give
    back to a window budget's ledger what has left its window."""
    released = {}
    for item in all_budgets():
        if item.mode == "hard" and item.period == "window":
            reservations.retire_window(item.budget_id, item.window_minutes, now)
        if item.mode == "hard":
            count = reservations.release_expired(item.budget_id, now)
            if count:
                released[item.budget_id] = count
    return released


def refresh_touched(batch: Batch) -> list[str]:
    """The rollup's listener, once it added spend: re-measure the budgets it touched, so a hard budget over its
    limit blocks now (not at the next evaluation) and the remaining-budget header stays about a second old."""
    facts, now, refreshed = batch.added, batch.at, []
    if not facts:
        return refreshed
    for item in budget_cache.budgets():
        spec = spec_of(item)
        if any(spec.applies_to(f.account, f.team, f.key_id, f.provider, f.model, f.user) for f in facts):
            record_status(item, measure(spec, now), now)
            refreshed.append(item.budget_id)
    if refreshed:
        budget_cache.clear()
    return refreshed
