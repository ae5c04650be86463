"""Time, owned in one place: UTC always, and the few text forms Tollgate stores and answers with.

Every datetime in Tollgate is aware, in UTC: `now()` is the one read of the current time, the parse functions
return aware values and every construction names `timezone.utc`. A budget's own time zone is reached with
`astimezone` and left the same way. Nothing attaches or strips a zone with `.replace(tzinfo=...)` but this
module; the formatters write UTC and refuse a naive datetime.
"""
from __future__ import annotations

from datetime import date, datetime, time, timezone
from typing import Any

from chalicelib.errors import InvalidRequest

DAY = "%Y-%m-%d"
SECONDS = "%Y-%m-%dT%H:%M:%SZ"  # what the API and the alert, budget and delivery records show
PRECISE = "%Y-%m-%dT%H:%M:%S.%fZ"  # call records and measurement stamps: microseconds, sortable as text
EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def now() -> datetime:
    """Now, aware UTC: the one read of the wall clock (durations use `time.monotonic()`)."""
    return datetime.now(timezone.utc)


def utc_today() -> date:
    return now().date()


def _aware(ts: datetime) -> datetime:
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise ValueError(f"naive datetime {ts!r}: Tollgate's datetimes are aware UTC")
    return ts


def _utc(ts: datetime) -> datetime:
    return _aware(ts).astimezone(timezone.utc)


def iso(ts: datetime) -> str:
    """To the second, `Z`-suffixed."""
    return _utc(ts).strftime(SECONDS)


def precise(ts: datetime) -> str:
    """To the microsecond, `Z`-suffixed; two stamps compare as text as they do as times."""
    return _utc(ts).strftime(PRECISE)


def day_of(ts: datetime | date) -> str:
    """The day a date or an aware datetime falls on, in the datetime's own zone (UTC throughout Tollgate)."""
    return (_aware(ts) if isinstance(ts, datetime) else ts).strftime(DAY)


def midnight(day: date | str) -> datetime:
    """The start of a UTC day (a `date` or `YYYY-MM-DD`), aware."""
    return datetime.combine(day if isinstance(day, date) else datetime.strptime(day, DAY).date(), time(),
                            timezone.utc)


def parse_iso(text: str | None) -> datetime | None:
    """An aware UTC datetime from `iso()`'s form; None for None."""
    return datetime.strptime(text, SECONDS).replace(tzinfo=timezone.utc) if text else None


def parse_precise(text: str) -> datetime:
    """An aware UTC datetime from `precise()`'s form."""
    return datetime.strptime(text, PRECISE).replace(tzinfo=timezone.utc)


def parse_day(value: Any, name: str) -> date:
    """A caller's `YYYY-MM-DD`, or a 400 that names the field."""
    try:
        return datetime.strptime(str(value), DAY).date()
    except ValueError:
        raise InvalidRequest(f"`{name}` must be a date like 2026-01-31") from None
