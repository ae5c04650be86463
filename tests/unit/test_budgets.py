"""Budget validation, periods (month end, ISO week, timezones, DST) with a frozen clock, spend, forecast."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chalicelib.alerting.budgets import forecast, parse_budget, status
from chalicelib.ledger import period_bounds
from chalicelib.reports.aggregates import totals_in
from chalicelib.errors import InvalidRequest
from chalicelib.ledger.budgets import BudgetSpec
from chalicelib.rollup.fold import Fact, fold, views
from chalicelib.rollup.layout import Scope


def spec(period="monthly", zone="UTC", window=None, limit="10"):
    return BudgetSpec("b", "global", "all", period, Decimal(limit), None, timezone=zone, window_minutes=window)


@pytest.mark.parametrize("now,period,zone,start,end", [
    ("2026-11-30 23:59", "monthly", "UTC", "2026-11-01 00:00", "2026-12-01 00:00"),
    ("2026-12-01 00:00", "monthly", "UTC", "2026-12-01 00:00", "2027-01-01 00:00"),
    ("2026-12-31 12:00", "monthly", "UTC", "2026-12-01 00:00", "2027-01-01 00:00"),
    ("2026-11-22 23:00", "weekly", "UTC", "2026-11-16 00:00", "2026-11-23 00:00"),  # a Sunday
    ("2026-11-23 00:00", "weekly", "UTC", "2026-11-23 00:00", "2026-11-30 00:00"),  # the Monday after
    ("2027-01-01 10:00", "weekly", "UTC", "2026-12-28 00:00", "2027-01-04 00:00"),  # ISO week 53 of 2026
    ("2026-11-22 03:00", "daily", "America/New_York", "2026-11-21 05:00", "2026-11-22 05:00"),
    ("2026-11-22 03:00", "daily", "Asia/Kolkata", "2026-11-21 18:30", "2026-11-22 18:30"),
    ("2026-03-08 12:00", "daily", "America/New_York", "2026-03-08 05:00", "2026-03-09 04:00"),  # 23-hour day
    ("2026-10-31 23:30", "monthly", "Europe/Berlin", "2026-10-31 23:00", "2026-11-30 23:00"),
])
def test_period_bounds(now, period, zone, start, end):
    def at(text):
        return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=timezone.utc)

    got = period_bounds(spec(period, zone), at(now))
    assert got == (at(start), at(end))


def test_window_period_is_the_last_minutes():
    now = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)
    assert period_bounds(spec("window", window=300), now) == (now - timedelta(minutes=300), now)


def _fact(ts, cost, seq):
    return Fact(1, "acme", seq, ts, "acme", "k", "openai", "gpt-4o", None, None, False, None, (10, 0, 0, 5, 0),
                Decimal(cost), 100)


def test_spend_uses_whole_days_and_five_minute_buckets_at_the_edges():
    facts = [_fact(datetime(2026, 11, 21, 4, 59, tzinfo=timezone.utc), "1", 1),   # before a New York day starting 05:00 UTC
             _fact(datetime(2026, 11, 21, 5, 0, tzinfo=timezone.utc), "2", 2),    # inside
             _fact(datetime(2026, 11, 21, 23, 0, tzinfo=timezone.utc), "4", 3),   # inside
             _fact(datetime(2026, 11, 22, 4, 55, tzinfo=timezone.utc), "8", 4),   # inside (last bucket)
             _fact(datetime(2026, 11, 22, 5, 0, tzinfo=timezone.utc), "16", 5)]   # the next day
    items = views(fold(facts), Scope.everything())
    start, end = period_bounds(spec("daily", "America/New_York"), datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc))
    day, month = totals_in(items, start, end), totals_in(items, *period_bounds(spec("monthly"), datetime(2026, 11, 21, tzinfo=timezone.utc)))
    assert (day.cost, day.total_tokens, day.calls) == (Decimal(14), 45, 3)
    assert (month.cost, month.total_tokens, month.calls) == (Decimal(31), 75, 5)


def test_status_and_forecast():
    start, end = datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 12, 1, tzinfo=timezone.utc)
    now = start + (end - start) / 3
    assert forecast(Decimal(3), start, end, now) == Decimal("9.000000")
    result = status(spec(limit="10"), Decimal("8.5"), 0, start, end, now)
    assert result.state == "warning" and result.crossed == (Decimal("0.5"), Decimal("0.8"))
    assert result.percent == Decimal("85.00") and result.forecast > 10
    assert status(spec(limit="10"), Decimal(10), 0, start, end, now).state == "exceeded"
    tokens = BudgetSpec("t", "model", "gpt-4o", "daily", None, 1000)
    assert status(tokens, Decimal(99), 400, start, end, now).percent == Decimal("40.00")


def test_a_forecast_is_ready_after_a_share_of_the_period_and_enough_calls():
    start, end = datetime(2026, 11, 1, tzinfo=timezone.utc), datetime(2026, 11, 2, tzinfo=timezone.utc)
    early = status(spec("daily"), Decimal(1), 0, start, end, start + timedelta(hours=3), calls=500)
    assert early.elapsed_share(start + timedelta(hours=3)) == 0.125
    assert not early.forecast_ready(start + timedelta(hours=3), 0.25, 20)  # a day's forecast from 3 hours
    late = status(spec("daily"), Decimal(1), 0, start, end, start + timedelta(hours=8), calls=19)
    assert not late.forecast_ready(start + timedelta(hours=8), 0.25, 20)  # 19 calls say too little
    ready = status(spec("daily"), Decimal(1), 0, start, end, start + timedelta(hours=8), calls=20)
    assert ready.forecast_ready(start + timedelta(hours=8), 0.25, 20) and ready.forecast == Decimal("3.000000")
    assert not ready.forecast_ready(end, 0.25, 20)  # the period is over: nothing left to project


@pytest.mark.parametrize("budget_id,body,message", [
    ("b 1", {}, "budget_id"),
    ("b", [], "JSON object"),
    ("b", {"scope": "planet"}, "`scope`"),
    ("b", {"scope": "account", "period": "daily", "limit_usd": 1}, "`scope_id`"),
    ("b", {"scope": "global", "period": "yearly", "limit_usd": 1}, "`period`"),
    ("b", {"scope": "global", "period": "window", "limit_usd": 1}, "`window_minutes`"),
    ("b", {"scope": "global", "period": "daily"}, "exactly one"),
    ("b", {"scope": "global", "period": "daily", "limit_usd": 1, "limit_tokens": 5}, "exactly one"),
    ("b", {"scope": "global", "period": "daily", "limit_usd": "-3"}, "positive"),
    ("b", {"scope": "global", "period": "daily", "limit_usd": "NaN"}, "positive"),
    ("b", {"scope": "global", "period": "daily", "limit_tokens": 1.5}, "`limit_tokens`"),
    ("b", {"scope": "global", "period": "daily", "limit_usd": 1, "thresholds": []}, "`thresholds`"),
    ("b", {"scope": "global", "period": "daily", "limit_usd": 1, "mode": "strict"}, "`mode`"),
    ("b", {"scope": "global", "period": "daily", "limit_usd": 1, "channels": ["pager"]}, "`channels`"),
    ("b", {"scope": "global", "period": "daily", "limit_usd": 1, "timezone": "Mars/Olympus"}, "`timezone`"),
])
def test_bad_budgets_are_refused_clearly(budget_id, body, message):
    with pytest.raises(InvalidRequest, match=message):
        parse_budget(budget_id, body)


def test_a_good_budget():
    got = parse_budget("acme-monthly", {"scope": "account", "scope_id": "acme", "period": "monthly",
                                        "limit_usd": "100.50", "thresholds": [1.0, 0.5, 0.5], "mode": "hard",
                                        "channels": ["slack", "slack", "sns"], "timezone": "Europe/Berlin"})
    assert got.limit_usd == Decimal("100.50") and got.thresholds == (Decimal("0.5"), Decimal("1.0"))
    assert got.channels == ("slack", "sns") and got.applies_to("acme", None, "k", "openai", "m")
    assert not got.applies_to("globex", None, "k", "openai", "m")
