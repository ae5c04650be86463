"""Hard budgets and rate limits as DynamoDB conditional writes: hold a call's worst case at admission, settle its
actual cost in the same transaction as its call record, release the holds of calls that never logged.

Each hard budget's period is one `BudgetLedger` item whose `headroom` (limit − spent − held) a hold decrements
under `headroom >= worst case`, and each call's hold one `BudgetHold` item; a rate limit is one `RateWindow`
per minute. A rolling window has one ledger whose settled spend is also counted per minute (`WindowSpend`): once a
minute has left the window, `retire_window` gives it back to the headroom, exactly once. One call's holds and counts on every budget and limit that applies go in one TransactWriteItems,
all or nothing, so no interleaving of containers can admit past a limit. The gateway decides what to hold
(chalicelib/gateway/limits.py); this module only writes and reads.
"""
from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterator

from pynamodb.exceptions import DoesNotExist
from pynamodb.expressions.operand import Value
from pynamodb.transactions import TransactWrite

from chalicelib import aws, clock
from chalicelib.clock import iso, parse_iso, precise
from chalicelib.ledger.budgets import WINDOW_LEDGER
from chalicelib.ledger.models import BudgetHold, BudgetLedger, CallRecord, RateWindow, WindowSpend

CONFLICT_TRIES = 8  # another container's transaction on the same ledger item: try again, a little later
LEDGER_KEPT = timedelta(days=90)  # a period's ledger outlives the period, for the reports and reconciling
HOLD_KEPT = timedelta(days=7)  # an expired hold that never settles is forgotten (TTL) this long after expiring
RATE_KEPT = timedelta(minutes=10)
NEXT_STATE = {"held": "expired", "expired": None}  # what a hold may have become when its settlement's condition fails


@dataclass(frozen=True)
class Claim:
    """What one hard budget is asked to hold for one call."""

    budget_id: str
    unit: str  # usd | tokens
    limit: Decimal
    period_start: str  # UTC ISO-8601: the ledger's `day`
    period_end: str
    baseline: Decimal  # the period's spend measured before its ledger opened (0 when unknown)
    amount: Decimal  # the call's worst case, in the budget's unit


@dataclass(frozen=True)
class RateClaim:
    """What one rate limit is asked to count for one call: a request and its worst-case tokens in a minute."""

    scope: str  # key | account | team
    scope_id: str
    minute: str  # `2026-12-07T17:05`
    rpm: int | None
    tpm: int | None
    tokens: int


@dataclass(frozen=True)
class Hold:
    """A hold that was written: where it is, what it holds."""

    budget_id: str
    unit: str
    period: str
    key: str  # the hold item's `day`
    amount: Decimal


@dataclass(frozen=True)
class Reservation:
    holds: tuple[Hold, ...]
    refused: Claim | RateClaim | None = None  # the first limit that had no room (nothing was written)
    contended: bool = False  # refused because the ledger stayed busy with other transactions (try again at once)


def ledger_pk(budget_id: str) -> str:
    return f"hard#{budget_id}"


def hold_pk(budget_id: str) -> str:
    return f"hold#{budget_id}"


def rate_pk(scope: str, scope_id: str) -> str:
    return f"rate#{scope}#{scope_id}"


def reserve(claims: list[Claim], rates: list[RateClaim], call_id: str, expires: datetime,
            now: datetime) -> Reservation:
    """Hold every claim and count every rate claim in one transaction, or nothing and say which had no room."""
    for claim in claims:  # a worst case larger than the whole limit never fits: refused without a write
        if claim.amount > claim.limit:
            return Reservation((), claim)
    for rate in rates:
        if rate.tpm is not None and rate.tokens > rate.tpm or rate.rpm is not None and rate.rpm < 1:
            return Reservation((), rate)
    holds = tuple(Hold(c.budget_id, c.unit, c.period_start, f"{precise(expires)}#{call_id}", c.amount)
                  for c in claims)

    def write(transaction: _Transaction) -> None:
        for claim, hold in zip(claims, holds):
            _hold(transaction, claim, hold, call_id, expires, now)
        for rate in rates:
            _count(transaction, rate, now)

    reasons = _run(write)
    if reasons is None:
        return Reservation(holds)
    refused = next((limit for limit, reason in reasons.items() if reason == "condition"), None)
    if refused is not None:
        return Reservation((), refused)
    contended = next((limit for limit, reason in reasons.items() if reason == "conflict"), None)
    if contended is not None:
        return Reservation((), contended, contended=True)
    raise RuntimeError(f"hold not written: {reasons}")


