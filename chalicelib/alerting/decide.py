"""The alert rules as pure functions: `decide_*(measurements, rules, now) -> [AlertDraft]`.

Each returns a draft for every alert its rule has something to say about this run: one that fires (at
a level), or one that is over and why. An open alert its rule no longer drafts is clear, and
chalicelib/alerting/lifecycle.py decides when it resolves. No AWS and no clock of their own: measure.py
measures, these decide.
"""
from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from decimal import Decimal
from typing import Iterable

from chalicelib.alerting.rules import (
    CONDITION,
    EVENT,
    PERIOD,
    AlertDraft,
    AuthFailures,
    BalanceReading,
    BudgetReading,
    BudgetReadings,
    CostlySession,
    CreditReading,
    DailySpend,
    DeadLetters,
    ExpensiveCall,
    KeyStreak,
    LedgerDrift,
    ProviderFailures,
    QuarantineCount,
    Rules,
    TrafficWindow,
    closing,
    tier_of,
)
from chalicelib.clock import iso
from chalicelib.ledger import BudgetSpec
from chalicelib.money import money, summing, usd
from chalicelib.reports import percentile
from chalicelib.caller_names import GLOBAL_ID

# --- budgets --------------------------------------------------------------------------------------

def _amount(spec: BudgetSpec, value: Decimal) -> str:
    return usd(value) if spec.unit == "usd" else f"{int(value)} tokens"


def _rough(projection: Decimal) -> Decimal:
    """A projection to the cent (or to a tenth of a cent under a dollar): its last digits mean nothing."""
    return projection.quantize(Decimal("0.01") if projection >= 1 else Decimal("0.001"))


def _where(spec: BudgetSpec) -> str:
    return f"{spec.scope} {spec.scope_id}" if spec.scope != "global" else "all traffic"


def _budget_severity(threshold: Decimal) -> str:
    return "critical" if threshold >= 1 else "high" if threshold >= Decimal("0.8") else "medium"


def decide_budgets(budgets: BudgetReadings, rules: Rules, now: datetime) -> list[AlertDraft]:
    """`budget`: one alert per budget and period, escalating threshold by threshold (50 → 80 → 100 %).
    `budget_forecast`: the period's end projected over the limit, once enough of the period and enough calls
    are behind it; closed quietly when the budget reaches its limit, since the 100 % alert then says it."""
    drafts: list[AlertDraft] = []
    for reading in budgets.readings:
        period = "window" if reading.spec.period == "window" else iso(reading.status.start)
        if reading.ended:
            drafts += _period_over(reading, period)
            continue
        drafts += _thresholds(reading, period, rules)
        if reading.spec.period != "window":
            drafts += _forecast(reading, period, rules, now)
    for rule, budget_id, period in budgets.deleted:
        drafts.append(closing(rule, "budget", budget_id, period, f"The budget {budget_id} was deleted."))
    return drafts + [_ledger_drift(drift) for drift in budgets.drifts]


def _ledger_drift(drift: LedgerDrift) -> AlertDraft:
    """`budget_ledger_drift`: a hard budget's ledger holds less spend than the aggregates measure (a call logged
    without settling). Admission then judges by the larger figure; the ledger is never overwritten, so an operator
    looks. It resolves when the two agree again (the next period's ledger starts from the measured spend)."""
    amount = usd if drift.unit == "usd" else (lambda n: f"{n} tokens")
    return AlertDraft(
        "budget_ledger_drift", "budget", drift.budget_id, None, severity="high",
        title=f"Hard budget {drift.budget_id}: its ledger is behind the aggregates",
        message=f"The hard budget {drift.budget_id}'s ledger has {amount(drift.ledger_spent)} spent, the aggregates "
                f"measure {amount(drift.measured_spent)} for the same period: some call was logged without settling "
                "on the ledger. Admission now judges by the larger figure. See RULES.md (hard limits).",
        kind=CONDITION, recovery=f"The ledger of {drift.budget_id} agrees with the aggregates again.")


