"""The scheduled evaluation: measure → the rules decide (chalicelib/alerting/decide.py) → apply the drafts
(chalicelib/alerting/alert_store.py) → deliver what is queued (chalicelib/alerting/notify.py).

This module only gathers measurements: budgets, traffic windows per scope, key streaks, noted expensive
calls, daily spend, credits, refused authentications, the rollup's quarantine, the dead-letter queues. Safe
to run concurrently and repeatedly: every alert change is a conditional write, and messages are claimed
before sending.
"""
from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from itertools import takewhile
from typing import Any

from chalicelib.alerting import alert_store, credits, notify, provider_balances, signal_reads
from chalicelib.alerting.budget_store import current_ledger, measure, measure_period, record_status, release_holds
from chalicelib.alerting.budgets import BudgetStatus
from chalicelib.alerting.budgets import status as budget_status
from chalicelib.alerting.decide import (
    decide_auth_failures,
    decide_budgets,
    decide_consecutive_errors,
    decide_costly_sessions,
    decide_credits,
    decide_daily_cost,
    decide_dead_letters,
    decide_error_rate,
    decide_expensive_calls,
    decide_latency,
    decide_provider_balances,
    decide_quarantine,
    decide_quota,
    decide_spend_anomaly,
    decide_upstream_auth,
)
from chalicelib.alerting.rules import (
    BudgetReading,
    BudgetReadings,
    CreditReading,
    DailySpend,
    DeadLetters,
    KeyStreak,
    LedgerDrift,
    ProviderFailures,
    QuarantineCount,
    Rules,
    TrafficWindow,
    current_rules,
)
from chalicelib import clock
from chalicelib.caller_names import GLOBAL_ID
from chalicelib.clock import day_of, iso, parse_iso, precise
from chalicelib.errors import is_refusal
from chalicelib.ledger import calllog, dead_letters
from chalicelib.ledger import BudgetSpec, all_budgets, spec_of
from chalicelib.money import JsonNumber
from chalicelib.ledger import Alert
from chalicelib.reports import aggregates as agg
from chalicelib.rollup import quarantine
from chalicelib import provider_registry
from chalicelib.observability import MetricUnit, logger, metrics

BUDGET_RULES = ("budget", "budget_forecast")


