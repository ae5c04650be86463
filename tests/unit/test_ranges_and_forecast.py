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


def test_a_fresh_install_has_no_projection_and_says_why():
    """Installed this morning (2026-11-26): the month's 25 days before it hold nothing, which is no rate of $0."""
    fresh = project({"2026-11-26": Decimal(2)}, 30, date(2026, 11, 1), date(2026, 11, 30), datetime(2026, 11, 26, 10, tzinfo=timezone.utc))
    assert (fresh.month_to_date, fresh.projected, fresh.enough_data) == (Decimal(2), None, False)
    assert fresh.view()["reason"] == "a projection needs 3 whole days of data (there are 0) and 20 calls (there are 30)"


def test_day_one_of_a_month_has_no_projection():
    first = project({"2026-12-01": Decimal(1)}, 40, date(2026, 12, 1), date(2026, 12, 31), datetime(2026, 12, 1, 6, tzinfo=timezone.utc))
    assert (first.projected, first.enough_data) == (None, False)


def test_day_ten_projects_from_the_last_seven_whole_days_and_today_so_far():
    """$d on the d-th, 10 calls a day, at noon on the 10th: the rate is the 3rd-9th ($42) and today's $10 over
    7.5 days; 20 days and half of today are left."""
    daily = {f"2026-11-{d:02d}": Decimal(d) for d in range(1, 11)}
    ten = project(daily, 100, date(2026, 11, 1), date(2026, 11, 30), datetime(2026, 11, 10, 12, tzinfo=timezone.utc))
    spent, rate, left = Decimal(55), Decimal(52) / Decimal("7.5"), Decimal("20.5")
    assert ten.enough_data and ten.month_to_date == spent
    assert ten.projected == (spent + rate * left).quantize(Decimal("0.000001")) == Decimal("197.133333")


def test_too_few_calls_or_whole_days_of_data_is_no_projection():
    daily = {"2026-11-01": Decimal(5)}
    assert project(daily, 19, date(2026, 11, 1), date(2026, 11, 30), datetime(2026, 11, 9, tzinfo=timezone.utc)).projected is None
    assert project(daily, 20, date(2026, 11, 1), date(2026, 11, 30), datetime(2026, 11, 3, 8, tzinfo=timezone.utc)).projected is None
    assert project(daily, 20, date(2026, 11, 1), date(2026, 11, 30), datetime(2026, 11, 4, 0, tzinfo=timezone.utc)).enough_data


def test_a_past_month_is_what_it_spent():
    past = project({"2026-10-05": Decimal(7)}, 1, date(2026, 10, 1), date(2026, 10, 31), NOW)
    assert (past.month_to_date, past.projected) == (Decimal(7), Decimal(7))
