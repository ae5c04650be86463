"""The alert state machine, in one place: open → acknowledged → resolved, escalation, hysteresis. Pure.

`step(standing, draft, now)` says what one evaluation does to one alert: given how it stands (or None:
no alert of that identity is open) and what its rule drafted this run (or None: the rule is silent, so
the condition is clear). chalicelib/alerting/alert_store.py carries the step out with conditional writes.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib.alerting.rules import CONDITION, EVENT, PERIOD, AlertDraft

OPEN, ACKNOWLEDGED, RESOLVED = "open", "acknowledged", "resolved"
ACTIVE = (OPEN, ACKNOWLEDGED)

NOTHING = "nothing"
OPENS = "open"  # a new alert (or a new episode of one that was resolved): notifies
ESCALATES = "escalate"  # a higher level than any reached so far: notifies once
REFIRES = "refire"  # firing again while clearing, or new events: updated quietly
CLEARING = "clearing"  # first run clear: the hold starts, quietly
RESOLVES = "resolve"


@dataclass(frozen=True)
class Standing:
    """What the state machine needs of a stored alert."""

    state: str
    level: int
    kind: str | None  # None: an alert from before kinds existed
    hold_minutes: int = 0
    recovery: str | None = None
    recovery_quiet: bool = False
    clear_since: datetime | None = None
    last_seen: datetime | None = None  # event alerts: the last event
    resolved_by: str | None = None  # resolved by a person


@dataclass(frozen=True)
class Step:
    action: str
    reason: str | None = None  # RESOLVES: why
    notify: bool = False


def step(standing: Standing | None, draft: AlertDraft | None, now: datetime) -> Step:
    """The one transition this run makes for one alert identity."""
    active = standing is not None and standing.state in ACTIVE
    if draft is not None and draft.closes:
        return Step(RESOLVES, draft.resolution, notify=not draft.quiet) if active else Step(NOTHING)
    if draft is None:
        return _clear(standing, now) if active else Step(NOTHING)
    if not active:
        return Step(OPENS, notify=True) if may_reopen(standing, draft) else Step(NOTHING)
    if draft.level > standing.level and draft.may_open:  # a scope another alert speaks for does not escalate
        return Step(ESCALATES, notify=True)
    if standing.clear_since is not None or standing.kind == EVENT:
        return Step(REFIRES)
    return Step(NOTHING)


def may_reopen(previous: Standing | None, draft: AlertDraft) -> bool:
    """Whether a firing draft opens an alert, given the last episode of its identity (None: there was none).

    A rule that another scope speaks for never opens. An alert of a period that a person resolved by
    hand stays resolved for that period unless it reaches a higher level; a condition or an event that
    fires again after any resolution is a new episode.
    """
    if not draft.may_open:
        return False
    if previous is None or previous.state in ACTIVE:
        return previous is None
    return not (previous.resolved_by and draft.kind == PERIOD and draft.level <= previous.level)


def _clear(standing: Standing, now: datetime) -> Step:
    if standing.kind is None:  # from before these rules: its successor, if still firing, opens and says so
        return Step(RESOLVES, "Superseded by the current alert rules.", notify=False)
    if standing.kind == PERIOD:
        return Step(RESOLVES, standing.recovery or "Its period is over.", notify=not standing.recovery_quiet)
    hold = timedelta(minutes=standing.hold_minutes)
    if standing.kind == EVENT:
        if standing.last_seen is None or now - standing.last_seen >= hold:
            return Step(RESOLVES, standing.recovery, notify=not standing.recovery_quiet)
        return Step(NOTHING)
    if standing.kind == CONDITION:
        since = standing.clear_since or now
        if now - since >= hold:
            return Step(RESOLVES, standing.recovery, notify=not standing.recovery_quiet)
        return Step(CLEARING) if standing.clear_since is None else Step(NOTHING)
    raise ValueError(f"unknown alert kind {standing.kind!r}")


def acknowledged_resolves(kind: str | None) -> bool:
    """An event alert is done once a person has seen it: acknowledging it resolves it (quietly)."""
    return kind == EVENT
