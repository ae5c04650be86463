"""The scheduled evaluation: budgets and alert rules → alerts opened or resolved → messages delivered.

Safe to run concurrently and repeatedly: alerts are opened by conditional writes, resolved by
conditional updates, and messages are claimed before sending.
"""
from __future__ import annotations

import json
import os
import statistics
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from . import aggregates as agg
from . import aggstore, alerts, calllog, credits, notify, quarantine
from .alerts import AlertDraft
from .budget_store import all_budgets, iso, measure, record_status, spec_of, utc_now
from .histogram import percentile
from .pricing import money
from .rollup import GLOBAL_ID
from .settings import PROVIDERS


@dataclass(frozen=True)
class Rules:
    """Defaults from the seed requirements; override any of them with TOLLGATE_ALERT_RULES (JSON)."""

    error_rate: float = 0.05
    error_rate_minutes: int = 5
    error_rate_min_calls: int = 20
    p95_latency_ms: float = 10_000
    latency_minutes: int = 10
    latency_min_calls: int = 10
    expensive_call_usd: str = "0.50"
    consecutive_errors: int = 5
    call_lookback_minutes: int = 15
    daily_cost_tiers: tuple = ((10, "medium"), (25, "high"), (50, "critical"))
    anomaly_days: int = 14
    anomaly_sigmas: float = 3.0
    anomaly_min_usd: float = 1.0
    credits_low_fraction: float = 0.1


def rules_from_env() -> Rules:
    overrides = json.loads(os.environ.get("TOLLGATE_ALERT_RULES") or "{}")
    known = {f.name for f in fields(Rules)}
    return Rules(**{k: (tuple(map(tuple, v)) if k == "daily_cost_tiers" else v) for k, v in overrides.items()
                    if k in known})


class Run:
    """One evaluation: the alerts that are active now, and what this run opened and resolved."""

    def __init__(self, now: datetime, rules: Rules) -> None:
        self.now, self.rules = now, rules
        self.channels = notify.configured_channels()
        self.active = alerts.active_alerts()
        self.opened: list[str] = []
        self.resolved: list[str] = []
        self.firing: set[str] = set()

    def fire(self, draft: AlertDraft) -> None:
        self.firing.add(draft.alert_id)
        if alerts.open_alert(draft, self.now):
            self.opened.append(draft.alert_id)

    def draft(self, rule: str, scope: str, scope_id: str, period: str, severity: str, title: str, message: str,
              threshold: str | None = None, channels: tuple[str, ...] | None = None, **extra: Any) -> AlertDraft:
        return AlertDraft(rule, scope, scope_id, period, severity, title, message,
                          self.channels if channels is None else channels, threshold, **extra)

    def settle(self, rules: tuple[str, ...], why: str) -> None:
        """Resolve active alerts of these rules that did not fire in this run: their condition cleared."""
        for alert in self.active:
            if alert.rule in rules and alert.alert_id not in self.firing:
                if alerts.resolve(alert, why, self.now):
                    self.resolved.append(alert.alert_id)


def _severity(threshold: Decimal) -> str:
    return "critical" if threshold >= 1 else "high" if threshold >= Decimal("0.8") else "medium"


