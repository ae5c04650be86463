"""The local scheduler runs app.py's own `@app.schedule` handlers when their Rate or Cron says so."""
from __future__ import annotations

from datetime import datetime, timezone

import app
from local.schedule import Scheduler


def test_rate_every_run_daily_at_eight_weekly_on_monday_at_eight():
    started = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)  # a Thursday
    scheduler = Scheduler(app, started)
    assert scheduler.due(started) == ["evaluate_every_minute", "merge_details"]  # 08:00 has not come yet today
    scheduler.last_run = dict.fromkeys(scheduler.last_run, started)
    assert scheduler.due(datetime(2026, 11, 26, 8, 0, tzinfo=timezone.utc)) == ["evaluate_every_minute", "daily_digest", "merge_details"]
    monday = datetime(2026, 11, 30, 8, 30, tzinfo=timezone.utc)
    assert scheduler.due(monday) == ["evaluate_every_minute", "daily_digest", "weekly_report", "merge_details"]


def test_a_stack_started_after_eight_sends_that_mornings_digest_once():
    scheduler = Scheduler(app, datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc))
    assert "daily_digest" in scheduler.due(datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc))
    scheduler.last_run["daily_digest"] = datetime(2026, 11, 26, 10, 0, tzinfo=timezone.utc)
    assert "daily_digest" not in scheduler.due(datetime(2026, 11, 26, 10, 1, tzinfo=timezone.utc))
