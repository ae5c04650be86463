"""When a provider fails, the pure parts: failed tries fold into their provider's calls, errors and latency (never
its cost), the tries become quota and key readings, and the rules decide the provider alerts (issue #28)."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace

import pytest

from chalicelib.alerting.decide import decide_provider_balances, decide_quota, decide_upstream_auth
from chalicelib.alerting.measure import provider_failures
from chalicelib.alerting.provider_balances import _credits, parse_amount
from chalicelib.alerting.rules import BalanceReading, ProviderFailures, Rules
from chalicelib.clock import precise
from chalicelib.errors import InvalidRequest
from chalicelib.reports import aggregates as agg
from chalicelib.rollup.fold import Fact, fold, views
from chalicelib.rollup.histogram import bucket_of
from chalicelib.rollup.layout import Scope

NOW = datetime(2026, 11, 20, 7, 30, tzinfo=timezone.utc)
RULES = Rules()


def attempt(provider, status, error_type=None, latency_ms=100, model="m"):
    return SimpleNamespace(provider=provider, model=model, status=status, error_type=error_type, latency_ms=latency_ms)


def record(provider="openrouter", status=200, error_type=None, attempts=None, minutes_ago=1, reached=True):
    return SimpleNamespace(
        account="acme", key_id="k1", provider=provider, model="openai/gpt-4o-mini", operation=None, team=None,
        user=None, session=None, status=status, error_type=error_type, upstream_reached=reached, stream=False,
        ts=precise(NOW - timedelta(minutes=minutes_ago)), input_tokens=10, cache_read_tokens=0, cache_write_tokens=0,
        output_tokens=5, reasoning_tokens=0, cost_usd=Decimal("0.002"), latency_ms=400, attempts=attempts)


def day(facts, kind, scope_id):
    [found] = views(fold(facts), Scope(kind, scope_id))
    return found


# --- the rollup -----------------------------------------------------------------------------------------------

def test_a_failed_try_counts_in_its_providers_calls_errors_and_latency_not_in_cost():
    fell_back = Fact.from_call(record(attempts=[attempt("openai", 429, "rate_limit_error", latency_ms=120),
                                                attempt("openrouter", 200, latency_ms=280)]), seq=1)
    openai, openrouter, everything = (day([fell_back], "provider", "openai"), day([fell_back], "provider", "openrouter"),
                                      day([fell_back], "global", "all"))
    for prefix in ("", "h07|", "m0725|"):
        assert (openai[f"{prefix}calls"], openai[f"{prefix}errors"], openai[f"{prefix}fallbacks"]) == (1, 1, 1)
        assert openai[f"{prefix}lat|{bucket_of(120)}"] == 1 and f"{prefix}cost" not in openai
        assert f"{prefix}in" not in openai and f"{prefix}unpriced" not in openai
    assert openai["err|rate_limit_error"] == 1
    assert (openrouter["calls"], openrouter.get("errors", 0), openrouter["cost"]) == (1, 0, Decimal("0.002"))
    assert (everything["calls"], everything.get("errors", 0)) == (1, 0)  # the call is one call, answered
    assert "fallbacks" not in everything


def test_a_call_without_attempts_folds_as_before_and_an_erasure_takes_its_tries_back():
    plain = Fact.from_call(record(), seq=1)
    assert plain.failed_attempts == ()
    tried = record(attempts=[attempt("openai", 503), attempt("openrouter", 200)])
    both = [Fact.from_call(tried, seq=1), Fact.from_call(tried, sign=-1, seq=2)]
    assert not any(v for k, v in day(both, "provider", "openai").items() if k != "day")


def test_the_report_totals_read_the_fallbacks():
    fell_back = Fact.from_call(record(attempts=[attempt("openai", 429), attempt("openrouter", 200)]), seq=1)
    totals = agg.total([(day([fell_back], "provider", "openai"), "")])
    assert (totals.calls, totals.errors, totals.fallbacks, totals.error_rate) == (1, 1, 1, 1.0)


# --- the tries as readings --------------------------------------------------------------------------------------

def test_429s_become_quota_readings_that_say_what_became_of_each_call():
    recent = [
        record(attempts=[attempt("openai", 429), attempt("openrouter", 200)]),  # fell back
        record(attempts=[attempt("openai", 429), attempt("openrouter", 503)], status=503,
               error_type="upstream_503"),  # failed after all
        record(provider="openai", status=429, error_type="rate_limit_error"),  # no rule: failed
        record(provider="openai", status=429, error_type="rate_limit_exceeded", reached=False),  # our own limit
        record(provider="openai", status=429, error_type="rate_limit_error", minutes_ago=20),  # outside the window
    ]
    found = {f.provider: f for f in provider_failures(recent, NOW, RULES)}
    assert found["openai"] == ProviderFailures("openai", 15, rate_limited=3, fell_back=1, failed=2)
    assert "openrouter" not in found or found["openrouter"].rate_limited == 0


def test_401s_and_403s_become_key_readings():
    recent = [record(provider="anthropic", status=401, error_type="authentication_error"),
              record(attempts=[attempt("openai", 403, "permission_denied"), attempt("openrouter", 200)]),
              record(provider="openai", status=401, error_type="authentication_error", reached=False)]  # our 401
    found = {f.provider: f for f in provider_failures(recent, NOW, RULES)}
    assert (found["anthropic"].key_refused, found["anthropic"].key_statuses) == (1, (401,))
    assert (found["openai"].key_refused, found["openai"].latest_key_error) == (1, "permission_denied")


# --- the rules --------------------------------------------------------------------------------------------------

def test_a_quota_alert_needs_enough_429s_and_says_how_many_fell_back_and_failed():
    assert decide_quota([ProviderFailures("openai", 15, rate_limited=2, fell_back=2)], RULES, NOW) == []
    [draft] = decide_quota([ProviderFailures("openai", 15, rate_limited=5, fell_back=4, failed=1)], RULES, NOW)
    assert (draft.rule, draft.scope, draft.scope_id, draft.period, draft.kind) == (
        "provider_quota", "provider", "openai", None, "condition")
    assert "4 call(s) fell back" in draft.message and "1 failed" in draft.message
    assert draft.severity == "critical" and draft.hold_minutes == RULES.hold_minutes
    [quiet] = decide_quota([ProviderFailures("openai", 15, rate_limited=5, fell_back=5)], RULES, NOW)
    assert quiet.severity == "high" and quiet.alert_id == draft.alert_id  # one identity per provider


def test_a_rejected_key_is_critical_at_the_first_401():
    assert decide_upstream_auth([ProviderFailures("openai", 15, rate_limited=9)], RULES, NOW) == []
    [draft] = decide_upstream_auth([ProviderFailures("anthropic", 15, key_refused=1, key_statuses=(401,),
                                                     latest_key_error="authentication_error")], RULES, NOW)
    assert (draft.rule, draft.scope_id, draft.severity) == ("provider_key_rejected", "anthropic", "critical")
    assert "401" in draft.title and "authentication_error" in draft.message


@pytest.mark.parametrize("balance, low, level, severity", [
    ("20", "10", None, None), ("10", "10", None, None), ("9.99", "10", 1, "high"), ("0", "10", 2, "critical"),
    ("-3", "10", 2, "critical"), ("0", "0", 2, "critical"),
])
def test_a_low_balance_is_high_and_none_left_is_critical(balance, low, level, severity):
    drafts = decide_provider_balances([BalanceReading("openai", Decimal(balance), Decimal(low))], RULES, NOW)
    if level is None:
        assert drafts == []
    else:
        [draft] = drafts
        assert (draft.rule, draft.scope_id, draft.level, draft.severity) == (
            "provider_balance_low", "openai", level, severity)


# --- balances as typed ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    (Decimal("12.50"), Decimal("12.50")), ("0.10", Decimal("0.10")), (7, Decimal(7)), (0, Decimal(0)),
    ("0.000000000001", Decimal("0.000000000001")),
])
def test_an_amount_is_exact(value, expected):
    assert parse_amount(value, "balance_usd") == expected


@pytest.mark.parametrize("value", [True, None, -1, "-0.01", "abc", "NaN", "Infinity", 10 ** 12, "1e13",
                                   "0.0000000000001", 1.5, [], {}])
def test_a_bad_amount_is_a_400(value):
    with pytest.raises(InvalidRequest, match="balance_usd"):
        parse_amount(value, "balance_usd")


def test_openrouters_credit_answer_is_read_exactly_or_refused():
    assert _credits(200, b'{"data": {"total_credits": 25.5, "total_usage": 20.25}}') == (Decimal("25.5"),
                                                                                         Decimal("20.25"))
    for status, body in ((401, b'{"data": {}}'), (200, b"[]"), (200, b'{"data": {"total_credits": "x"}}'),
                         (200, b'{"data": {"total_credits": NaN, "total_usage": 0}}'), (200, b"[" * 100000),
                         (200, b"not json")):
        with pytest.raises(ValueError):
            _credits(status, body)
