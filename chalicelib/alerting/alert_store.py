"""Alerts in DynamoDB: carry out the state machine's steps (chalicelib/alerting/lifecycle.py), acknowledge, resolve by
hand, list. Every change that notifies queues its messages in the same transaction.

An alert's id is a hash of its identity (rule, scope, scope_id, period), so concurrent or repeated
evaluations open it once: opening is a conditional put; escalating and resolving are updates conditioned
on the state, the episode (`opened_at`) and the level, so each step happens, and notifies, once. When
an identity fires again after it was resolved, the resolved episode moves to `<alert_id>@<opened_at>`
(history) in the transaction that reopens the alert under its own id.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from pynamodb.exceptions import DoesNotExist
from pynamodb.transactions import TransactWrite

from chalicelib import aws
from chalicelib.alerting.lifecycle import (
    ACKNOWLEDGED,
    ACTIVE,
    CLEARING,
    ESCALATES,
    OPEN,
    OPENS,
    REFIRES,
    RESOLVED,
    RESOLVES,
    Standing,
    acknowledged_resolves,
    may_reopen,
    step,
)
from chalicelib.alerting.rules import EVENT, AlertDraft
from chalicelib.clock import iso, parse_iso
from chalicelib.errors import InvalidRequest, NotFound, PermissionDenied
from chalicelib.ledger import Alert, Delivery

STATES = {"open": (OPEN,), "acknowledged": (ACKNOWLEDGED,), "resolved": (RESOLVED,), "active": ACTIVE,
          "all": (*ACTIVE, RESOLVED)}
NOTE_MAX = 256





def standing_of(alert: Alert) -> Standing:
    return Standing(alert.state, int(alert.level or 0), alert.kind, int(alert.hold_minutes or 0), alert.recovery,
                    bool(alert.recovery_quiet), parse_iso(alert.clear_since), parse_iso(alert.last_seen_at),
                    alert.resolved_by)


def message_facts(alert: Alert, event: str, when: datetime) -> dict[str, Any]:
    """What every channel is told; the webhook's payload is exactly the first six keys."""
    recovered = event == "resolved"
    return {"event": f"alert.{event}", "provider": alert.provider, "severity": "info" if recovered else alert.severity,
            "title": f"Resolved: {alert.title}" if recovered else alert.title,
            "message": alert.resolution if recovered and alert.resolution else alert.message,
            "timestamp": iso(when), "alert_id": alert.alert_id, "rule": alert.rule, "scope": alert.scope,
            "scope_id": alert.scope_id, "state": alert.state}


def _deliveries(alert: Alert, event: str, step_name: str, now: datetime) -> list[Delivery]:
    """One outbox row per channel, named by the episode and the step: a step queues its messages once."""
    payload = json.dumps(message_facts(alert, event, now))
    return [Delivery(f"{alert.alert_id}@{alert.opened_at}#{step_name}#{channel}", channel=channel, event=event,
                     payload=payload, status="pending", created_at=iso(now)) for channel in alert.channels]


def _with_messages(alert: Alert, event: str, now: datetime, change: Callable[[TransactWrite], None],
                   step_name: str | None = None) -> bool:
    """Apply `change` (conditional writes of the alert) and queue its messages in one transaction;
    False when a condition failed (another evaluator, or an earlier run, got there first)."""
    def write() -> None:
        with TransactWrite(connection=aws.transactions()) as transaction:
            change(transaction)
            for delivery in _deliveries(alert, event, step_name or event, now):
                transaction.save(delivery, condition=Delivery.delivery_id.does_not_exist())
    return aws.conditional(write)


def _this_episode(alert: Alert):
    return Alert.state.is_in(*ACTIVE) & (Alert.opened_at == alert.opened_at)


def _quietly(alert: Alert, actions: list, condition) -> bool:
    return aws.conditional(lambda: alert.update(actions=actions, condition=condition))


# --- the steps ----------------------------------------------------------------------------------------

def _new_alert(draft: AlertDraft, channels: tuple[str, ...], now: datetime) -> Alert:
    return Alert(draft.alert_id, rule=draft.rule, scope=draft.scope, scope_id=draft.scope_id, period=draft.period,
                 threshold=draft.threshold, severity=draft.severity, state=OPEN, title=draft.title,
                 message=draft.message, account=draft.account, provider=draft.provider,
                 channels=list(draft.channels if draft.channels is not None else channels), opened_at=iso(now),
                 level=draft.level, kind=draft.kind, hold_minutes=draft.hold_minutes, recovery=draft.recovery or None,
                 recovery_quiet=draft.recovery_quiet, last_seen_at=iso(now), occurrences=draft.occurrences)