def check_budgets(run: Run) -> list[dict[str, Any]]:
    checked = []
    for item in all_budgets():
        spec = spec_of(item)
        result = measure(spec, run.now)
        record_status(item, result, run.now)
        period = iso(result.start) if spec.period != "window" else "window"
        unit = "USD" if spec.unit == "usd" else "tokens"
        limit = money(spec.limit) if spec.unit == "usd" else str(int(spec.limit))
        spent = money(result.spent) if spec.unit == "usd" else str(int(result.spent))
        where = f"{spec.scope} {spec.scope_id}" if spec.scope != "global" else "all traffic"
        channels = spec.channels or run.channels
        for threshold in result.crossed:
            run.fire(run.draft(
                "budget", "budget", spec.budget_id, period, _severity(threshold),
                f"Budget {spec.budget_id} at {int(threshold * 100)} % ({where})",
                f"{spent} of {limit} {unit} spent this {spec.period} period (ends {iso(result.end)}). "
                + ("New calls are blocked until then." if spec.mode == "hard" and threshold >= 1 else ""),
                threshold=str(threshold), channels=channels, account=item.account))
        if spec.period != "window" and result.state != "exceeded" and result.forecast >= spec.limit:
            run.fire(run.draft(
                "budget_forecast", "budget", spec.budget_id, period, "medium",
                f"Budget {spec.budget_id} projected to exceed ({where})",
                f"At the current rate {money(result.forecast) if spec.unit == 'usd' else int(result.forecast)} "
                f"{unit} by {iso(result.end)}, over the limit of {limit}.", channels=channels, account=item.account))
        checked.append({"budget_id": spec.budget_id, "state": result.state, "percent": float(result.percent)})
    run.settle(("budget", "budget_forecast"), "The budget period ended or the limit was raised.")
    return checked


def _window(pk: str, now: datetime, minutes: int) -> agg.Totals:
    start = now - timedelta(minutes=minutes) + timedelta(microseconds=1)
    items = aggstore.query_days(pk, start.strftime("%Y-%m-%d"), now.strftime("%Y-%m-%d"))
    return agg.total(agg.resolution_pairs(items, agg.five_minutes_between(start, now), agg.slot_prefix))


def check_traffic(run: Run) -> None:
    rules, hour = run.rules, run.now.strftime("%Y-%m-%dT%H")
    for kind, scope_id in [("global", GLOBAL_ID), *(("provider", p) for p in PROVIDERS)]:
        recent = _window(f"{kind}#{scope_id}", run.now, rules.error_rate_minutes)
        provider = scope_id if kind == "provider" else None
        if recent.calls >= rules.error_rate_min_calls and recent.errors / recent.calls > rules.error_rate:
            run.fire(run.draft("error_rate", kind, scope_id, hour, "high",
                               f"Error rate {recent.errors / recent.calls:.0%} on {scope_id}",
                               f"{recent.errors} of {recent.calls} calls failed in the last "
                               f"{rules.error_rate_minutes} minutes.", provider=provider))
    slow = _window(f"global#{GLOBAL_ID}", run.now, rules.latency_minutes)
    p95 = percentile(slow.latency, 95) if slow.calls >= rules.latency_min_calls else None
    if p95 is not None and p95 > rules.p95_latency_ms:
        run.fire(run.draft("latency_p95", "global", GLOBAL_ID, hour, "high", f"p95 latency {p95 / 1000:.1f} s",
                           f"p95 latency over the last {rules.latency_minutes} minutes is {p95:.0f} ms."))
    run.settle(("error_rate", "latency_p95"), "Back within the limits.")


def check_calls(run: Run) -> None:
    rules = run.rules
    since = calllog.iso(run.now - timedelta(minutes=rules.call_lookback_minutes))
    recent = [c for c in calllog.recent_calls(limit=2000) if c.ts >= since]
    expensive = Decimal(rules.expensive_call_usd)
    for call in recent:
        if call.cost_usd is not None and call.cost_usd > expensive:
            run.fire(run.draft("expensive_call", "call", call.call_id, call.day, "medium",
                               f"A single call cost ${money(call.cost_usd)}",
                               f"Call {call.call_id} ({call.provider} {call.model}) by key {call.key_id} cost "
                               f"${money(call.cost_usd)}, over ${rules.expensive_call_usd}.",
                               account=call.account, provider=call.provider))
    by_key: dict[str, list] = {}
    for call in recent:  # newest first
        by_key.setdefault(call.key_id, []).append(call)
    for key_id, calls in by_key.items():
        streak = next((n for n, call in enumerate(calls) if call.status < 400 and not call.error_type), len(calls))
        if streak >= rules.consecutive_errors:
            run.fire(run.draft("consecutive_errors", "key", key_id, run.now.strftime("%Y-%m-%d"), "high",
                               f"{streak} errors in a row on key {key_id}",
                               f"The last {streak} calls with key {key_id} failed (latest: {calls[0].error_type}).",
                               account=calls[0].account))
    quiet = {a.alert_id for a in run.active if a.rule == "consecutive_errors" and a.scope_id not in by_key}
    run.firing |= quiet  # no new calls on that key: keep the alert as it is
    run.settle(("consecutive_errors",), "The key's latest call succeeded.")