def _hold(transaction: _Transaction, claim: Claim, hold: Hold, call_id: str, expires: datetime,
          now: datetime) -> None:
    initial = claim.limit - claim.baseline
    ledger = BudgetLedger(ledger_pk(claim.budget_id), claim.period_start)
    fits = BudgetLedger.headroom >= claim.amount
    # A new ledger opens with the limit less the spend measured so far; if the call does not fit that, it must
    # wait for a ledger with room (there is none yet: refused).
    condition = (BudgetLedger.headroom.does_not_exist() | fits) if initial >= claim.amount else fits
    transaction.update(claim, ledger, actions=[
        BudgetLedger.headroom.set((BudgetLedger.headroom | initial) - _exact(claim.amount)),
        BudgetLedger.held.set((BudgetLedger.held | Decimal(0)) + _exact(claim.amount)),
        BudgetLedger.spent.set(BudgetLedger.spent | claim.baseline),
        BudgetLedger.baseline.set(BudgetLedger.baseline | claim.baseline),
        BudgetLedger.limit.set(BudgetLedger.limit | claim.limit),
        BudgetLedger.budget_id.set(claim.budget_id), BudgetLedger.unit.set(claim.unit),
        BudgetLedger.period_end.set(claim.period_end),
        BudgetLedger.opened_at.set(BudgetLedger.opened_at | precise(now)),
        BudgetLedger.expires_at.set(_ttl(claim.period_end, LEDGER_KEPT)),
    ], condition=condition)
    transaction.save(claim, BudgetHold(hold_pk(claim.budget_id), hold.key, call_id=call_id, budget_id=claim.budget_id,
                                period=claim.period_start, amount=claim.amount, state="held",
                                expires_at=expires + HOLD_KEPT),
                     condition=BudgetHold.day.does_not_exist())


def _count(transaction: _Transaction, rate: RateClaim, now: datetime) -> None:
    condition = None
    if rate.rpm is not None:
        condition = RateWindow.requests.does_not_exist() | (RateWindow.requests < rate.rpm)
    if rate.tpm is not None:
        room = RateWindow.tokens.does_not_exist() | (RateWindow.tokens <= rate.tpm - rate.tokens)
        condition = room if condition is None else condition & room
    transaction.update(rate, RateWindow(rate_pk(rate.scope, rate.scope_id), rate.minute), actions=[
        RateWindow.requests.add(1), RateWindow.tokens.add(rate.tokens),
        RateWindow.expires_at.set(now + RATE_KEPT)], condition=condition)


def write_settled(record: CallRecord, holds: tuple[Hold, ...]) -> bool:
    """Write the call record and settle its holds in one transaction: each hold's worst case is released and the
    call's actual cost (or tokens) becomes the ledger's spend. The record's put is conditional on it not being
    logged and each hold's delete on its state, so a retry or a replay (chalicelib/ledger/calllog.py: a spilled
    record carries its holds) never settles twice; a hold the evaluator has already released (the call outlived
    it) settles its spend without releasing twice.

    True if written now, False if it was logged (and settled) before; a failure other than a condition or a
    conflict is raised (the caller spills the record with its holds).
    """
    actual = {"usd": record.cost_usd or Decimal(0), "tokens": Decimal(settled_tokens(record))}
    states = {hold.key + hold.budget_id: "held" for hold in holds}
    for attempt in range(CONFLICT_TRIES):
        live = [h for h in holds if states[h.key + h.budget_id] is not None]

        def write(transaction: _Transaction) -> None:
            transaction.save("record", record, condition=CallRecord.call_id.does_not_exist())
            for hold in live:
                _settle(transaction, hold, states[hold.key + hold.budget_id], actual[hold.unit])

        reasons = _run(write, tries=1)
        if reasons is None:
            return True
        if reasons.get("record") == "condition":  # already logged, and settled with it
            return False
        for hold in live:
            if reasons.get(hold) == "condition":  # released meanwhile (then expired), or gone (then nothing to do)
                states[hold.key + hold.budget_id] = NEXT_STATE[states[hold.key + hold.budget_id]]
        if "conflict" in reasons.values():
            _pause(attempt)
        elif "condition" not in reasons.values():
            raise RuntimeError(f"call record and settlement not written: {reasons}")
    raise RuntimeError("call record and settlement not written: the ledger stayed contended")


