"""What people read: every message names money one way (`$` and the API's digits), says no "None", and names
its period. Golden texts, compared exactly."""
import re
from datetime import datetime
from decimal import Decimal

from chalicelib.alerting import digest, notify
from chalicelib.alerting.decide import decide_credits
from chalicelib.alerting.rules import CreditReading, Rules
from chalicelib.money import usd
from chalicelib.reports.aggregates import Totals
from chalicelib.rollup.histogram import bucket_of
from chalicelib.settings import get_settings

NOW = datetime(2026, 12, 7, 9, 0)


def test_money_reads_one_way_in_every_message():
    assert [usd(Decimal(v)) for v in ("0.00382735", "10.50", "1E+1", "0.0000001")] == [
        "$0.00382735", "$10.5", "$10", "$0.0000001"]
    [low] = decide_credits([CreditReading("acme", Decimal("10"), Decimal("0.0003309"))], Rules(), NOW)
    assert (low.title, low.message) == ("Credits low for acme", "$0.0003309 of $10 left.")


def test_a_week_without_calls_is_named_and_says_no_none():
    facts = digest.weekly_facts("2026-W48", Totals(), {})
    assert (facts["title"], facts["message"]) == ("Tollgate weekly performance report, 2026-W48", "No calls in 2026-W48.")


def test_a_week_with_calls_names_it_and_its_latency():
    totals = Totals(calls=4, errors=1, cost=Decimal("0.0123"))
    totals.latency[bucket_of(200)] += 4
    facts = digest.weekly_facts("2026-W48", totals, {"chat": {"calls": 4, "errors": 1}})
    first, latency, rates = facts["message"].splitlines()
    assert first == "2026-W48: 4 calls, 1 errors (25.0%), cost $0.0123."
    assert re.fullmatch(r"Latency p50 ([\d.]+) ms, p95 \1 ms, p99 \1 ms\.", latency), latency
    assert rates == "Error rate by operation: chat 25.0% of 4"


def test_the_plain_text_template_word_for_word(monkeypatch):
    monkeypatch.setenv("TOLLGATE_DASHBOARD_URL", "https://d.example")
    get_settings.cache_clear()
    try:
            text = notify.render_text({"title": "Credits low for acme", "message": "$0.0003309 of $10 left.",
                                   "severity": "high", "event": "alert.opened",
                                   "timestamp": "2026-12-07T09:00:00Z"})
    finally:
        monkeypatch.delenv("TOLLGATE_DASHBOARD_URL")
        get_settings.cache_clear()
    assert text == ("Credits low for acme\n\n$0.0003309 of $10 left.\n\n"
                    "Severity: high · alert.opened · 2026-12-07T09:00:00Z\nDashboard: https://d.example\n")
