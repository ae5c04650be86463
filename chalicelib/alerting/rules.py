"""Alert rules as data: their thresholds and hold times, what evaluation measures for them, and the alert
drafts the `decide_*` functions (chalicelib/alerting/decide.py) turn measurements into. Pure: no AWS.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, fields
from decimal import Decimal
from typing import Mapping

from chalicelib.alerting.budgets import BudgetStatus
from chalicelib.errors import ConfigurationError
from chalicelib.ledger import BudgetSpec
from chalicelib.settings import get_settings

# How an alert ends (see chalicelib/alerting/lifecycle.py).
CONDITION = "condition"  # resolves once its condition has been clear for the rule's hold time
PERIOD = "period"  # belongs to a period (a budget's, a UTC day): resolves when decided, or when the period is over
EVENT = "event"  # one-shot events grouped while they keep coming: resolves quietly after its hold, or on ack

SEVERITIES = ("info", "medium", "high", "critical")


@dataclass(frozen=True)
class Rules:
    """Defaults from the seed requirements; override any of them with TOLLGATE_ALERT_RULES (JSON)."""

    error_rate: float = 0.05  # the first tier; the others default to 2× and 5× it: 5 / 10 / 25 %
    error_rate_tiers: tuple = ()  # ((0.05, "medium"), (0.10, "high"), (0.25, "critical")) when empty
    error_rate_minutes: int = 5
    error_rate_min_calls: int = 20
    p95_latency_ms: float = 10_000
    latency_minutes: int = 10
    latency_min_calls: int = 10
    max_model_scopes: int = 50  # the busiest models of the day get their own error-rate and latency checks
    expensive_call_usd: str = "0.50"
    session_cost_usd: str = "5.00"  # one conversation (X-Tollgate-Session) that has cost more than this
    consecutive_errors: int = 5
    call_lookback_minutes: int = 15
    daily_cost_tiers: tuple = ((10, "medium"), (25, "high"), (50, "critical"))
    anomaly_days: int = 14
    anomaly_min_history_days: int = 7
    anomaly_sigmas: float = 3.0
    anomaly_min_usd: Decimal = Decimal("1.0")
    credits_low_fraction: float = 0.1
    forecast_min_elapsed: float = 0.25  # share of the period gone before a forecast may alert
    forecast_min_calls: int = 20  # calls in the period before a forecast may alert
    auth_failure_minutes: int = 5
    auth_failure_tiers: tuple = ((20, "medium"), (200, "high"), (2000, "critical"))
    hold_minutes: int = 15  # a condition must stay clear this long before its alert resolves
    quota_minutes: int = 15  # a provider's upstream 429s (and 401/403s) are counted over this window
    quota_min_429s: int = 3  # this many 429s from one provider in the window open its quota alert
    provider_low_usd: str = "5.00"  # a provider balance's low mark when its admin gave none (OpenRouter's, read)
    event_hold_minutes: int = 60  # an event alert resolves (quietly) this long after its last event

    @property
    def error_tiers(self) -> tuple[tuple[float, str], ...]:
        if self.error_rate_tiers:
            return tuple((float(rate), severity) for rate, severity in self.error_rate_tiers)
        base = float(self.error_rate)
        return ((base, "medium"), (2 * base, "high"), (5 * base, "critical"))


TIER_FIELDS = ("error_rate_tiers", "daily_cost_tiers", "auth_failure_tiers")


def rules_from_json(text: str | None) -> Rules:
    """The rules with the overrides in `text` (a JSON object); unknown names are ignored."""
    try:  # fractions as Decimal: a money override keeps every digit; ratios and times go on as floats
        overrides = json.loads(text or "{}", parse_float=Decimal)
    except ValueError:
        raise ConfigurationError("TOLLGATE_ALERT_RULES is not valid JSON") from None
    if not isinstance(overrides, dict):
        raise ConfigurationError("TOLLGATE_ALERT_RULES must be a JSON object")
    known = {f.name: f.type for f in fields(Rules)}
    return Rules(**{name: (tuple(map(tuple, value)) if name in TIER_FIELDS
                           else float(value) if isinstance(value, Decimal) and known[name] == "float" else value)
                    for name, value in overrides.items() if name in known})


def current_rules() -> Rules:
    """The rules as this deployment configures them."""
    return rules_from_json(get_settings().alert_rules)


def tier_of(value: float, tiers: tuple) -> tuple[int, str] | None:
    """(level, severity) of the highest tier `value` reaches (levels count from 1), or None."""
    reached = [(n, severity) for n, (bound, severity) in enumerate(tiers, start=1) if value >= Decimal(str(bound))]
    return reached[-1] if reached else None


@dataclass(frozen=True)
class AlertDraft:
    """What a rule found about one alert this run: that it fires (at a level), or that it is over (`resolution`).

    Its identity is (rule, scope, scope_id, period): `period` is the budget period (or the UTC day) for
    alerts about a period, None for conditions, so one incident stays one alert however long it lasts.
    """

    rule: str
    scope: str
    scope_id: str
    period: str | None
    level: int = 1  # the escalation step; reaching a higher one updates the alert and notifies once
    severity: str = "medium"
    title: str = ""
    message: str = ""
    kind: str = CONDITION
    recovery: str = ""  # the resolution when it ends by itself (a condition clear for its hold, a period over)
    recovery_quiet: bool = False  # ...without a message
    hold_minutes: int = 0
    channels: tuple[str, ...] | None = None  # None: every configured channel
    threshold: str | None = None
    account: str | None = None
    provider: str | None = None
    may_open: bool = True  # False: keeps an open alert alive, but opens none (a broader alert speaks for it)
    occurrences: int = 1  # event alerts: the events this draft reports
    resolution: str | None = None  # set: the alert is over, for this reason
    quiet: bool = False  # with `resolution`: close it without a message

    @property
    def alert_id(self) -> str:
        return alert_id_of(self.rule, self.scope, self.scope_id, self.period)

    @property
    def closes(self) -> bool:
        return self.resolution is not None


def alert_id_of(rule: str, scope: str, scope_id: str, period: str | None) -> str:
    identity = json.dumps([rule, scope, scope_id, period])
    return "al_" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def closing(rule: str, scope: str, scope_id: str, period: str | None, reason: str, quiet: bool = False) -> AlertDraft:
    """A draft that ends the alert of this identity, if one is open."""
    return AlertDraft(rule, scope, scope_id, period, resolution=reason, quiet=quiet)


# --- What evaluation measures (plain values, built by chalicelib/alerting/measure.py) ---------------------------

@dataclass(frozen=True)
class BudgetReading:
    """A budget measured over one period: the current one, or (`ended`) one an open alert belongs to."""

    spec: BudgetSpec
    status: BudgetStatus
    account: str | None = None
    ended: bool = False


@dataclass(frozen=True)
class BudgetReadings:
    readings: tuple[BudgetReading, ...]
    deleted: tuple[tuple[str, str, str | None], ...] = ()  # (rule, budget_id, period) of open alerts, budget gone
    drifts: tuple[LedgerDrift, ...] = ()  # hard budgets whose ledger is behind the aggregates


@dataclass(frozen=True)
class LedgerDrift:
    """A hard budget's ledger (what admission holds against) behind the aggregates' measure of the same period."""

    budget_id: str
    ledger_spent: Decimal
    measured_spent: Decimal
    unit: str


@dataclass(frozen=True)
class TrafficWindow:
    """Calls, errors and the latency histogram of one scope (global, provider or model) over a window."""

    scope: str
    scope_id: str
    minutes: int
    calls: int
    errors: int
    latency: Mapping[int, int]  # histogram bucket → calls (chalicelib/rollup/histogram.py)


@dataclass(frozen=True)
class KeyStreak:
    """A key's newest calls: how many in a row failed, and where those failures went."""

    key_id: str
    account: str
    failures: int
    latest_error: str | None
    providers: tuple[str, ...] = ()
    models: tuple[str, ...] = ()


