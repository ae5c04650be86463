"""Hard limits at the proxy: hard budgets and rate limits reserved exactly, soft budgets read from a cache.

Every hard budget (daily, weekly, monthly or a rolling window) and the requests and tokens per minute of a key, an
account or a team hold at any concurrency: `reserve` holds the call's worst case (chalicelib/gateway/worst_case.py)
on every one that applies, in one conditional DynamoDB transaction before anything goes upstream
(chalicelib/ledger/reservations.py), and `write_call` settles the holds in the same transaction as the call record.
A call that no hard budget or rate limit covers makes no AWS request here.

Budgets and the accounts' and teams' rate limits are cached for a few seconds, so finding those that apply costs
no read per call. `check` only works out what a soft budget has left, for the remaining-budget header: its last
measured spend plus what this container has itself served since.
"""
from __future__ import annotations

import threading
from collections import defaultdict, deque
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from datetime import timedelta
from typing import Any

from chalicelib.clock import iso, parse_iso, precise
from chalicelib.errors import BudgetExceeded, RateLimited
from chalicelib.gateway import worst_case
from chalicelib.ledger import Principal
from chalicelib.ledger import budget_cache, calllog, ledger_period, period_bounds, rate_limits, reservations
from chalicelib.ledger import spec_of
from chalicelib.ledger import Budget, CallRecord
from chalicelib.money import money

HOLD_GRACE = timedelta(seconds=60)  # a hold outlives its call's deadline by this: the record is written after it


class ServedLedger:
    """What this container has served per budget, kept until a measurement of the budget covers it.

    A call logged just before a measurement but not yet folded by the stream (about a second) is in
    neither: the rollup measures again right after folding it, so that gap lasts about a second.
    """

    def __init__(self) -> None:
        self._entries: dict[str, deque] = defaultdict(deque)  # budget_id → (logged at, cost, tokens)
        self._lock = threading.Lock()

    def add(self, budget_id: str, logged_at: str, cost_usd: Decimal, tokens: int) -> None:
        with self._lock:
            self._entries[budget_id].append((logged_at, cost_usd, tokens))

    def since(self, budget_id: str, measured_at: str | None) -> tuple[Decimal, int]:
        """Cost and tokens served at or after `measured_at` (everything when never measured); older ones go."""
        with self._lock:
            entries = self._entries.get(budget_id)
            if not entries:
                return Decimal(0), 0
            while measured_at and entries and entries[0][0] < measured_at:
                entries.popleft()
            return sum((e[1] for e in entries), Decimal(0)), sum(e[2] for e in entries)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


served = ServedLedger()


@dataclass(frozen=True)
class LimitCheck:
    remaining_usd: Decimal | None  # the least left among the USD budgets that apply
    holds: tuple[reservations.Hold, ...] = ()  # what the call holds on hard budgets until it is logged


def held(item: Budget) -> bool:
    """Is this budget kept exactly, by holds on its ledger? Every hard one."""
    return item.mode == "hard"


def check(principal: Principal, provider: str, model: str | None, now: datetime, user: str | None = None) -> LimitCheck:
    """What is left to spend on the USD budgets that apply (the least of them), as last measured plus what this
    container served since; a hard budget refuses in `reserve`, never here."""
    remaining: list[Decimal] = []
    stamp = iso(now)
    for item in budget_cache.budgets():
        spec = spec_of(item)
        if not spec.applies_to(principal.account, principal.team, principal.key_id, provider, model, user):
            continue
        if item.limit_usd is not None:
            remaining.append(item.limit_usd - _spent_so_far(item, stamp)[0])
    return LimitCheck(min(remaining) if remaining else None)


def note_served(principal: Principal, provider: str, model: str | None, cost_usd: Decimal | None, tokens: int,
                logged_at: datetime, user: str | None = None) -> None:
    """Count a call this container just logged against the budgets it applies to, before the rollup does."""
    if not cost_usd and not tokens:
        return
    stamp = precise(logged_at)
    for item in budget_cache.budgets():
        if spec_of(item).applies_to(principal.account, principal.team, principal.key_id, provider, model, user):
            served.add(item.budget_id, stamp, cost_usd or Decimal(0), tokens)