def settled_tokens(record: CallRecord) -> int:
    """What a call counts on a token budget: every token it used, in and out."""
    return (record.input_tokens + record.cache_read_tokens + record.cache_write_tokens + record.output_tokens
            + record.reasoning_tokens)


def holds_payload(holds: tuple[Hold, ...]) -> list[dict[str, str]]:
    """Holds as JSON, for a spilled record to carry to its replay."""
    return [{"budget_id": h.budget_id, "unit": h.unit, "period": h.period, "key": h.key, "amount": str(h.amount)}
            for h in holds]


def holds_of_payload(payload: list[dict[str, str]]) -> tuple[Hold, ...]:
    return tuple(Hold(h["budget_id"], h["unit"], h["period"], h["key"], Decimal(h["amount"])) for h in payload)


def _settle(transaction: _Transaction, hold: Hold, state: str, actual: Decimal) -> None:
    ledger = BudgetLedger(ledger_pk(hold.budget_id), hold.period)
    if state == "held":
        actions = [BudgetLedger.headroom.set(BudgetLedger.headroom + (hold.amount - actual)),
                   BudgetLedger.held.set(BudgetLedger.held - hold.amount)]
    else:  # expired: its worst case went back already, only the spend is left to count
        actions = [BudgetLedger.headroom.set(BudgetLedger.headroom - actual)]
    transaction.update(("ledger", hold), ledger, actions=[*actions, BudgetLedger.spent.set(BudgetLedger.spent + actual),
                                        BudgetLedger.calls.add(1)], condition=BudgetLedger.headroom.exists())
    if hold.period == WINDOW_LEDGER and actual:  # its spend leaves the window with the minute it settled in
        minute = clock.now().replace(second=0, microsecond=0)
        transaction.update(("minute", hold), WindowSpend(ledger_pk(hold.budget_id), _minute_key(minute)), actions=[
            WindowSpend.spent.add(actual), WindowSpend.expires_at.set(minute + HOLD_KEPT)])
    transaction.delete(hold, BudgetHold(hold_pk(hold.budget_id), hold.key), condition=BudgetHold.state == state)


def set_limit(budget_id: str, period_start: str, limit: Decimal) -> None:
    """A hard budget's limit changed: its current ledger's headroom moves by the difference, once (conditional
    on the limit it was read with, so two admins' changes both land)."""
    for _ in range(CONFLICT_TRIES):
        ledger = ledger_of(budget_id, period_start)
        if ledger is None or ledger.limit == limit:
            return
        if aws.conditional(lambda: ledger.update(actions=[
                BudgetLedger.headroom.set(BudgetLedger.headroom + (limit - ledger.limit)),
                BudgetLedger.limit.set(limit)], condition=BudgetLedger.limit == ledger.limit)):
            return


def release_expired(budget_id: str, now: datetime) -> int:
    """Release the holds on a budget whose calls never logged by their expiry (the function died): each worst
    case goes back to the headroom once, the hold stays `expired` in case the call logs late. Returns how many."""
    released = 0
    for hold in expired_holds(budget_id, now):
        def write(transaction: _Transaction, hold: BudgetHold = hold) -> None:
            transaction.update("hold", hold, actions=[BudgetHold.state.set("expired")],
                               condition=BudgetHold.state == "held")
            transaction.update("ledger", BudgetLedger(ledger_pk(budget_id), hold.period), actions=[
                BudgetLedger.headroom.set(BudgetLedger.headroom + hold.amount),
                BudgetLedger.held.set(BudgetLedger.held - hold.amount)], condition=BudgetLedger.headroom.exists())

        if _run(write) is None:
            released += 1
    return released


def retire_window(budget_id: str, window_minutes: int, now: datetime) -> int:
    """Give back to a window ledger's headroom the spend of every minute that has left the window (each once: the
    minute's item is deleted on the amount it was read with), and the spend measured before the ledger opened once
    a window has passed since. Late (the evaluator runs each minute) is only stricter. Returns how many."""
    window = timedelta(minutes=window_minutes)
    last_gone = _minute_key((now - window - timedelta(minutes=1)).replace(second=0, microsecond=0))
    retired = 0
    for minute in WindowSpend.query(ledger_pk(budget_id), WindowSpend.day.between(_minute_key(None), last_gone),
                                    consistent_read=True):
        def write(transaction: _Transaction, minute: WindowSpend = minute) -> None:
            transaction.delete("minute", minute, condition=WindowSpend.spent == minute.spent)
            _give_back(transaction, budget_id, minute.spent)

        retired += _run(write) is None
    ledger = ledger_of(budget_id, WINDOW_LEDGER)
    if ledger is not None and ledger.baseline and parse_iso(ledger.opened_at) + window + timedelta(minutes=1) <= now:
        retired += aws.conditional(lambda: ledger.update(actions=[*_given_back(ledger.baseline),
                                                                  BudgetLedger.baseline.set(Decimal(0))],
                                                         condition=BudgetLedger.baseline == ledger.baseline))
    return retired