@dataclass(frozen=True)
class CostlySession:
    account: str
    session: str
    user: str | None
    cost_usd: Decimal


@dataclass(frozen=True)
class ExpensiveCall:
    call_id: str
    ts: str
    account: str
    key_id: str
    provider: str
    model: str | None
    cost_usd: Decimal
    key_name: str | None = None  # who made it, as people know them: the key's name, the user, the session
    user: str | None = None
    session: str | None = None

    @property
    def who(self) -> str:
        """`key support-bot (k1), user alice, session s-1`; the key id alone when nothing more is known."""
        named = f"key {self.key_name} ({self.key_id})" if self.key_name else f"key {self.key_id}"
        return named + (f", user {self.user}" if self.user else "") + (f", session {self.session}" if self.session
                                                                         else "")


@dataclass(frozen=True)
class DailySpend:
    """One scope's spend today (UTC) and on each of the days before, newest first."""

    scope: str  # global | account
    scope_id: str
    day: str
    today: Decimal
    history: tuple[Decimal, ...]


@dataclass(frozen=True)
class CreditReading:
    account: str
    allocated: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class AuthFailures:
    """Failed authentications (401) over a window, in total and by the key prefix presented."""

    minutes: int
    total: int
    by_prefix: Mapping[str, int]


@dataclass(frozen=True)
class QuarantineCount:
    held: int
    more: bool = False


@dataclass(frozen=True)
class DeadLetters:
    """Messages held by each dead-letter queue (`spill_dead_letters`, `rollup_dead_letters`)."""

    held: Mapping[str, int]


@dataclass(frozen=True)
class BalanceReading:
    """A provider's prepaid balance as it stands now, and the mark under which it is low."""

    provider: str
    balance_usd: Decimal
    low_usd: Decimal
    source: str = "admin"  # admin (recorded, less the metered spend since) | api (OpenRouter's own word)


@dataclass(frozen=True)
class ProviderFailures:
    """One provider's upstream refusals over the window, from the call log's tries (`attempts`): its 429s and the
    calls they hit, that then fell back to another target or failed; and its 401/403s (our key refused)."""

    provider: str
    minutes: int
    rate_limited: int = 0  # tries it answered 429
    fell_back: int = 0  # calls it answered 429 that another target then answered
    failed: int = 0  # calls it answered 429 that failed in the end
    key_refused: int = 0  # tries it answered 401 or 403
    key_statuses: tuple[int, ...] = ()
    latest_key_error: str | None = None
