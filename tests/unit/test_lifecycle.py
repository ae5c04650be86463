"""The alert state machine: open, escalate once per step, hysteresis, periods, events, closing, reopening."""
from datetime import datetime, timedelta, timezone

from chalicelib.alerting.lifecycle import (
    CLEARING,
    ESCALATES,
    NOTHING,
    OPENS,
    REFIRES,
    RESOLVES,
    Standing,
    acknowledged_resolves,
    may_reopen,
    step,
)
from chalicelib.alerting.rules import CONDITION, EVENT, PERIOD, AlertDraft, closing

NOW = datetime(2026, 11, 21, 12, 0, tzinfo=timezone.utc)


def draft(level=1, kind=CONDITION, may_open=True, occurrences=1):
    return AlertDraft("error_rate", "provider", "openai", None, level=level, kind=kind, may_open=may_open,
                      occurrences=occurrences)


def standing(state="open", level=1, kind=CONDITION, hold=15, clear_since=None, last_seen=None, resolved_by=None,
             quiet=False):
    return Standing(state, level, kind, hold, "Back to normal.", quiet, clear_since, last_seen, resolved_by)


def test_a_firing_draft_opens_once_and_a_displaced_one_never():
    assert step(None, draft(), NOW).action == OPENS and step(None, draft(), NOW).notify
    assert step(None, draft(may_open=False), NOW).action == NOTHING
    assert step(standing(), draft(), NOW).action == NOTHING  # open already: nothing to say


def test_escalation_once_per_higher_step_and_never_down():
    assert step(standing(level=1), draft(level=2), NOW).action == ESCALATES
    assert step(standing(level=3), draft(level=2), NOW).action == NOTHING
    assert step(standing(level=2, state="acknowledged"), draft(level=3), NOW).action == ESCALATES
    assert step(standing(level=1), draft(level=3, may_open=False), NOW).action == NOTHING


def test_hysteresis_a_condition_resolves_after_its_hold():
    assert step(standing(), None, NOW).action == CLEARING
    since = NOW - timedelta(minutes=14)
    assert step(standing(clear_since=since), None, NOW).action == NOTHING
    resolved = step(standing(clear_since=NOW - timedelta(minutes=15)), None, NOW)
    assert (resolved.action, resolved.reason, resolved.notify) == (RESOLVES, "Back to normal.", True)
    assert step(standing(clear_since=since), draft(), NOW).action == REFIRES  # fires again: the hold starts over
    assert step(standing(hold=0), None, NOW).action == RESOLVES  # no hold: at once


def test_an_alert_about_a_period_resolves_when_its_rule_is_silent():
    over = step(standing(kind=PERIOD, quiet=True), None, NOW)
    assert (over.action, over.notify) == (RESOLVES, False)
    assert step(standing(kind=PERIOD), None, NOW).notify


def test_an_event_alert_groups_events_and_resolves_quietly_after_its_hold():
    quiet = standing(kind=EVENT, hold=60, quiet=True, last_seen=NOW - timedelta(minutes=30))
    assert step(quiet, None, NOW).action == NOTHING
    assert step(quiet, draft(kind=EVENT, occurrences=2), NOW).action == REFIRES
    later = step(quiet, None, NOW + timedelta(minutes=30))
    assert (later.action, later.notify) == (RESOLVES, False)


def test_a_closing_draft_resolves_an_active_alert_and_says_so_unless_quiet():
    told = step(standing(), closing("error_rate", "provider", "openai", None, "The period ended."), NOW)
    assert (told.action, told.reason, told.notify) == (RESOLVES, "The period ended.", True)
    hushed = step(standing(), closing("error_rate", "provider", "openai", None, "Came true.", quiet=True), NOW)
    assert (hushed.action, hushed.notify) == (RESOLVES, False)
    assert step(None, closing("error_rate", "provider", "openai", None, "x"), NOW).action == NOTHING


def test_an_alert_from_before_kinds_resolves_as_superseded():
    old = step(Standing("open", 0, None), None, NOW)
    assert (old.action, old.reason, old.notify) == (RESOLVES, "Superseded by the current alert rules.", False)


def test_reopening_after_a_resolution():
    period = draft(level=2, kind=PERIOD)
    by_hand = standing(state="resolved", level=2, kind=PERIOD, resolved_by="admin")
    assert not may_reopen(by_hand, period)  # resolved by a person: not again this period at the same level
    assert may_reopen(by_hand, draft(level=3, kind=PERIOD))
    assert may_reopen(standing(state="resolved", level=2, kind=PERIOD), period)  # resolved by itself
    assert may_reopen(standing(state="resolved", resolved_by="admin"), draft())  # a condition: a new episode
    assert may_reopen(None, draft()) and not may_reopen(standing(), draft())


def test_acknowledging_resolves_only_event_alerts():
    assert acknowledged_resolves(EVENT) and not acknowledged_resolves(CONDITION)
