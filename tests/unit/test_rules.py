"""Every alert rule as a pure function: hand-made measurements in, drafts out. No AWS, no clock."""
import dataclasses
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from chalicelib.alerting.budgets import status
from chalicelib.alerting.decide import (
    decide_auth_failures,
    decide_budgets,
    decide_consecutive_errors,
    decide_credits,
    decide_daily_cost,
    decide_dead_letters,
    decide_error_rate,
    decide_expensive_calls,
    decide_latency,
    decide_quarantine,
    decide_spend_anomaly,
)
from chalicelib.alerting.rules import (
    CONDITION,
    EVENT,
    PERIOD,
    AuthFailures,
    BudgetReading,
    BudgetReadings,
    CreditReading,
    DailySpend,
    DeadLetters,
    ExpensiveCall,
    KeyStreak,
    QuarantineCount,
    Rules,
    TrafficWindow,
    rules_from_json,
)
from chalicelib.errors import ConfigurationError
from chalicelib.ledger.budgets import BudgetSpec
from chalicelib.rollup.histogram import bucket_of

RULES = Rules()
DAY = datetime(2026, 11, 21, tzinfo=timezone.utc)
NOW = DAY + timedelta(hours=12)


def budget(limit="10", period="daily", mode="soft", thresholds=("0.5", "0.8", "1.0"), tokens=False, window=None):
    return BudgetSpec("b1", "account", "acme", period, None if tokens else Decimal(limit),
                      int(limit) if tokens else None, tuple(Decimal(t) for t in thresholds), mode, (),
                      window_minutes=window)


def reading(spec, spent, now=NOW, calls=100, ended=False):
    if spec.period == "window":
        start, end = now - timedelta(minutes=spec.window_minutes), now
    else:
        start, end = DAY, DAY + timedelta(days=1)
    tokens = int(spent) if spec.unit == "tokens" else 0
    return BudgetReading(spec, status(spec, Decimal(spent), tokens, start, end, now, calls), "acme", ended)


def by_rule(drafts, rule):
    return [d for d in drafts if d.rule == rule]


# --- budgets ---------------------------------------------------------------------------------------------

def test_a_budget_is_one_alert_per_period_that_climbs_its_thresholds():
    [half] = by_rule(decide_budgets(BudgetReadings((reading(budget(), "6"),)), RULES, NOW), "budget")
    [full] = by_rule(decide_budgets(BudgetReadings((reading(budget(mode="hard"), "12"),)), RULES, NOW), "budget")
    assert half.alert_id == full.alert_id and half.period == "2026-11-21T00:00:00Z" and half.kind == PERIOD
    assert (half.level, half.severity, half.title) == (1, "medium", "Budget b1 at 50 % (account acme)")
    assert (full.level, full.severity, full.title) == (3, "critical", "Budget b1 at 100 % (account acme)")
    assert half.message == "$6 of $10 spent this daily period (ends 2026-11-22T00:00:00Z)."
    assert full.message.endswith("New calls are blocked until then.") and full.threshold == "1.0"


def test_a_budget_under_every_threshold_closes_its_alert_with_the_spend():
    [closing] = by_rule(decide_budgets(BudgetReadings((reading(budget(limit="100"), "12"),)), RULES, NOW), "budget")
    assert closing.closes and closing.resolution == "Spend is now $12 of $100 (12.00 %), under every threshold."


def test_a_window_budget_is_a_condition_with_a_hold_and_counts_tokens():
    spec = budget(limit="1000", period="window", tokens=True, window=300, thresholds=("0.8",))
    [draft] = decide_budgets(BudgetReadings((reading(spec, "900"),)), RULES, NOW)
    assert draft.kind == CONDITION and draft.hold_minutes == 15 and draft.period == "window"
    assert draft.message == "900 tokens of 1000 tokens spent in the last 300 minutes."
    assert decide_budgets(BudgetReadings((reading(spec, "100"),)), RULES, NOW) == []  # clears after the hold


def test_a_forecast_needs_a_share_of_the_period_and_enough_calls():
    three_minutes = DAY + timedelta(hours=2, minutes=50)  # the report: six calls at 02:50
    early = reading(budget(limit="0.001", mode="hard", thresholds=("0.5", "1.0")), "0.0006", three_minutes, calls=3)
    assert by_rule(decide_budgets(BudgetReadings((early,)), RULES, three_minutes), "budget_forecast") == []
    few = reading(budget(), "6", calls=19)
    assert by_rule(decide_budgets(BudgetReadings((few,)), RULES, NOW), "budget_forecast") == []
    [forecast] = by_rule(decide_budgets(BudgetReadings((reading(budget(), "6"),)), RULES, NOW), "budget_forecast")
    assert forecast.title == "Budget b1 projected to exceed (account acme)" and forecast.kind == CONDITION
    assert forecast.message == ("At the rate since 2026-11-21T00:00:00Z (100 calls, $6 so far), $12 by "
                                "2026-11-22T00:00:00Z, over the limit of $10.")
    under = reading(budget(limit="20"), "6")
    assert by_rule(decide_budgets(BudgetReadings((under,)), RULES, NOW), "budget_forecast") == []