def _open(item: Budget, stamp: str) -> bool:
    """Is the period the budget was last measured in still running?"""
    return bool(item.period_end and item.period_end > stamp)


def _spent_so_far(item: Budget, stamp: str) -> tuple[Decimal, int]:
    """The last measured spend of the current period plus what this container served since."""
    if _open(item, stamp):
        measured_at = item.evaluated_at
        base_usd, base_tokens = item.spent_usd or Decimal(0), item.spent_tokens or 0
    else:  # never measured (count from its creation), or measured in a period that has ended
        measured_at, base_usd, base_tokens = item.period_end or item.created_at, Decimal(0), 0
    cost, tokens = served.since(item.budget_id, _precise(measured_at))
    return base_usd + cost, base_tokens + tokens


def _precise(stamp: str | None) -> str | None:
    """Second-precision stamps (`…:05Z`) as microsecond ones (`…:05.000000Z`), so the two sort together."""
    return stamp[:-1] + ".000000Z" if stamp and len(stamp) == 20 else stamp


def remaining_header(check_result: LimitCheck, cost_usd: Decimal | None) -> dict[str, str]:
    if check_result.remaining_usd is None:
        return {}
    left = check_result.remaining_usd - (cost_usd or 0)
    return {"X-Tollgate-Budget-Remaining-USD": money(max(left, Decimal(0)))}


def reserve(call: Any, body_bytes: bytes, body: dict[str, Any] | None) -> LimitCheck:
    """Hold the call's worst case on every hard budget that applies and count it against the rate limits of its key,
    account and team, all in one transaction; raise BudgetExceeded or RateLimited (nothing held) if one has no room.

    `call` is the proxy's Call. No hard budget and no rate limit: no work at all, and no AWS request.
    """
    principal, provider, model, user, now = call.principal, call.provider, call.model, call.attribution.user, call.now
    budgets = [item for item in budget_cache.budgets() if held(item)
               and spec_of(item).applies_to(principal.account, principal.team, principal.key_id, provider, model, user)]
    rates = rate_limits.applying(principal.account, principal.team)
    if principal.rpm or principal.tpm:
        rates.append(rate_limits.RateLimit("key", principal.key_id, principal.rpm, principal.tpm))
    if not budgets and not rates:
        return call.limit
    output_known = worst_case.output_cap(body or {}) is not None
    worst = worst_case.estimate(call.endpoint.path, body_bytes, body,
                                None if output_known else worst_case.context_window(provider, model))
    worst_usd = None
    if any(item.limit_usd is not None for item in budgets):
        worst_usd = worst_case.cost(provider, model, worst, now, (body or {}).get("service_tier")) or Decimal(0)
    claims = [_claim(item, worst, worst_usd, now) for item in budgets]
    minute = now.strftime("%Y-%m-%dT%H:%M")
    rate_claims = [reservations.RateClaim(rate.scope, rate.scope_id, minute, rate.rpm, rate.tpm, worst.tokens)
                   for rate in rates]
    expires = now + timedelta(seconds=min(call.deadline - call.started, 86_400)) + HOLD_GRACE
    done = reservations.reserve(claims, rate_claims, call.call_id, expires, now)
    if isinstance(done.refused, reservations.RateClaim):
        raise _rate_limited(done.refused, now)
    if done.refused is not None:
        item = next(b for b in budgets if b.budget_id == done.refused.budget_id)
        raise _no_room(item, done.refused, now, done.contended)
    return LimitCheck(call.limit.remaining_usd if call.limit else None, done.holds)