def open_alert(draft: AlertDraft, channels: tuple[str, ...], now: datetime) -> bool:
    """True if this call opened the alert (or a new episode of it); False if it is open already, or stays
    resolved (see lifecycle.may_reopen)."""
    alert = _new_alert(draft, channels, now)
    if _with_messages(alert, "opened", now,
                      lambda transaction: transaction.save(alert, condition=Alert.alert_id.does_not_exist())):
        return True
    try:
        previous = Alert.get(draft.alert_id, consistent_read=True)
    except DoesNotExist:
        return False
    if previous.state in ACTIVE or previous.opened_at == alert.opened_at:
        return False  # open already, or resolved this very second
    if not may_reopen(standing_of(previous), draft):
        return False
    values = {name: value for name, value in previous.attribute_values.items() if name != "alert_id"}
    archived = Alert(f"{previous.alert_id}@{previous.opened_at}", **values, episode_of=previous.alert_id)

    def reopen(transaction: TransactWrite) -> None:
        transaction.save(archived, condition=Alert.alert_id.does_not_exist())
        transaction.save(alert, condition=(Alert.state == RESOLVED) & (Alert.opened_at == previous.opened_at))

    return _with_messages(alert, "opened", now, reopen)


def escalate(alert: Alert, draft: AlertDraft, now: datetime) -> bool:
    """Raise an open alert to the draft's level and notify once for that level."""
    condition = _this_episode(alert) & (Alert.level < draft.level)
    alert.level, alert.severity, alert.title, alert.message = draft.level, draft.severity, draft.title, draft.message
    alert.threshold, alert.escalated_at, alert.clear_since = draft.threshold, iso(now), None
    alert.recovery = draft.recovery or alert.recovery
    actions = [Alert.level.set(draft.level), Alert.severity.set(draft.severity), Alert.title.set(draft.title),
               Alert.message.set(draft.message), Alert.escalated_at.set(iso(now)), Alert.clear_since.remove(),
               Alert.last_seen_at.set(iso(now))]
    actions += [getattr(Alert, name).set(value) if value is not None else getattr(Alert, name).remove()
                for name, value in (("threshold", draft.threshold), ("recovery", alert.recovery))]
    return _with_messages(alert, "escalated", now, lambda transaction: transaction.update(
        alert, actions=actions, condition=condition), step_name=f"escalated-{draft.level}")


def refire(alert: Alert, draft: AlertDraft, now: datetime) -> bool:
    """Firing again while its hold ran, or new events: the hold starts over, quietly."""
    actions = [Alert.clear_since.remove(), Alert.last_seen_at.set(iso(now))]
    if alert.kind == EVENT:
        actions.append(Alert.occurrences.add(draft.occurrences))
    return _quietly(alert, actions, _this_episode(alert))


def start_clearing(alert: Alert, now: datetime) -> bool:
    return _quietly(alert, [Alert.clear_since.set(iso(now))], _this_episode(alert) & Alert.clear_since.does_not_exist())


def resolve(alert: Alert, resolution: str, now: datetime, notify: bool = True, by: str | None = None) -> bool:
    """Resolve an active alert, with its recovery message unless `notify` is False; False if it was resolved
    (or reopened) meanwhile."""
    condition = _this_episode(alert)
    alert.state, alert.resolution, alert.resolved_at, alert.resolved_by = RESOLVED, resolution, iso(now), by
    actions = [Alert.state.set(RESOLVED), Alert.resolution.set(resolution), Alert.resolved_at.set(iso(now)),
               Alert.clear_since.remove()]
    if by:
        actions.append(Alert.resolved_by.set(by))
    if not notify:
        return _quietly(alert, actions, condition)
    return _with_messages(alert, "resolved", now, lambda transaction: transaction.update(
        alert, actions=actions, condition=condition))


@dataclass
class Applied:
    opened: list[str] = field(default_factory=list)
    escalated: list[str] = field(default_factory=list)
    resolved: list[str] = field(default_factory=list)