def _thresholds(reading: BudgetReading, period: str, rules: Rules) -> list[AlertDraft]:
    spec, status = reading.spec, reading.status
    spent, limit = _amount(spec, status.spent), _amount(spec, spec.limit)
    if not status.crossed:
        if spec.period == "window":
            return []  # a rolling window clears like a condition: after the hold
        return [closing("budget", "budget", spec.budget_id, period,
                        f"Spend is now {spent} of {limit} ({status.percent} %), under every threshold.")]
    threshold = status.crossed[-1]
    blocks = spec.mode == "hard" and threshold >= 1
    if spec.period == "window":
        message = f"{spent} of {limit} spent in the last {spec.window_minutes} minutes." + (
            " New calls are blocked until the window has room again." if blocks else "")
        recovery = (f"Spend in the last {spec.window_minutes} minutes has stayed under "
                    f"{int(spec.thresholds[0] * 100)} % of the limit for {rules.hold_minutes} minutes.")
    else:
        message = f"{spent} of {limit} spent this {spec.period} period (ends {iso(status.end)})." + (
            " New calls are blocked until then." if blocks else "")
        recovery = "The budget's period is over."
    return [AlertDraft(
        "budget", "budget", spec.budget_id, period, level=spec.thresholds.index(threshold) + 1,
        severity=_budget_severity(threshold),
        title=f"Budget {spec.budget_id} at {int(threshold * 100)} % ({_where(spec)})",
        message=message, kind=CONDITION if spec.period == "window" else PERIOD, recovery=recovery,
        hold_minutes=rules.hold_minutes if spec.period == "window" else 0, channels=spec.channels or None,
        threshold=str(threshold), account=reading.account)]


def _forecast(reading: BudgetReading, period: str, rules: Rules, now: datetime) -> list[AlertDraft]:
    spec, status = reading.spec, reading.status
    if status.state == "exceeded":
        return [closing("budget_forecast", "budget", spec.budget_id, period,
                        f"Came true: spend reached {status.percent} % of the limit "
                        f"({_amount(spec, status.spent)} of {_amount(spec, spec.limit)}).", quiet=True)]
    if status.forecast < spec.limit or not status.forecast_ready(now, rules.forecast_min_elapsed,
                                                                   rules.forecast_min_calls):
        return []
    return [AlertDraft(
        "budget_forecast", "budget", spec.budget_id, period, severity="medium",
        title=f"Budget {spec.budget_id} projected to exceed ({_where(spec)})",
        message=f"At the rate since {iso(status.start)} ({status.calls} calls, {_amount(spec, status.spent)} so "
                f"far), {_amount(spec, _rough(status.forecast))} by {iso(status.end)}, over the limit of "
                f"{_amount(spec, spec.limit)}.",
        kind=CONDITION, recovery="At the current rate the period ends under the limit.",
        hold_minutes=rules.hold_minutes, channels=spec.channels or None, account=reading.account)]


def _period_over(reading: BudgetReading, period: str) -> list[AlertDraft]:
    spec, status = reading.spec, reading.status
    spent, limit = _amount(spec, status.spent), _amount(spec, spec.limit)
    over = f"The {spec.period} period ended at {iso(status.end)} with {spent} of {limit} spent"
    reached = status.state == "exceeded"
    drafts = [closing("budget", "budget", spec.budget_id, period,
                      over + (". Calls are allowed again." if reached and spec.mode == "hard" else "."))]
    if reached:
        drafts.append(closing("budget_forecast", "budget", spec.budget_id, period,
                              f"Came true: spend reached {status.percent} % of the limit.", quiet=True))
    else:
        drafts.append(closing("budget_forecast", "budget", spec.budget_id, period,
                              over + ": the limit was not reached."))
    return drafts


# --- traffic: error rate and latency --------------------------------------------------------------

def _name(scope: str, scope_id: str) -> str:
    return "all traffic" if scope == "global" else f"{scope} {scope_id}"