def _claim(item: Budget, worst: worst_case.WorstCase, worst_usd: Decimal | None, now: datetime) -> reservations.Claim:
    spec = spec_of(item)
    ledger_day, ledger_end = ledger_period(spec, now)
    spent = item.spent_usd if spec.unit == "usd" else item.spent_tokens
    if spec.period == "window":  # measured over a window that ended less than a window ago: still (partly) in it
        measured = bool(item.period_end) and parse_iso(item.period_end) > now - timedelta(minutes=spec.window_minutes)
    else:
        measured = item.period_start == iso(period_bounds(spec, now)[0])
    amount = worst_usd if spec.unit == "usd" else Decimal(worst.tokens)
    return reservations.Claim(item.budget_id, spec.unit, spec.limit, ledger_day, ledger_end,
                              Decimal(measured and spent or 0), amount)


def _no_room(item: Budget, claim: reservations.Claim, now: datetime, contended: bool) -> BudgetExceeded:
    unit = "USD" if claim.unit == "usd" else "tokens"
    amount = money(claim.amount) if claim.unit == "usd" else str(int(claim.amount))
    headers = {"X-Tollgate-Budget-Id": item.budget_id,
               f"X-Tollgate-Worst-Case-{'USD' if claim.unit == 'usd' else 'Tokens'}": amount}
    if item.period != "window":
        headers["X-Tollgate-Budget-Period-End"] = claim.period_end
    if contended:
        headers["Retry-After"] = "1"
        return BudgetExceeded(f"budget {item.budget_id!r} is busy with other calls' holds: try again", headers=headers)
    if item.period == "window":  # room comes back as the window's oldest minutes leave it
        headers["Retry-After"], until = "60", f"in its {int(item.window_minutes)}-minute window"
    else:
        headers["Retry-After"] = str(max(1, int((parse_iso(claim.period_end) - now).total_seconds())))
        until = f"until {claim.period_end}"
    return BudgetExceeded(
        f"budget {item.budget_id!r} ({item.scope} {item.scope_id}, {item.period}) has no room for this call: its "
        f"worst case is {amount} {unit} (input bytes plus max_tokens, at the model's prices), and the spend plus "
        f"the calls in flight leave less {until}; a lower max_tokens may fit", headers=headers)


def _rate_limited(rate: reservations.RateClaim, now: datetime) -> RateLimited:
    """429 with the headers the OpenAI SDK reads: Retry-After (seconds to the next minute) and x-ratelimit-*."""
    reset = max(1, 60 - now.second)
    headers = {"Retry-After": str(reset), "retry-after-ms": str(reset * 1000 - now.microsecond // 1000)}
    what = []
    if rate.rpm is not None:
        headers |= {"x-ratelimit-limit-requests": str(rate.rpm), "x-ratelimit-reset-requests": f"{reset}s"}
        what.append(f"{rate.rpm} requests")
    if rate.tpm is not None:
        headers |= {"x-ratelimit-limit-tokens": str(rate.tpm), "x-ratelimit-reset-tokens": f"{reset}s"}
        what.append(f"{rate.tpm} tokens")
    if rate.rpm is not None:  # refused: nothing more fits this minute (no read to say more)
        headers["x-ratelimit-remaining-requests"] = "0"
    if rate.tpm is not None:
        headers["x-ratelimit-remaining-tokens"] = "0"
    return RateLimited(f"rate limit of {rate.scope} {rate.scope_id!r} reached: {' and '.join(what)} per minute "
                       f"(this call counts {rate.tokens} tokens: input bytes plus its output cap); retry in "
                       f"{reset}s", headers=headers)


def write_call(record: CallRecord, check_result: LimitCheck | None) -> str:
    """Write the call record; with holds, in the same transaction that settles them (written once, settled once).
    If that transaction fails, the record spills with its holds, and its replay settles them the same way."""
    if check_result is None or not check_result.holds:
        return calllog.write(record)
    try:
        reservations.write_settled(record, check_result.holds)
        return "written"
    except Exception as exc:  # the record must not be lost: it spills, and carries its holds to the replay
        from chalicelib.observability import logger

        logger.warning("call record and settlement not written; spilling both",
                       extra={"call_id": record.call_id, "error": f"{type(exc).__name__}: {exc}"})
        return calllog.spill(record, check_result.holds)
