"""Time ranges as callers name them, and the month's projection: pure, with golden numbers."""
from datetime import date, datetime, timezone
from decimal import Decimal

import pytest

from chalicelib.errors import InvalidRequest
from chalicelib.reports import ranges
from chalicelib.reports.forecast import project
from chalicelib.query import Query

NOW = datetime(2026, 11, 26, 9, 30, tzinfo=timezone.utc)


def test_each_form_names_its_range():
    hours = ranges.parse(Query({"hours": "6"}), NOW)
    assert (hours.start, hours.end, hours.named) == (datetime(2026, 11, 26, 3, 30, 0, 1, tzinfo=timezone.utc), NOW, {"hours": 6})
    days = ranges.parse(Query({"days": "2"}), NOW)
    assert (days.start, days.first_day, days.last_day, days.whole_days) == (datetime(2026, 11, 25, tzinfo=timezone.utc), "2026-11-25",
                                                                            "2026-11-26", True)
    span = ranges.parse(Query({"start": "2026-11-01", "end": "2026-11-03"}), NOW)
    assert (span.start, span.end, span.days) == (datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 11, 3, 23, 59, 59, 999999, tzinfo=timezone.utc),
                                                 ["2026-11-01", "2026-11-02", "2026-11-03"])
    month = ranges.parse(Query({"month": "2026-11"}), NOW)
    assert (month.start, month.end, month.last_day) == (datetime(2026, 11, 1, tzinfo=timezone.utc), NOW, "2026-11-30")  # ends now
    february = ranges.parse(Query({"month": "2028-02"}), NOW)
    assert february.last_day == "2028-02-29" and february.end == february.start  # all in the future: empty
    assert ranges.parse(Query({}), NOW, default=("days", 7)).named == {"days": 7}


@pytest.mark.parametrize("params", [
    {"hours": "1", "days": "1"}, {"end": "2026-11-01"}, {"start": "2026-11-03", "end": "2026-11-01"},
    {"start": "2026-02-30"}, {"start": "26-11-01"}, {"month": "2026-13"}, {"month": "2026-1"},
    {"month": "２０２６-11"}, {"start": "2026-11-０１"},
    {"start": "2025-01-01", "end": "2026-06-01"}, {"hours": "0"}, {"days": "367"}, {"month": "2026-11", "days": "3"}])
def test_every_malformed_or_ambiguous_range_is_a_400(params):
    with pytest.raises(InvalidRequest):
        ranges.parse(Query(params), NOW)


def test_a_projection_adds_the_recent_daily_average_for_the_days_left():
    daily = {f"2026-11-{d:02d}": Decimal(d) for d in range(1, 27)}  # $1 on the 1st … $26 today
    result = project(daily, date(2026, 11, 1), date(2026, 11, 30), NOW)
    spent = sum(range(1, 27))  # 351
    rate = Decimal(sum(range(19, 26))) / 7  # the last 7 whole days, 19th-25th: 154 / 7 = 22
    left = Decimal(4) + Decimal((datetime(2026, 11, 27, tzinfo=timezone.utc) - NOW).total_seconds()) / 86_400  # 4 days and 14.5 h
    assert result.month_to_date == spent and result.enough_data
    assert result.projected == (spent + rate * left).quantize(Decimal("0.000001")) == Decimal("452.291667")


def test_no_projection_before_three_whole_days_and_a_past_month_is_what_it_spent():
    early = project({"2026-11-01": Decimal(5)}, date(2026, 11, 1), date(2026, 11, 30), datetime(2026, 11, 3, 8, tzinfo=timezone.utc))
    assert (early.projected, early.enough_data) == (None, False)
    ready = project({"2026-11-01": Decimal(5)}, date(2026, 11, 1), date(2026, 11, 30), datetime(2026, 11, 4, 0, tzinfo=timezone.utc))
    assert ready.enough_data
    past = project({"2026-10-05": Decimal(7)}, date(2026, 10, 1), date(2026, 10, 31), NOW)
    assert (past.month_to_date, past.projected) == (Decimal(7), Decimal(7))