def check_spend(run: Run) -> None:
    rules, today = run.rules, run.now.strftime("%Y-%m-%d")
    first = (run.now - timedelta(days=rules.anomaly_days)).strftime("%Y-%m-%d")
    days = {item["day"]: Decimal(item.get("cost", 0))
            for item in aggstore.query_days(f"global#{GLOBAL_ID}", first, today, ["cost"])}
    spent = days.get(today, Decimal(0))
    for tier, severity in rules.daily_cost_tiers:
        if spent >= Decimal(str(tier)):
            run.fire(run.draft("daily_cost", "global", GLOBAL_ID, today, severity, f"Daily cost passed ${tier}",
                               f"${money(spent)} spent today (UTC) so far.", threshold=str(tier)))
    history = [float(days.get((run.now - timedelta(days=n)).strftime("%Y-%m-%d"), 0))
               for n in range(1, rules.anomaly_days + 1)]
    mean, spread = statistics.fmean(history), statistics.pstdev(history)
    if sum(1 for h in history if h) >= 7 and float(spent) >= max(rules.anomaly_min_usd,
                                                                   mean + rules.anomaly_sigmas * spread):
        run.fire(run.draft("spend_anomaly", "global", GLOBAL_ID, today, "high", "Unusual spend today",
                           f"${money(spent)} today against a {rules.anomaly_days}-day mean of ${mean:.2f} "
                           f"(σ ${spread:.2f})."))
    run.settle(("daily_cost", "spend_anomaly"), "A new day started.")


def check_credits(run: Run) -> None:
    for balance in credits.balances():
        view = credits.credit_view(balance.account, run.now, balance)
        allocated, remaining = Decimal(view["allocated_usd"]), Decimal(view["remaining_usd"])
        if allocated > 0 and remaining < allocated * Decimal(str(run.rules.credits_low_fraction)):
            run.fire(run.draft("credits_low", "account", balance.account, "balance", "high",
                               f"Credits low for {balance.account}",
                               f"${view['remaining_usd']} of ${view['allocated_usd']} left.",
                               threshold=view["allocated_usd"], account=balance.account))
    run.settle(("credits_low",), "Credits were topped up.")


def check_quarantine(run: Run) -> None:
    """One alert for as long as the rollup holds records it could not fold, whatever their number."""
    held, more = quarantine.count()
    active = {a.alert_id for a in run.active if a.rule == "rollup_quarantine"}
    if held and active:
        run.firing |= active
    elif held:  # a new episode: named by when it was found, so one after a resolved one opens again
        run.fire(run.draft("rollup_quarantine", "global", GLOBAL_ID, iso(run.now), "high",
                           "Call records quarantined by the rollup",
                           f"{held}{'+' if more else ''} call record(s) could not be folded into the aggregates "
                           f"and were set aside with the reason, under `{quarantine.PK}` in the aggregates table; "
                           "the rest of the stream goes on. Reports and budgets leave them out until they are "
                           "fixed and their days recalculated."))
    run.settle(("rollup_quarantine",), "No quarantined record is left.")


def evaluate(body: Any = None, now: datetime | None = None) -> dict[str, Any]:
    """The `evaluate` job: every check, then delivery of whatever is queued."""
    run = Run(now or utc_now(), rules_from_env())
    budgets = check_budgets(run)
    for check in (check_traffic, check_calls, check_spend, check_credits, check_quarantine):
        check(run)
    delivered = notify.deliver_pending(run.now)
    return {"job": "evaluate", "at": iso(run.now), "budgets": budgets, "opened": run.opened,
            "resolved": run.resolved, "delivered": delivered}