def _speakers(firing: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of the firing scopes may open an alert, so one incident is one alert: the providers that fire
    (or all traffic, when two or more do, or when none has enough calls alone); a model only when no
    broader scope fires. The others keep an alert open if they have one, and open none."""
    firing = set(firing)
    everything = {s for s in firing if s[0] == "global"}
    providers = {s for s in firing if s[0] == "provider"}
    if everything and len(providers) >= 2:
        return everything
    return providers or everything or {s for s in firing if s[0] == "model"}


def _worst_models(windows: list[TrafficWindow]) -> str:
    failing = sorted((w for w in windows if w.scope == "model" and w.errors), key=lambda w: -w.errors)[:3]
    return "" if not failing else " Most failures: " + ", ".join(
        f"{w.scope_id} ({w.errors} of {w.calls})" for w in failing) + "."


def decide_error_rate(windows: list[TrafficWindow], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`error_rate`: errors over the window, per global / provider / model, in tiers (5 / 10 / 25 % →
    medium / high / critical); a higher tier escalates the open alert."""
    tiers, firing = rules.error_tiers, {}
    for window in windows:
        if window.calls and window.calls >= rules.error_rate_min_calls:
            hit = tier_of(window.errors / window.calls, tiers)
            if hit:
                firing[(window.scope, window.scope_id)] = (window, *hit)
    speakers, models = _speakers(firing), _worst_models(windows)
    drafts = []
    for key, (window, level, severity) in sorted(firing.items()):
        name = _name(*key)
        drafts.append(AlertDraft(
            "error_rate", window.scope, window.scope_id, None, level=level, severity=severity,
            title=f"Error rate {window.errors / window.calls:.0%} on {name}",
            message=f"{window.errors} of {window.calls} calls failed in the last {window.minutes} minutes "
                    f"({severity}: {tiers[level - 1][0]:.0%} or more)." + ("" if window.scope == "model" else models),
            kind=CONDITION, hold_minutes=rules.hold_minutes,
            recovery=f"The error rate on {name} has stayed under {tiers[0][0]:.0%} (or under "
                     f"{rules.error_rate_min_calls} calls in {window.minutes} minutes) "
                     f"for {rules.hold_minutes} minutes.",
            provider=window.scope_id if window.scope == "provider" else None, may_open=key in speakers))
    return drafts


def decide_latency(windows: list[TrafficWindow], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`latency_p95`: p95 latency over the window above the limit, per global / provider / model."""
    firing = {}
    for window in windows:
        p95 = percentile(window.latency, 95) if window.calls >= rules.latency_min_calls else None
        if p95 is not None and p95 > rules.p95_latency_ms:
            firing[(window.scope, window.scope_id)] = (window, p95)
    speakers = _speakers(firing)
    limit_s = rules.p95_latency_ms / 1000
    return [AlertDraft(
        "latency_p95", window.scope, window.scope_id, None, severity="high",
        title=f"p95 latency {p95 / 1000:.1f} s on {_name(*key)}",
        message=f"p95 latency over the last {window.minutes} minutes is {p95:.0f} ms across {window.calls} calls "
                f"(limit {rules.p95_latency_ms:.0f} ms).",
        kind=CONDITION, hold_minutes=rules.hold_minutes,
        recovery=f"p95 latency on {_name(*key)} has stayed under {limit_s:.1f} s (or under {rules.latency_min_calls} "
                 f"calls in {window.minutes} minutes) for {rules.hold_minutes} minutes.",
        provider=window.scope_id if window.scope == "provider" else None, may_open=key in speakers)
        for key, (window, p95) in sorted(firing.items())]


def decide_consecutive_errors(streaks: list[KeyStreak], rules: Rules, now: datetime,
                              explained_by: Iterable[AlertDraft] = ()) -> list[AlertDraft]:
    """`consecutive_errors`: a key's newest calls all failed. Opens only when no error-rate alert of this run
    covers the provider or model those failures went to: in an outage, that alert speaks for every key."""
    covering = {(d.scope, d.scope_id) for d in explained_by if not d.closes}
    drafts = []
    for streak in streaks:
        if streak.failures < rules.consecutive_errors:
            continue
        covered = ("global", GLOBAL_ID) in covering or any(("provider", p) in covering for p in streak.providers) \
            or any(("model", m) in covering for m in streak.models)
        drafts.append(AlertDraft(
            "consecutive_errors", "key", streak.key_id, None, severity="high",
            title=f"{streak.failures} errors in a row on key {streak.key_id}",
            message=f"The last {streak.failures} calls with key {streak.key_id} failed (latest: "
                    f"{streak.latest_error or 'error'}).",
            kind=CONDITION, hold_minutes=rules.hold_minutes,
            recovery=f"No run of {rules.consecutive_errors} failed calls on key {streak.key_id} for "
                     f"{rules.hold_minutes} minutes.",
            account=streak.account, may_open=not covered))
    return drafts


# --- calls, spend, credits, authentication, the rollup ---------------------------------------------

def decide_expensive_calls(calls: list[ExpensiveCall], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`expensive_call`: calls over the threshold, one event alert per key while they keep coming; it
    resolves quietly an hour (event_hold_minutes) after the last one, or when acknowledged."""
    threshold = Decimal(rules.expensive_call_usd)
    by_key: dict[str, list[ExpensiveCall]] = defaultdict(list)
    for call in calls:
        if call.cost_usd > threshold:
            by_key[call.key_id].append(call)
    drafts = []
    for key_id, found in sorted(by_key.items()):
        top = max(found, key=lambda c: c.cost_usd)
        more = f" {len(found) - 1} more call(s) on this key went over it too." if len(found) > 1 else ""
        drafts.append(AlertDraft(
            "expensive_call", "key", key_id, None, severity="medium",
            title=f"A single call cost {usd(top.cost_usd)}",
            message=f"Call {top.call_id} ({top.provider} {top.model}) by {top.who} cost {usd(top.cost_usd)}, "
                    f"over {usd(Decimal(str(rules.expensive_call_usd)))}.{more}",
            kind=EVENT, hold_minutes=rules.event_hold_minutes, recovery_quiet=True,
            recovery=f"No call over {usd(Decimal(str(rules.expensive_call_usd)))} on key {key_id} "
                     f"for {rules.event_hold_minutes} minutes.",
            account=top.account, provider=top.provider, occurrences=len(found)))
    return drafts


def decide_costly_sessions(sessions: list[CostlySession], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`session_cost`: one conversation has cost more than the threshold; one event alert per session (noted
    once by the stream), which resolves quietly after event_hold_minutes, or when acknowledged."""
    threshold = Decimal(rules.session_cost_usd)
    return [AlertDraft(
        "session_cost", "session", f"{found.account}|{found.session}", None, severity="medium",
        title=f"A session has cost {usd(found.cost_usd)}",
        message=f"Session {found.session} of account {found.account}" + (f" (user {found.user})" if found.user else "")
                + f" has cost {usd(found.cost_usd)} so far, over {usd(Decimal(str(rules.session_cost_usd)))}.",
        kind=EVENT, hold_minutes=rules.event_hold_minutes, recovery_quiet=True,
        recovery=f"Session {found.session} was noted once; it is not alerted again.", account=found.account)
        for found in sessions if found.cost_usd > threshold]


def decide_daily_cost(spend: DailySpend, rules: Rules, now: datetime) -> list[AlertDraft]:
    """`daily_cost`: today's cost (UTC) through tiers ($10 / $25 / $50 → medium / high / critical), one alert a
    day that escalates; it ends quietly with the day."""
    tiers = tuple((Decimal(str(bound)), severity) for bound, severity in rules.daily_cost_tiers)
    hit = tier_of(spend.today, tiers)
    if hit is None:
        return [closing("daily_cost", spend.scope, spend.scope_id, spend.day,
                        f"Today's cost is now {usd(spend.today)}, under {usd(tiers[0][0])}.")] if tiers else []
    level, severity = hit
    bound = tiers[level - 1][0]
    return [AlertDraft("daily_cost", spend.scope, spend.scope_id, spend.day, level=level, severity=severity,
                       title=f"Daily cost passed {usd(bound)}", message=f"{usd(spend.today)} spent today (UTC) so far.",
                       kind=PERIOD, recovery="A new UTC day started.", recovery_quiet=True, threshold=str(bound))]


def decide_spend_anomaly(spends: list[DailySpend], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`spend_anomaly`: today at or above the trailing mean + 3σ (with enough history and at least $1), per
    account and for all traffic; all traffic opens only when no account explains it."""
    firing = []
    for spend in spends:
        history = [Decimal(h) for h in spend.history[:rules.anomaly_days]]
        if sum(1 for h in history if h) < rules.anomaly_min_history_days:
            continue
        with summing():  # Decimal in, Decimal out: the spend is compared exactly, never as a float
            mean, spread = statistics.mean(history), statistics.pstdev(history)
            bar = max(Decimal(str(rules.anomaly_min_usd)), mean + Decimal(str(rules.anomaly_sigmas)) * spread)
        if spend.today >= bar:
            firing.append((spend, mean, spread))
    accounts = any(spend.scope == "account" for spend, _, _ in firing)
    return [AlertDraft(
        "spend_anomaly", spend.scope, spend.scope_id, spend.day, severity="high",
        title="Unusual spend today" + (f" on account {spend.scope_id}" if spend.scope == "account" else ""),
        message=f"{usd(spend.today)} today against a {len(spend.history[:rules.anomaly_days])}-day mean of "
                f"{usd(Decimal(f'{mean:.2f}'))} (σ {usd(Decimal(f'{spread:.2f}'))}).",
        kind=PERIOD, recovery="A new UTC day started.", recovery_quiet=True,
        account=spend.scope_id if spend.scope == "account" else None,
        may_open=spend.scope == "account" or not accounts) for spend, mean, spread in firing]


def decide_credits(balances: list[CreditReading], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`credits_low`: an account under 10 % of its credits (high), escalating when none are left (critical)."""
    fraction = Decimal(str(rules.credits_low_fraction))
    drafts = []
    for balance in balances:
        if balance.allocated <= 0 or balance.remaining >= balance.allocated * fraction:
            continue
        empty = balance.remaining <= 0
        drafts.append(AlertDraft(
            "credits_low", "account", balance.account, None, level=2 if empty else 1,
            severity="critical" if empty else "high",
            title=f"Credits {'used up' if empty else 'low'} for {balance.account}",
            message=f"{usd(balance.remaining)} of {usd(balance.allocated)} left.",
            kind=CONDITION, recovery=f"Credits for {balance.account} are back above {fraction:.0%} of the allocation.",
            threshold=money(balance.allocated), account=balance.account))
    return drafts


def decide_auth_failures(failures: AuthFailures, rules: Rules, now: datetime) -> list[AlertDraft]:
    """`auth_failures`: a burst of 401s (20 / 200 / 2000 in 5 minutes → medium / high / critical), with the key
    prefixes presented: one prefix is usually a revoked key still in use, many prefixes key guessing."""
    hit = tier_of(failures.total, rules.auth_failure_tiers)
    if hit is None:
        return []
    level, severity = hit
    prefixes = sorted(failures.by_prefix.items(), key=lambda kv: (-kv[1], kv[0]))[:5]
    listed = ", ".join(f"{prefix} ({count})" for prefix, count in prefixes) or "none recorded"
    first = rules.auth_failure_tiers[0][0]
    return [AlertDraft(
        "auth_failures", "global", GLOBAL_ID, None, level=level, severity=severity,
        title=f"{failures.total} failed authentications in {failures.minutes} minutes",
        message=f"{failures.total} requests were refused with 401 (missing, unknown or revoked gateway key) in the "
                f"last {failures.minutes} minutes. Key prefixes presented: {listed}.",
        kind=CONDITION, hold_minutes=rules.hold_minutes,
        recovery=f"Failed authentications have stayed under {first} in {failures.minutes} minutes for "
                 f"{rules.hold_minutes} minutes.")]


def decide_quarantine(held: QuarantineCount, rules: Rules, now: datetime) -> list[AlertDraft]:
    """`rollup_quarantine`: one alert for as long as the rollup holds records it could not fold, whatever their
    number; it resolves as soon as none is left (an operator's doing, so no hold)."""
    if not held.held:
        return []
    return [AlertDraft(
        "rollup_quarantine", "global", GLOBAL_ID, None, severity="high", title="Call records quarantined by the rollup",
        message=f"{held.held}{'+' if held.more else ''} call record(s) could not be folded into the aggregates and "
                "were set aside with the reason, under `quarantine#calls` in the aggregates table; the rest of the "
                "stream goes on. Reports and budgets leave them out until they are fixed and their days recalculated.",
        kind=CONDITION, recovery="No quarantined record is left.")]


DEAD_LETTER_QUEUES = {
    "spill_dead_letters": "the spill's dead-letter queue (call records never written to the call log)",
    "rollup_dead_letters": "the rollup's dead-letter queue (stream batches the rollup gave up on)",
}


def decide_dead_letters(queues: DeadLetters, rules: Rules, now: datetime) -> list[AlertDraft]:
    """`dead_letters`: one alert while either dead-letter queue holds a message (spend the aggregates miss); it
    resolves as soon as both are empty (an operator's doing, so no hold)."""
    holding = {name: count for name, count in sorted(queues.held.items()) if count}
    if not holding:
        return []
    listed = "; ".join(f"{DEAD_LETTER_QUEUES.get(name, name)}: {count}" for name, count in holding.items())
    return [AlertDraft(
        "dead_letters", "global", GLOBAL_ID, None, severity="high", title="Call records in a dead-letter queue",
        message=f"Records were dead-lettered, so reports and budgets miss their spend. {listed}. See OPERATIONS.md "
                "(the spill queue's and the rollup's dead-letter queues) for how to bring them back.",
        kind=CONDITION, recovery="Both dead-letter queues are empty.")]


# --- providers: balances, quotas, our keys ----------------------------------------------------------------

def decide_provider_balances(balances: list[BalanceReading], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`provider_balance_low`: a provider's prepaid balance under its low mark (high), escalating when none is
    left (critical); it resolves at the first run that finds it topped up (an operator's doing, so no hold)."""
    drafts = []
    for reading in balances:
        if reading.balance_usd >= reading.low_usd and reading.balance_usd > 0:
            continue
        empty = reading.balance_usd <= 0
        source = "as its API says" if reading.source == "api" else "recorded, less the metered spend since"
        drafts.append(AlertDraft(
            "provider_balance_low", "provider", reading.provider, None, level=2 if empty else 1,
            severity="critical" if empty else "high",
            title=f"{reading.provider} balance {'used up' if empty else 'low'}: {usd(reading.balance_usd)}",
            message=f"{reading.provider} has {usd(reading.balance_usd)} of prepaid credit left ({source}), under "
                    f"{usd(reading.low_usd)}." + (" Calls to it will fail until it is topped up." if empty else ""),
            kind=CONDITION, recovery=f"{reading.provider}'s balance is back at {usd(reading.low_usd)} or more.",
            threshold=money(reading.low_usd), provider=reading.provider))
    return drafts


def decide_quota(failures: list[ProviderFailures], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`provider_quota`: a provider answered 429 (rate limit or quota) to `quota_min_429s` tries or more in the
    window: one alert per provider and incident, saying how many calls fell back and how many failed."""
    drafts = []
    for found in failures:
        if found.rate_limited < rules.quota_min_429s:
            continue
        drafts.append(AlertDraft(
            "provider_quota", "provider", found.provider, None, severity="critical" if found.failed else "high",
            title=f"{found.provider} is refusing calls with 429 (quota or rate limit)",
            message=f"{found.provider} answered 429 to {found.rate_limited} tries in the last {found.minutes} "
                    f"minutes: {found.fell_back} call(s) fell back to another provider and {found.failed} failed.",
            kind=CONDITION, hold_minutes=rules.hold_minutes,
            recovery=f"{found.provider} has answered fewer than {rules.quota_min_429s} 429s in {found.minutes} "
                     f"minutes for {rules.hold_minutes} minutes.", provider=found.provider))
    return drafts


def decide_upstream_auth(failures: list[ProviderFailures], rules: Rules, now: datetime) -> list[AlertDraft]:
    """`provider_key_rejected`: a provider answered 401 or 403, so it refuses our key: critical at the first one."""
    drafts = []
    for found in failures:
        if not found.key_refused:
            continue
        statuses = "/".join(str(s) for s in found.key_statuses) or "401"
        drafts.append(AlertDraft(
            "provider_key_rejected", "provider", found.provider, None, severity="critical",
            title=f"{found.provider} rejected Tollgate's API key ({statuses})",
            message=f"{found.provider} answered {statuses} to {found.key_refused} tries in the last {found.minutes} "
                    f"minutes (latest: {found.latest_key_error or 'no error type'}): its upstream API key is wrong, "
                    "revoked or lacks access. Check the key Tollgate holds for it.",
            kind=CONDITION, hold_minutes=rules.hold_minutes,
            recovery=f"No 401 or 403 from {found.provider} for {rules.hold_minutes} minutes.",
            provider=found.provider))
    return drafts
