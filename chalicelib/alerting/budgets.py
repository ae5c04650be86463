"""Budget math: validate a budget, find its current period, judge its spend (read by reports/aggregates.py), forecast.

Pure: no AWS. Times are aware UTC datetimes; a budget may name an IANA timezone, whose midnight (and
Monday, and first of the month) then bounds its periods.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib import caller_names
from chalicelib.caller_names import GLOBAL_ID
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import DEFAULT_THRESHOLDS, BudgetSpec
from chalicelib.money import parse_amount, sums_exactly
from chalicelib.reports import has_time_buckets

SCOPES = ("global", "account", "team", "key", "user", "provider", "model")
PERIODS = ("daily", "weekly", "monthly", "window")
CHANNELS = ("slack", "sns", "webhook")
ID_MAX = 128
TOKENS_MAX = 10 ** 15


def parse_budget(budget_id: str, body: Any) -> BudgetSpec:
    """A budget from the admin API's JSON, or a 400 that names the field at fault."""
    if not budget_id or len(budget_id) > ID_MAX or not all(c.isalnum() or c in "-_." for c in budget_id):
        raise InvalidRequest("budget_id may hold letters, digits, '-', '_' and '.' (at most 128)")
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    scope, period, mode = body.get("scope"), body.get("period"), body.get("mode", "soft")
    if scope not in SCOPES:
        raise InvalidRequest(f"`scope` must be one of {', '.join(SCOPES)}")
    scope_id = GLOBAL_ID if scope == "global" else body.get("scope_id")
    if not isinstance(scope_id, str) or not scope_id:
        raise InvalidRequest("`scope_id` is required for this scope")
    caller_names.check(scope_id, "`scope_id`")
    account = body.get("account")
    if scope != "user" and account is not None:
        raise InvalidRequest("`account` names a user budget's account: give it with scope user only")
    if scope == "user" and (not isinstance(account, str) or not account):
        raise InvalidRequest("`account` is required for a user budget: the account whose user `scope_id` is "
                             "(user names are the callers' own, so each account has its own)")
    if account is not None:
        caller_names.check(account, "`account`")
    if period not in PERIODS:
        raise InvalidRequest(f"`period` must be one of {', '.join(PERIODS)}")
    window = body.get("window_minutes")
    if period == "window":
        if not _is_integer(window) or not 5 <= window <= 10080:
            raise InvalidRequest("`window_minutes` must be an integer from 5 to 10080 for a window budget")
    if ("limit_usd" in body) == ("limit_tokens" in body):
        raise InvalidRequest("give exactly one of `limit_usd` and `limit_tokens`")
    limit_usd = parse_amount(body["limit_usd"], "limit_usd") if "limit_usd" in body else None
    limit_tokens = None
    if "limit_tokens" in body:
        if not _is_integer(body["limit_tokens"]) or not 0 < body["limit_tokens"] < TOKENS_MAX:
            raise InvalidRequest(f"`limit_tokens` must be a positive integer below {TOKENS_MAX:,}")
        limit_tokens = body["limit_tokens"]
    raw_thresholds = body.get("thresholds", list(DEFAULT_THRESHOLDS))
    if not isinstance(raw_thresholds, list) or not raw_thresholds or len(raw_thresholds) > 10:
        raise InvalidRequest("`thresholds` must be a list of 1 to 10 fractions such as [0.5, 0.8, 1.0]")
    thresholds = tuple(sorted({parse_amount(t, "thresholds") for t in raw_thresholds}))
    if thresholds[-1] > 10:
        raise InvalidRequest("`thresholds` are fractions of the limit (1.0 = 100 %)")
    if mode not in ("soft", "hard"):
        raise InvalidRequest("`mode` must be soft or hard")
    channels = body.get("channels", [])
    if not isinstance(channels, list) or any(c not in CHANNELS for c in channels):
        raise InvalidRequest(f"`channels` must be a list drawn from {', '.join(CHANNELS)}")
    zone = body.get("timezone", "UTC")
    try:
        ZoneInfo(zone)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise InvalidRequest("`timezone` must be an IANA name such as Europe/Berlin") from None
    if not has_time_buckets(scope) and (period == "window" or zone != "UTC"):
        raise InvalidRequest(f"a {scope}'s spend is kept by the UTC day: a {scope} budget is daily, weekly or "
                             "monthly in UTC")
    return BudgetSpec(budget_id, scope, scope_id, period, limit_usd, limit_tokens, thresholds, mode,
                      tuple(dict.fromkeys(channels)), zone, window, account)


def _is_integer(value: Any) -> bool:
    """A JSON integer: not `true` or `false`, which Python counts as 1 and 0."""
    return isinstance(value, int) and not isinstance(value, bool)


def forecast(spent: Decimal, start: datetime, end: datetime, now: datetime) -> Decimal:
    """Spend at the period's end if it goes on at the rate so far (a window's forecast is its spend)."""
    elapsed = (min(now, end) - start).total_seconds()
    length = (end - start).total_seconds()
    if elapsed <= 0 or now >= end:
        return spent
    return (spent * Decimal(length) / Decimal(elapsed)).quantize(Decimal("0.000001"))


@dataclass(frozen=True)
class BudgetStatus:
    spent: Decimal
    percent: Decimal
    state: str  # ok | warning | exceeded
    crossed: tuple[Decimal, ...]
    forecast: Decimal
    start: datetime
    end: datetime
    calls: int = 0  # calls in the period so far

    def elapsed_share(self, now: datetime) -> float:
        """How much of the period is gone at `now`, from 0 to 1."""
        length = (self.end - self.start).total_seconds()
        return min(1.0, max(0.0, (now - self.start).total_seconds() / length)) if length > 0 else 1.0

    def forecast_ready(self, now: datetime, min_elapsed: float, min_calls: int) -> bool:
        """Whether the forecast rests on enough: a share of the period gone and a number of calls seen.
        A window budget has no forecast (its spend is its forecast)."""
        return self.elapsed_share(now) >= min_elapsed and self.calls >= min_calls and now < self.end


@sums_exactly
def status(spec: BudgetSpec, cost: Decimal, tokens: int, start: datetime, end: datetime,
           now: datetime, calls: int = 0) -> BudgetStatus:
    spent = cost if spec.unit == "usd" else Decimal(tokens)
    fraction = spent / spec.limit
    crossed = tuple(t for t in spec.thresholds if fraction >= t)
    state = "exceeded" if fraction >= 1 else "warning" if crossed else "ok"
    return BudgetStatus(spent, (fraction * 100).quantize(Decimal("0.01")), state, crossed,
                        forecast(spent, start, end, now), start, end, calls)