def evaluate(body: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """The `evaluate` job: every rule over fresh measurements, the alerts moved on, queued messages sent."""
    now, rules = now or clock.now(), current_rules()
    active = alert_store.active_alerts()
    released = release_holds(now)  # before measuring: what died in flight holds nothing any more
    budgets, checked = measure_budgets(now, active)
    errors, latency, failed_lately = measure_traffic(now, rules)
    error_drafts = decide_error_rate(errors, rules, now)
    # no failure at all (a provider's failed tries included): no call log to read
    recent = recent_calls(now, rules) if failed_lately else []
    streaks = measure_streaks(now, rules, recent) if failed_lately else []
    refusals = provider_failures(recent, now, rules)
    noted, note_keys = signal_reads.expensive_calls()
    sessions, session_keys = signal_reads.costly_sessions()
    spends = measure_spend(now, rules)
    drafts = [
        *decide_budgets(budgets, rules, now),
        *error_drafts,
        *decide_latency(latency, rules, now),
        *decide_consecutive_errors(streaks, rules, now, explained_by=error_drafts),
        *decide_expensive_calls(noted, rules, now),
        *decide_costly_sessions(sessions, rules, now),
        *decide_daily_cost(spends[0], rules, now),
        *decide_spend_anomaly(spends, rules, now),
        *decide_credits(measure_credits(now), rules, now),
        *decide_auth_failures(signal_reads.auth_failures(now, rules.auth_failure_minutes), rules, now),
        *decide_quarantine(QuarantineCount(*quarantine.count()), rules, now),
        *decide_dead_letters(DeadLetters(dead_letters.held_by_queue()), rules, now),
        *decide_provider_balances(provider_balances.readings(now, rules), rules, now),
        *decide_quota(refusals, rules, now),
        *decide_upstream_auth(refusals, rules, now),
    ]
    applied = alert_store.apply(drafts, active, notify.configured_channels(), now)
    signal_reads.forget(note_keys + session_keys, now)
    delivered = notify.deliver_pending(now)
    return {"job": "evaluate", "at": iso(now), "budgets": checked, "opened": applied.opened,
            "escalated": applied.escalated, "resolved": applied.resolved, "delivered": delivered,
            "holds_released": released}


def measure_budgets(now: datetime, active: list[Alert]) -> tuple[BudgetReadings, list[dict[str, Any]]]:
    """Every budget in its current period (its status recorded for the proxy), and the ended periods and deleted
    budgets that open alerts still belong to."""
    items = {item.budget_id: item for item in all_budgets()}
    readings, checked, current, drifts = [], [], {}, []
    for item in items.values():
        spec, status = spec_of(item), measure(spec_of(item), now)
        status, drift = reconcile(spec, status, now)
        drifts += [drift] if drift else []
        record_status(item, status, now)
        readings.append(BudgetReading(spec, status, item.account))
        current[spec.budget_id] = "window" if spec.period == "window" else iso(status.start)
        checked.append({"budget_id": spec.budget_id, "state": status.state, "percent": JsonNumber(status.percent)})
    deleted, ended = [], set()
    for alert in active:
        if alert.rule not in BUDGET_RULES or alert.kind is None:
            continue
        if alert.scope_id not in items:
            deleted.append((alert.rule, alert.scope_id, alert.period))
        elif alert.period not in (None, "window", current[alert.scope_id]):
            ended.add((alert.scope_id, alert.period))
    for budget_id, period in sorted(ended):
        spec = spec_of(items[budget_id])
        if spec.period == "window":
            continue  # the budget became a window: its old period's alert ends as a period does
        status = measure_period(spec, parse_iso(period))
        if iso(status.start) == period:  # else the budget's period changed shape since
            readings.append(BudgetReading(spec, status, items[budget_id].account, ended=True))
    return BudgetReadings(tuple(readings), tuple(deleted), tuple(drifts)), checked


DRIFT_MIN = Decimal("0.000001")  # what the aggregates and a ledger may differ by without a word


def reconcile(spec: BudgetSpec, measured: BudgetStatus, now: datetime) -> tuple[BudgetStatus, LedgerDrift | None]:
    """A hard budget's ledger against the aggregates: the status to judge is the larger spend of the two. The
    ledger is never overwritten: more in the aggregates than in the ledger (a call logged without settling, as
    when its transaction failed and its record spilled) is logged, counted (`BudgetLedgerDrift`) and alerted
    (`budget_ledger_drift`); less is the stream's lag (calls settled, not folded yet)."""
    ledger = current_ledger(spec, now)
    if ledger is None:
        return measured, None
    measured_spent = measured.spent  # in the budget's unit, as the ledger's
    if measured_spent - ledger.spent > DRIFT_MIN:
        logger.warning("hard budget ledger behind the aggregates", extra={
            "budget_id": spec.budget_id, "ledger_spent": str(ledger.spent), "measured_spent": str(measured_spent)})
        metrics.add_metric(name="BudgetLedgerDrift", unit=MetricUnit.Count, value=1)
        return measured, LedgerDrift(spec.budget_id, ledger.spent, measured_spent, spec.unit)
    return budget_status(spec, ledger.spent if spec.unit == "usd" else Decimal(0),
                         int(ledger.spent) if spec.unit == "tokens" else 0, measured.start, measured.end, now,
                         measured.calls), None


def measure_traffic(now: datetime, rules: Rules) -> tuple[list[TrafficWindow], list[TrafficWindow], int]:
    """Error-rate and latency windows of all traffic, each provider and the day's busiest models; and how many
    calls failed over the key-streak lookback (from the same buckets)."""
    minutes = max(rules.error_rate_minutes, rules.latency_minutes, rules.call_lookback_minutes, rules.quota_minutes)
    start = now - timedelta(minutes=minutes) + timedelta(microseconds=1)
    scopes = [("global", GLOBAL_ID), *(("provider", p) for p in provider_registry.names()),
              *(("model", m) for m in _busy_models(day_of(start), day_of(now), rules))]
    errors, latency, failed_lately = [], [], 0
    for kind, scope_id in scopes:
        slots = agg.traffic(kind, scope_id, start, now)
        errors.append(_window(kind, scope_id, slots, now, rules.error_rate_minutes))
        latency.append(_window(kind, scope_id, slots, now, rules.latency_minutes))
        if kind in ("global", "provider"):  # a provider's: its failed tries too, which fell back
            lookback = max(rules.call_lookback_minutes, rules.quota_minutes)
            failed_lately += _window(kind, scope_id, slots, now, lookback).errors
    return errors, latency, failed_lately


def _busy_models(first: str, last: str, rules: Rules) -> list[str]:
    calls = {model: sum(t.calls for t in days.values())
             for model, days in agg.scope_days("model", first, last, max_requests=10).items()}
    enough = min(rules.error_rate_min_calls, rules.latency_min_calls)
    busy = sorted((model for model, n in calls.items() if n >= enough), key=lambda m: -calls[m])
    return busy[:rules.max_model_scopes]


def _window(kind: str, scope_id: str, slots: dict[datetime, agg.Totals], now: datetime, minutes: int) -> TrafficWindow:
    totals = agg.since_bucket(slots, now - timedelta(minutes=minutes) + timedelta(microseconds=1))
    # The calls sent on: the gateway's own refusals are no provider's errors (nor its latency, which they lack).
    return TrafficWindow(kind, scope_id, minutes, totals.answered, totals.errors, dict(totals.latency))


def recent_calls(now: datetime, rules: Rules) -> list:
    """Every account's calls over the longest lookback of the rules that read the call log, newest first."""
    return calllog.calls_between(now - timedelta(minutes=max(rules.call_lookback_minutes, rules.quota_minutes)), now)


def measure_streaks(now: datetime, rules: Rules, recent: list) -> list[KeyStreak]:
    """Per key, the failures in a row among its newest calls of the lookback (the gateway's own refusals skipped:
    a budget or a bad body is no sign of a broken key or provider)."""
    since = precise(now - timedelta(minutes=rules.call_lookback_minutes))
    by_key: dict[str, list] = defaultdict(list)
    for call in recent:
        if call.ts >= since and not is_refusal(call.error_type, call.upstream_reached):
            by_key[call.key_id].append(call)
    streaks = []
    for key_id, calls in by_key.items():  # newest first
        failed = list(takewhile(lambda c: c.status >= 400 or c.error_type is not None, calls))
        if failed:
            streaks.append(KeyStreak(key_id, failed[0].account, len(failed), failed[0].error_type,
                                     tuple(sorted({c.provider for c in failed})),
                                     tuple(sorted({c.model for c in failed if c.model}))))
    return streaks


def _tries(call) -> list[tuple[str, int | None, str | None]]:
    """(provider, status, error_type) of each try a call made upstream: its `attempts`, or the call itself."""
    if call.attempts:
        return [(a.provider, None if a.status is None else int(a.status), a.error_type) for a in call.attempts]
    return [(call.provider, call.status, call.error_type)] if call.upstream_reached else []


def provider_failures(recent: list, now: datetime, rules: Rules) -> list[ProviderFailures]:
    """Per provider, its 429s over the quota window and what became of the calls they hit, and its 401/403s (the
    gateway's own refusals never reached a provider, so they have no tries)."""
    since, minutes = precise(now - timedelta(minutes=rules.quota_minutes)), rules.quota_minutes
    counts: dict[str, dict[str, Any]] = defaultdict(lambda: {"rate_limited": 0, "fell_back": 0, "failed": 0,
                                                             "key_refused": 0, "statuses": set(), "latest": None})
    for call in recent:  # newest first
        if call.ts < since:
            continue
        succeeded = call.status < 400 and call.error_type is None
        limited = set()
        for provider, status, error_type in _tries(call):
            if status == 429:
                counts[provider]["rate_limited"] += 1
                limited.add(provider)
            elif status in (401, 403):
                found = counts[provider]
                found["key_refused"] += 1
                found["statuses"].add(status)
                found["latest"] = found["latest"] or error_type or f"upstream_{status}"
        for provider in limited:
            counts[provider]["fell_back" if succeeded else "failed"] += 1
    return [ProviderFailures(provider, minutes, c["rate_limited"], c["fell_back"], c["failed"], c["key_refused"],
                             tuple(sorted(c["statuses"])), c["latest"]) for provider, c in sorted(counts.items())]


def measure_spend(now: datetime, rules: Rules) -> list[DailySpend]:
    """Today's spend and the days before, for all traffic (first) and for each account that spent today."""
    today = day_of(now)
    days_back = [day_of(now - timedelta(days=n)) for n in range(1, rules.anomaly_days + 1)]
    spends = []
    for kind, max_requests in (("global", 3), ("account", 50)):
        by_scope = {scope_id: {day: totals.cost for day, totals in days.items()} for scope_id, days in
                    agg.scope_days(kind, days_back[-1] if days_back else today, today, max_requests).items()}
        if kind == "global":
            by_scope.setdefault(GLOBAL_ID, {})
        for scope_id, days in sorted(by_scope.items()):
            spent = days.get(today, Decimal(0))
            if kind == "global" or spent >= Decimal(str(rules.anomaly_min_usd)):
                spends.append(DailySpend(kind, scope_id, today, spent,
                                         tuple(days.get(day, Decimal(0)) for day in days_back)))
    return spends


def measure_credits(now: datetime) -> list[CreditReading]:
    readings = []
    for balance in credits.balances():
        used = credits.used_since(balance.account, balance.since, now)
        readings.append(CreditReading(balance.account, balance.amount_usd, balance.amount_usd - used))
    return readings