def _give_back(transaction: _Transaction, budget_id: str, amount: Decimal) -> None:
    transaction.update("ledger", BudgetLedger(ledger_pk(budget_id), WINDOW_LEDGER), actions=_given_back(amount),
                       condition=BudgetLedger.headroom.exists())


def _given_back(amount: Decimal) -> list:
    """Spend that has left a window: off the ledger's spend, back on its headroom."""
    return [BudgetLedger.headroom.set(BudgetLedger.headroom + amount), BudgetLedger.spent.set(BudgetLedger.spent - amount)]


def _minute_key(minute: datetime | None) -> str:
    """A window ledger's minute item's `day` (`window|2026-12-07T17:05`); None: the first of them all."""
    return f"{WINDOW_LEDGER}|" + (minute.strftime("%Y-%m-%dT%H:%M") if minute else "")


def expired_holds(budget_id: str, now: datetime) -> Iterator[BudgetHold]:
    return BudgetHold.query(hold_pk(budget_id), BudgetHold.day < precise(now), consistent_read=True,
                            filter_condition=BudgetHold.state == "held")


def holds_of(budget_id: str) -> list[BudgetHold]:
    """Every hold on a budget still standing or expired-unsettled (for tests and the operator)."""
    return list(BudgetHold.query(hold_pk(budget_id), consistent_read=True))


def ledger_of(budget_id: str, period_start: datetime | str) -> BudgetLedger | None:
    start = period_start if isinstance(period_start, str) else iso(period_start)
    try:
        return BudgetLedger.get(ledger_pk(budget_id), start, consistent_read=True)
    except DoesNotExist:
        return None


def rate_window(scope: str, scope_id: str, minute: str) -> RateWindow | None:
    try:
        return RateWindow.get(rate_pk(scope, scope_id), minute, consistent_read=True)
    except DoesNotExist:
        return None


class _Transaction:
    """A TransactWrite whose items carry tags, so a cancellation says which write stopped it (pynamodb sends
    condition checks, deletes, puts and updates in that order, not in the order they were added)."""

    ORDER = ("delete", "save", "update")

    def __init__(self) -> None:
        self.items: list[tuple[str, Any, tuple, dict]] = []

    def save(self, tag: Any, *args: Any, **kwargs: Any) -> None:
        self.items.append(("save", tag, args, kwargs))

    def update(self, tag: Any, *args: Any, **kwargs: Any) -> None:
        self.items.append(("update", tag, args, kwargs))

    def delete(self, tag: Any, *args: Any, **kwargs: Any) -> None:
        self.items.append(("delete", tag, args, kwargs))

    def commit(self) -> dict[Any, str] | None:
        def write() -> None:
            with TransactWrite(connection=aws.transactions()) as transaction:
                for kind, _, args, kwargs in self.items:
                    getattr(transaction, kind)(*args, **kwargs)

        reasons = aws.transact(write)
        if reasons is None:
            return None
        tags = [tag for _, tag, _, _ in sorted(self.items, key=lambda item: self.ORDER.index(item[0]))]
        return {tag: reason for tag, reason in zip(tags, reasons) if reason}


def _run(write: Any, tries: int = CONFLICT_TRIES) -> dict[Any, str] | None:
    """One transaction, tried again while it only conflicts with another; None when applied, else why each
    tagged write stopped it."""
    for attempt in range(tries):
        transaction = _Transaction()
        write(transaction)
        reasons = transaction.commit()
        if reasons is None or "conflict" not in reasons.values() or "condition" in reasons.values():
            return reasons
        if attempt + 1 < tries:
            _pause(attempt)
    return reasons


def _pause(attempt: int) -> None:
    time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))  # jittered: contenders do not collide again


def _exact(amount: Decimal) -> Value:
    """An exact Number operand where pynamodb cannot tell the attribute (arithmetic on `if_not_exists`)."""
    return Value(amount, attribute=BudgetLedger.headroom)


def _ttl(stamp: str, kept: timedelta) -> datetime:
    return parse_iso(stamp) + kept
