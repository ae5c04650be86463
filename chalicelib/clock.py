"""Time, owned in one place: UTC always, and the few text forms Tollgate stores and answers with.

Most code works in naive UTC datetimes (aggregates, budgets, alerts); the call log keeps aware ones.
Every formatter accepts either and writes UTC.
"""
from __future__ import annotations

from datetime import date, datetime, timezone
from typing import Any

from chalicelib.errors import InvalidRequest

DAY = "%Y-%m-%d"
SECONDS = "%Y-%m-%dT%H:%M:%SZ"  # what the API and the alert, budget and delivery records show
PRECISE = "%Y-%m-%dT%H:%M:%S.%fZ"  # call records and measurement stamps: microseconds, sortable as text


def utc_now() -> datetime:
    """Now, naive UTC: the form aggregates, budgets and alerts compute in."""
    return datetime.now(timezone.utc).replace(tzinfo=None)


def utc_today() -> date:
    return datetime.now(timezone.utc).date()


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(timezone.utc) if ts.tzinfo else ts


def iso(ts: datetime) -> str:
    """To the second, `Z`-suffixed."""
    return _utc(ts).strftime(SECONDS)


def precise(ts: datetime) -> str:
    """To the microsecond, `Z`-suffixed; two stamps compare as text as they do as times."""
    return _utc(ts).strftime(PRECISE)


def day_of(ts: datetime | date) -> str:
    return ts.strftime(DAY)


def parse_iso(text: str | None) -> datetime | None:
    """A naive UTC datetime from `iso()`'s form; None for None."""
    return datetime.strptime(text, SECONDS) if text else None


def parse_precise(text: str) -> datetime:
    """An aware datetime from `precise()`'s form."""
    return datetime.strptime(text, PRECISE).replace(tzinfo=timezone.utc)


def parse_day(value: Any, name: str) -> date:
    """A caller's `YYYY-MM-DD`, or a 400 that names the field."""
    try:
        return datetime.strptime(str(value), DAY).date()
    except ValueError:
        raise InvalidRequest(f"`{name}` must be a date like 2026-01-31") from None
