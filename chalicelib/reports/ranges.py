"""The time range a report covers, from the caller's parameters (CONTRACT §4). Pure.

One of: `hours=N` or `days=N` (back from now), `start=YYYY-MM-DD&end=YYYY-MM-DD` (whole UTC days, both
included) or `month=YYYY-MM`. Days back from now are whole UTC days, today included, as a daily report
shows them. A range may reach into the future (a month not over yet); it then ends now for measuring and
at its last day for labelling.
"""
from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from typing import Any

from chalicelib.clock import day_of, iso, midnight
from chalicelib.errors import InvalidRequest
from chalicelib.query import Query

MAX_DAYS = 366
FORMS = ("hours", "days", "start", "end", "month")
DAY_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")  # ASCII digits: \d takes any script's
MONTH_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}")
# Days a range may name: a period's arithmetic (a day, a week, a month on) stays inside what datetime holds
FIRST_YEAR, LAST_YEAR = 1970, 9998


@dataclass(frozen=True)
class Range:
    """[start, end] in UTC (`end` at most now), and how the caller named it."""

    start: datetime
    end: datetime
    last_day: str  # the range's last UTC day as named (a month not over yet ends on its last day)
    named: dict[str, Any]

    @property
    def first_day(self) -> str:
        return day_of(self.start)

    @property
    def whole_days(self) -> bool:
        return "hours" not in self.named

    @property
    def days(self) -> list[str]:
        """Every UTC day the range names, oldest first."""
        first = date.fromisoformat(self.first_day)
        count = (date.fromisoformat(self.last_day) - first).days + 1
        return [(first + timedelta(days=n)).isoformat() for n in range(count)]

    def view(self) -> dict[str, Any]:
        return self.named | {"from": iso(self.start), "to": iso(self.end)}


def parse(params: Query, now: datetime, default: tuple[str, int] = ("hours", 24),
          max_hours: int = 24 * MAX_DAYS, max_days: int = MAX_DAYS) -> Range:
    """The range the parameters name, or `default` ("hours"/"days", N) when they name none."""
    given = [form for form in FORMS if params.get(form) not in (None, "")]
    calendar_forms = {"start", "end"} & set(given)
    if len(set(given) - {"end"}) > 1 or ("end" in given and "start" not in given):
        raise InvalidRequest("name one time range: `hours`, `days`, `start`+`end` or `month`")
    if calendar_forms:
        return _days_between(_day(params, "start"), _day(params, "end") if "end" in given else None, now, max_days)
    if "month" in given:
        return _month(params["month"], now)
    form, value = (given[0], None) if given else default
    if form == "hours":
        hours = params.integer("hours", value or 24, 1, max_hours)
        return Range(now - timedelta(hours=hours) + timedelta(microseconds=1), now, day_of(now), {"hours": hours})
    days = params.integer("days", value or 30, 1, max_days)
    first = midnight((now - timedelta(days=days - 1)).date())
    return Range(first, now, day_of(now), {"days": days})


def _day(params: Query, name: str) -> date:
    raw = params[name]
    try:
        if not DAY_FORMAT.fullmatch(raw):
            raise ValueError
        return in_years(date.fromisoformat(raw), name)
    except ValueError:
        raise InvalidRequest(f"`{name}` must be a UTC day, YYYY-MM-DD") from None


def in_years(day: date, name: str) -> date:
    """The day, or a 400 naming the field when it lies outside the years a range may name."""
    if not FIRST_YEAR <= day.year <= LAST_YEAR:
        raise InvalidRequest(f"`{name}` must lie in the years {FIRST_YEAR} to {LAST_YEAR}")
    return day


def _days_between(first: date, last: date | None, now: datetime, max_days: int) -> Range:
    last = last or now.date()
    if last < first:
        raise InvalidRequest("`end` is before `start`")
    if (last - first).days + 1 > max_days:
        raise InvalidRequest(f"at most {max_days} days at a time")
    start = midnight(first)
    end = min(datetime.combine(last, time.max, timezone.utc), now)
    if end < start:  # wholly in the future: an empty range that still names its days
        end = start
    return Range(start, end, last.isoformat(), {"start": first.isoformat(), "end": last.isoformat()})


def _month(raw: str, now: datetime) -> Range:
    try:
        if not MONTH_FORMAT.fullmatch(raw):
            raise ValueError
        year, month = int(raw[:4]), int(raw[5:])
        first = date(year, month, 1)
    except ValueError:
        raise InvalidRequest("`month` must be YYYY-MM") from None
    in_years(first, "month")
    last = date(year, month, calendar.monthrange(year, month)[1])
    whole = _days_between(first, last, now, MAX_DAYS)
    return Range(whole.start, whole.end, whole.last_day, {"month": raw})