def test_a_forecast_overtaken_by_the_limit_closes_quietly_with_the_truth():
    [closing] = by_rule(decide_budgets(BudgetReadings((reading(budget(), "10.5"),)), RULES, NOW), "budget_forecast")
    assert closing.closes and closing.quiet
    assert closing.resolution == "Came true: spend reached 105.00 % of the limit ($10.5 of $10)."


def test_a_period_that_ended_closes_both_alerts_with_what_happened():
    over = reading(budget(mode="hard"), "12", now=DAY + timedelta(days=1) - timedelta(microseconds=1), ended=True)
    threshold, forecast = decide_budgets(BudgetReadings((over,)), RULES, NOW + timedelta(days=1))
    assert threshold.resolution == ("The daily period ended at 2026-11-22T00:00:00Z with $12 of $10 spent. "
                                    "Calls are allowed again.")
    assert forecast.quiet and forecast.resolution.startswith("Came true")
    under = reading(budget(), "7", now=DAY + timedelta(days=1) - timedelta(microseconds=1), ended=True)
    _, forecast = decide_budgets(BudgetReadings((under,)), RULES, NOW + timedelta(days=1))
    assert not forecast.quiet and forecast.resolution.endswith("with $7 of $10 spent: the limit was not reached.")


def test_a_deleted_budget_closes_its_alerts():
    [draft] = decide_budgets(BudgetReadings((), deleted=(("budget", "gone", "2026-11-21T00:00:00Z"),)), RULES, NOW)
    assert draft.closes and draft.resolution == "The budget gone was deleted." and draft.scope_id == "gone"


# --- error rate and latency -------------------------------------------------------------------------------

def window(scope, scope_id, calls, errors=0, latency_ms=200, minutes=5):
    return TrafficWindow(scope, scope_id, minutes, calls, errors, {bucket_of(latency_ms): calls} if calls else {})


@pytest.mark.parametrize("errors,level,severity", [(3, 1, "medium"), (6, 2, "high"), (15, 3, "critical")])
def test_error_rate_tiers(errors, level, severity):
    [draft] = decide_error_rate([window("provider", "openai", 50, errors)], RULES, NOW)
    assert (draft.level, draft.severity, draft.period, draft.kind) == (level, severity, None, CONDITION)
    assert draft.title == f"Error rate {errors / 50:.0%} on provider openai" and draft.provider == "openai"


def test_error_rate_needs_enough_calls_and_a_rate_over_the_first_tier():
    assert decide_error_rate([window("global", "all", 19, 10), window("global", "all", 100, 4)], RULES, NOW) == []


def test_error_rate_tiers_follow_the_configured_base_or_are_given():
    assert rules_from_json('{"error_rate": 0.1}').error_tiers == ((0.1, "medium"), (0.2, "high"), (0.5, "critical"))
    given = rules_from_json('{"error_rate_tiers": [[0.02, "high"], [0.5, "critical"]]}')
    assert [d.severity for d in decide_error_rate([window("global", "all", 100, 3)], given, NOW)] == ["high"]


def test_one_incident_speaks_through_one_scope():
    """A provider outage also lifts all traffic and its models: the provider opens, they keep quiet."""
    windows = [window("global", "all", 100, 20), window("provider", "openai", 50, 20),
               window("provider", "anthropic", 50, 0), window("model", "gpt-4o", 40, 18),
               window("model", "gpt-4o-mini", 10, 2)]
    drafts = {(d.scope, d.scope_id): d for d in decide_error_rate(windows, RULES, NOW)}
    assert {k: d.may_open for k, d in drafts.items()} == {("global", "all"): False, ("provider", "openai"): True,
                                                          ("model", "gpt-4o"): False}
    assert drafts[("provider", "openai")].message == ("20 of 50 calls failed in the last 5 minutes (critical: 25% or "
                                                      "more). Most failures: gpt-4o (18 of 40), gpt-4o-mini (2 of 10).")


