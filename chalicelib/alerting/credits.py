"""Prepaid credits per account: top-ups as ledger transactions, usage from the aggregates, what remains."""
from __future__ import annotations

import uuid
from datetime import datetime
from decimal import Decimal
from typing import Any

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from chalicelib import aws, caller_names
from chalicelib.clock import day_of, iso
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import CreditEntry
from chalicelib.money import money, parse_amount
from chalicelib.reports import aggregates

BALANCE = "balance"


def top_up(account: str, body: Any, now: datetime) -> dict[str, Any]:
    """Add credit: the ledger entry and the new balance land together or not at all."""
    if not isinstance(body, dict) or "amount_usd" not in body:
        raise InvalidRequest("body must be {\"amount_usd\": \"100.00\", \"note\": \"…\"}")
    caller_names.check(account, "`account`")
    amount = parse_amount(body["amount_usd"], "amount_usd")
    note = body.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > 256):
        raise InvalidRequest("`note` must be a string of at most 256 characters")
    if note is not None:
        caller_names.check(note, "`note`")
    stamp = iso(now)
    try:
        since = CreditEntry.get(account, BALANCE).since
    except DoesNotExist:
        since = day_of(now)
    entry = CreditEntry(account, f"txn#{stamp}#{uuid.uuid4().hex[:8]}", amount_usd=amount, note=note, created_at=stamp)
    with TransactWrite(connection=aws.transactions()) as transaction:
        transaction.save(entry, condition=CreditEntry.entry.does_not_exist())
        transaction.update(CreditEntry(account, BALANCE), actions=[
            CreditEntry.amount_usd.add(amount), CreditEntry.since.set(CreditEntry.since | since),
            CreditEntry.created_at.set(CreditEntry.created_at | stamp)])
    return credit_view(account, now)


def used_since(account: str, since: str, now: datetime) -> Decimal:
    return aggregates.day_totals("account", account, since, day_of(now)).cost


def balances() -> list[CreditEntry]:
    return [e for e in CreditEntry.scan(CreditEntry.entry == BALANCE)]


def credit_view(account: str, now: datetime, balance: CreditEntry | None = None) -> dict[str, Any]:
    try:
        balance = balance or CreditEntry.get(account, BALANCE)
    except DoesNotExist:
        return {"account": account, "allocated_usd": "0", "used_usd": "0", "remaining_usd": "0", "since": None,
                "transactions": []}
    used = used_since(account, balance.since, now)
    transactions = [{"at": e.created_at, "amount_usd": money(e.amount_usd), "note": e.note}
                    for e in CreditEntry.query(account, CreditEntry.entry.startswith("txn#"))]
    return {"account": account, "allocated_usd": money(balance.amount_usd), "used_usd": money(used),
            "remaining_usd": money(balance.amount_usd - used), "since": balance.since, "transactions": transactions}


def credits_report(account: str | None, now: datetime) -> dict[str, Any]:
    if account:
        return {"credits": [credit_view(account, now)]}
    return {"credits": [credit_view(b.account, now, b) for b in balances()]}