def apply(drafts: list[AlertDraft], active: list[Alert], channels: tuple[str, ...], now: datetime) -> Applied:
    """One evaluation's drafts against the alerts that are open: each identity takes its one step."""
    by_id = {alert.alert_id: alert for alert in active}
    chosen: dict[str, AlertDraft] = {}
    for draft in drafts:
        kept = chosen.get(draft.alert_id)
        if kept is None or (kept.closes and not draft.closes) or draft.level > kept.level:
            chosen[draft.alert_id] = draft
    applied = Applied()
    for alert_id in sorted(set(by_id) | set(chosen)):
        alert, draft = by_id.get(alert_id), chosen.get(alert_id)
        taken = step(standing_of(alert) if alert else None, draft, now)
        if taken.action == OPENS and open_alert(draft, channels, now):
            applied.opened.append(alert_id)
        elif taken.action == ESCALATES and escalate(alert, draft, now):
            applied.escalated.append(alert_id)
        elif taken.action == REFIRES:
            refire(alert, draft, now)
        elif taken.action == CLEARING:
            start_clearing(alert, now)
        elif taken.action == RESOLVES and resolve(alert, taken.reason or "Resolved.", now, notify=taken.notify):
            applied.resolved.append(alert_id)
    return applied


# --- people: list, acknowledge, resolve ----------------------------------------------------------------

def active_alerts() -> list[Alert]:
    return [a for state in ACTIVE for a in Alert.by_state.query(state)]


def _get(alert_id: str, account: str | None) -> Alert:
    try:
        alert = Alert.get(alert_id)
    except DoesNotExist:
        raise NotFound(f"no alert {alert_id!r}") from None
    if account is not None and alert.account != account:
        raise PermissionDenied("this alert belongs to another account")
    return alert


def acknowledge(alert_id: str, account: str | None, who: str, now: datetime) -> dict[str, Any]:
    """Acknowledge an open alert: it stays until its condition clears (and still notifies if it escalates).
    An event alert (an expensive call) is done once seen: acknowledging resolves it, quietly."""
    alert = _get(alert_id, account)
    actions = [Alert.acknowledged_at.set(iso(now)), Alert.acknowledged_by.set(who)]
    if acknowledged_resolves(alert.kind):
        actions += [Alert.state.set(RESOLVED), Alert.resolved_at.set(iso(now)), Alert.resolved_by.set(who),
                    Alert.resolution.set(f"Acknowledged by {who}.")]
    else:
        actions.append(Alert.state.set(ACKNOWLEDGED))
    if not aws.conditional(lambda: alert.update(actions=actions, condition=Alert.state == OPEN)):
        raise InvalidRequest(f"alert {alert_id!r} is {Alert.get(alert_id).state}, not open")
    return alert_view(alert)


def resolve_by_hand(alert_id: str, account: str | None, who: str, body: Any, now: datetime) -> dict[str, Any]:
    """`POST /api/alerts/{id}/resolve` `{"note"?}`: a person closes an open or acknowledged alert; the channels
    are told who did (an event alert closes quietly). If its condition still holds, the next evaluation opens
    a new episode; an alert about a period stays resolved for that period unless it reaches a higher level."""
    note = body.get("note") if isinstance(body, dict) else None
    if note is not None and (not isinstance(note, str) or len(note) > NOTE_MAX):
        raise InvalidRequest(f"`note` must be a string of at most {NOTE_MAX} characters")
    alert = _get(alert_id, account)
    reason = f"Resolved by {who}" + (f": {note}" if note else ".")
    if alert.state not in ACTIVE or not resolve(alert, reason, now, notify=alert.kind != EVENT, by=who):
        raise InvalidRequest(f"alert {alert_id!r} is {Alert.get(alert_id).state}, not open or acknowledged")
    return alert_view(alert)


def alert_view(alert: Alert) -> dict[str, Any]:
    view = {name: getattr(alert, name) for name in (
        "alert_id", "rule", "scope", "scope_id", "period", "threshold", "severity", "level", "kind", "state", "title",
        "message", "account", "provider", "occurrences", "opened_at", "escalated_at", "last_seen_at", "clear_since",
        "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "resolution", "episode_of")}
    opened, resolved = parse_iso(alert.opened_at), parse_iso(alert.resolved_at)
    view["duration_seconds"] = int((resolved - opened).total_seconds()) if opened and resolved else None
    return view


def list_alerts(state: str, account: str | None, limit: int = 200) -> dict[str, Any]:
    """Newest first: `open`, `acknowledged`, `resolved` (with how long each lasted), `active` (open and
    acknowledged) or `all`."""
    if state not in STATES:
        raise InvalidRequest(f"`state` must be one of {', '.join(STATES)}")
    alerts = [a for s in STATES[state] for a in Alert.by_state.query(s, scan_index_forward=False, limit=limit)]
    alerts = [a for a in alerts if account is None or a.account == account]
    alerts.sort(key=lambda a: a.opened_at, reverse=True)
    return {"alerts": [alert_view(a) for a in alerts[:limit]]}