def test_everything_failing_speaks_as_all_traffic_and_a_lone_model_as_itself():
    everything = [window("global", "all", 100, 50), window("provider", "openai", 50, 25),
                  window("provider", "anthropic", 50, 25)]
    assert [(d.scope, d.may_open) for d in decide_error_rate(everything, RULES, NOW)] == [
        ("global", True), ("provider", False), ("provider", False)]
    lone = [window("global", "all", 400, 10), window("provider", "openai", 400, 10), window("model", "o1", 30, 10)]
    assert [(d.scope, d.scope_id, d.may_open) for d in decide_error_rate(lone, RULES, NOW)] == [("model", "o1", True)]


def test_p95_latency_per_model():
    windows = [window("global", "all", 100, latency_ms=900, minutes=10), window("model", "o1", 20, latency_ms=30_000,
                                                                              minutes=10)]
    [draft] = decide_latency(windows, RULES, NOW)
    assert (draft.rule, draft.scope, draft.scope_id, draft.severity, draft.may_open) == (
        "latency_p95", "model", "o1", "high", True)
    assert draft.title.startswith("p95 latency 3") and draft.title.endswith("s on model o1")
    assert decide_latency([window("model", "o1", 9, latency_ms=30_000)], RULES, NOW) == []  # too few calls


# --- keys, calls ------------------------------------------------------------------------------------------

def test_consecutive_errors_on_a_key_unless_an_error_rate_alert_covers_them():
    streak = KeyStreak("key-batch", "acme", 6, "server_error", ("openai",), ("gpt-4o",))
    [alone] = decide_consecutive_errors([streak, KeyStreak("key-ok", "acme", 4, "x")], RULES, NOW)
    assert alone.may_open and alone.title == "6 errors in a row on key key-batch" and alone.account == "acme"
    outage = decide_error_rate([window("provider", "openai", 50, 20)], RULES, NOW)
    [covered] = decide_consecutive_errors([streak], RULES, NOW, explained_by=outage)
    assert not covered.may_open


def call(call_id, key, cost, account="acme"):
    return ExpensiveCall(call_id, "2026-11-21T12:00:00.000000Z", account, key, "openai", "o1", Decimal(cost))


def test_expensive_calls_are_one_event_alert_per_key():
    calls = [call("c1", "k1", "0.75"), call("c2", "k1", "2.10"), call("c3", "k2", "0.60"), call("c4", "k3", "0.50")]
    drafts = {d.scope_id: d for d in decide_expensive_calls(calls, RULES, NOW)}
    assert set(drafts) == {"k1", "k2"}  # $0.50 is not over $0.50
    k1 = drafts["k1"]
    assert (k1.kind, k1.occurrences, k1.hold_minutes, k1.recovery_quiet, k1.period) == (EVENT, 2, 60, True, None)
    assert k1.title == "A single call cost $2.1"
    assert k1.message == ("Call c2 (openai o1) by key k1 cost $2.1, over $0.5. 1 more call(s) on this key went "
                          "over it too.")


def test_an_expensive_call_names_the_key_as_people_know_it_and_who_made_it():
    named = dataclasses.replace(call("c9", "k1", "3"), key_name="support-bot", user="alice", session="s-1")
    [draft] = decide_expensive_calls([named], RULES, NOW)
    assert draft.message == "Call c9 (openai o1) by key support-bot (k1), user alice, session s-1 cost $3, over $0.5."


# --- spend, credits, authentication, the rollup ----------------------------------------------------------

def spend(today, history=(), scope="global", scope_id="all"):
    return DailySpend(scope, scope_id, "2026-11-21", Decimal(today), tuple(Decimal(h) for h in history))


def test_daily_cost_climbs_its_tiers_within_the_day():
    assert decide_daily_cost(spend("9"), RULES, NOW)[0].closes
    [medium] = decide_daily_cost(spend("12"), RULES, NOW)
    [critical] = decide_daily_cost(spend("51"), RULES, NOW)
    assert medium.alert_id == critical.alert_id and medium.period == "2026-11-21" and medium.kind == PERIOD
    assert (medium.level, medium.title) == (1, "Daily cost passed $10")
    assert (critical.level, critical.severity) == (3, "critical")
    assert medium.recovery_quiet


def test_spend_anomaly_per_account_speaks_before_all_traffic():
    steady = ["1.0", "1.1", "0.9", "1.0", "1.2", "0.8", "1.0"]
    assert decide_spend_anomaly([spend("9", steady[:6])], RULES, NOW) == []  # six days of history: too few
    both = decide_spend_anomaly([spend("9", steady), spend("8", steady, "account", "acme")], RULES, NOW)
    assert [(d.scope, d.may_open) for d in both] == [("global", False), ("account", True)]
    assert both[1].title == "Unusual spend today on account acme" and both[1].account == "acme"
    [alone] = decide_spend_anomaly([spend("9", steady)], RULES, NOW)
    assert alone.may_open and alone.message.startswith("$9 today against a 7-day mean of $1")
    assert decide_spend_anomaly([spend("1.3", steady)], RULES, NOW) == []


def test_credits_low_then_used_up():
    low, empty, fine, none = (CreditReading("acme", Decimal("100"), Decimal("9")),
                              CreditReading("globex", Decimal("100"), Decimal("-0.5")),
                              CreditReading("initech", Decimal("100"), Decimal("10")),
                              CreditReading("hooli", Decimal("0"), Decimal("0")))
    drafts = {d.scope_id: d for d in decide_credits([low, empty, fine, none], RULES, NOW)}
    assert set(drafts) == {"acme", "globex"}
    assert (drafts["acme"].level, drafts["acme"].severity, drafts["acme"].title) == (1, "high", "Credits low for acme")
    assert (drafts["globex"].level, drafts["globex"].severity) == (2, "critical")
    assert drafts["globex"].title == "Credits used up for globex" and drafts["acme"].hold_minutes == 0


def test_a_burst_of_failed_authentications_in_tiers_with_the_prefixes():
    assert decide_auth_failures(AuthFailures(5, 19, {"tg-abc": 19}), RULES, NOW) == []
    [draft] = decide_auth_failures(AuthFailures(5, 25, {"(none)": 3, "tg-abc": 20, "sk-a…": 2}), RULES, NOW)
    assert (draft.level, draft.severity, draft.title) == (1, "medium", "25 failed authentications in 5 minutes")
    assert "Key prefixes presented: tg-abc (20), (none) (3), sk-a… (2)." in draft.message
    assert decide_auth_failures(AuthFailures(5, 250, {}), RULES, NOW)[0].severity == "high"


def test_quarantine_is_one_alert_whatever_the_number():
    assert decide_quarantine(QuarantineCount(0), RULES, NOW) == []
    [draft] = decide_quarantine(QuarantineCount(3, more=True), RULES, NOW)
    assert draft.message.startswith("3+ call record(s)") and draft.period is None and draft.hold_minutes == 0


def test_dead_letters_are_one_alert_naming_the_queues_that_hold_records():
    assert decide_dead_letters(DeadLetters({}), RULES, NOW) == []
    assert decide_dead_letters(DeadLetters({"spill_dead_letters": 0, "rollup_dead_letters": 0}), RULES, NOW) == []
    [draft] = decide_dead_letters(DeadLetters({"spill_dead_letters": 0, "rollup_dead_letters": 2}), RULES, NOW)
    assert (draft.rule, draft.scope, draft.severity, draft.kind) == ("dead_letters", "global", "high", CONDITION)
    assert "rollup's dead-letter queue (stream batches the rollup gave up on): 2" in draft.message
    assert "spill's dead-letter queue" not in draft.message
    [both] = decide_dead_letters(DeadLetters({"spill_dead_letters": 1, "rollup_dead_letters": 2}), RULES, NOW)
    identity = (both.rule, both.scope, both.scope_id, both.period)
    assert identity == (draft.rule, draft.scope, draft.scope_id, draft.period)  # still the one alert
    assert "spill's dead-letter queue" in both.message


def test_rules_from_json():
    rules = rules_from_json('{"daily_cost_tiers": [[1, "medium"]], "hold_minutes": 5, "unknown": 1}')
    assert rules.daily_cost_tiers == ((1, "medium"),) and rules.hold_minutes == 5
    with pytest.raises(ConfigurationError):
        rules_from_json("{not json")


def test_a_money_rule_from_the_environment_keeps_every_digit_and_ratios_stay_numbers():
    given = rules_from_json('{"anomaly_min_usd": 0.1000000000000000055511, "anomaly_sigmas": 2.5, "error_rate": 0.1}')
    assert given.anomaly_min_usd == Decimal("0.1000000000000000055511")  # a float would have kept 0.1
    assert isinstance(given.anomaly_sigmas, float) and given.error_tiers[0] == (0.1, "medium")


def test_a_forecast_sums_at_38_digits():
    from datetime import date, datetime, timezone

    from chalicelib.reports.forecast import project

    daily = {"2026-12-01": Decimal("12345.678"), "2026-12-02": Decimal("0.000123456789012345678901")}
    done = project(daily, 100, date(2026, 12, 1), date(2026, 12, 31), datetime(2027, 1, 2, tzinfo=timezone.utc))
    assert done.month_to_date == Decimal("12345.678123456789012345678901")  # 28 digits would end ...567890
