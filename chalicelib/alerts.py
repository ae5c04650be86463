"""Alerts: open once per (rule, scope, period, threshold), acknowledge, resolve; each change queues messages.

Opening is a transaction of a conditional put of the alert (its id is a hash of that identity) and
its outbox deliveries, so concurrent or repeated evaluations open it, and queue its messages, once.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from pynamodb.connection import Connection
from pynamodb.exceptions import DoesNotExist, TransactWriteError, UpdateError
from pynamodb.transactions import TransactWrite

from .errors import InvalidRequest, NotFound, PermissionDenied
from .models import Alert, Delivery
from .settings import get_settings

ACTIVE = ("open", "acknowledged")


@dataclass(frozen=True)
class AlertDraft:
    rule: str
    scope: str
    scope_id: str
    period: str
    severity: str
    title: str
    message: str
    channels: tuple[str, ...]
    threshold: str | None = None
    account: str | None = None
    provider: str | None = None

    @property
    def alert_id(self) -> str:
        identity = json.dumps([self.rule, self.scope, self.scope_id, self.period, self.threshold])
        return "al_" + hashlib.sha256(identity.encode()).hexdigest()[:24]


def iso(ts: datetime) -> str:
    return ts.strftime("%Y-%m-%dT%H:%M:%SZ")


def _connection() -> Connection:
    settings = get_settings()
    return Connection(region=settings.region, host=settings.aws_endpoint)


def message_facts(alert: Alert, event: str, when: datetime) -> dict[str, Any]:
    """What every channel is told; the webhook's payload is exactly the first six keys."""
    recovered = event == "resolved"
    return {"event": f"alert.{event}", "provider": alert.provider, "severity": "info" if recovered else alert.severity,
            "title": f"Resolved: {alert.title}" if recovered else alert.title,
            "message": alert.resolution if recovered and alert.resolution else alert.message,
            "timestamp": iso(when), "alert_id": alert.alert_id, "rule": alert.rule, "scope": alert.scope,
            "scope_id": alert.scope_id, "state": alert.state}


def _deliveries(alert: Alert, event: str, when: datetime) -> list[Delivery]:
    payload = json.dumps(message_facts(alert, event, when))
    return [Delivery(f"{alert.alert_id}#{event}#{channel}", channel=channel, event=event, payload=payload,
                     status="pending", created_at=iso(when)) for channel in alert.channels]


def _with_messages(alert: Alert, event: str, now: datetime, change) -> bool:
    """Apply `change` (a conditional write of the alert) and queue its messages in one transaction;
    False when the condition failed (another evaluator, or an earlier run, got there first)."""
    try:
        with TransactWrite(connection=_connection()) as transaction:
            change(transaction)
            for delivery in _deliveries(alert, event, now):
                transaction.save(delivery, condition=Delivery.delivery_id.does_not_exist())
    except TransactWriteError as exc:
        if exc.cause_response_code == "TransactionCanceledException":
            return False
        raise
    return True


def open_alert(draft: AlertDraft, now: datetime) -> bool:
    """True if this call opened the alert; False if it was already there (in any state)."""
    fields = asdict(draft)
    fields["channels"] = list(draft.channels)
    alert = Alert(draft.alert_id, state="open", opened_at=iso(now), **fields)
    return _with_messages(alert, "opened", now,
                          lambda transaction: transaction.save(alert, condition=Alert.alert_id.does_not_exist()))


def resolve(alert: Alert, resolution: str, now: datetime) -> bool:
    """Resolve an active alert and queue the recovery message; False if it was resolved meanwhile."""
    alert.state, alert.resolution, alert.resolved_at = "resolved", resolution, iso(now)
    actions = [Alert.state.set("resolved"), Alert.resolution.set(resolution), Alert.resolved_at.set(iso(now))]
    return _with_messages(alert, "resolved", now, lambda transaction: transaction.update(
        alert, actions=actions, condition=Alert.state.is_in(*ACTIVE)))


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
    alert = _get(alert_id, account)
    try:
        alert.update(actions=[Alert.state.set("acknowledged"), Alert.acknowledged_at.set(iso(now)),
                              Alert.acknowledged_by.set(who)], condition=Alert.state == "open")
    except UpdateError:
        raise InvalidRequest(f"alert {alert_id!r} is {Alert.get(alert_id).state}, not open") from None
    return alert_view(alert)


def alert_view(alert: Alert) -> dict[str, Any]:
    return {name: getattr(alert, name) for name in (
        "alert_id", "rule", "scope", "scope_id", "period", "threshold", "severity", "state", "title", "message",
        "account", "provider", "opened_at", "acknowledged_at", "acknowledged_by", "resolved_at", "resolution")}


def list_alerts(state: str, account: str | None, limit: int = 200) -> dict[str, Any]:
    if state not in ("open", "all"):
        raise InvalidRequest("`state` must be open or all")
    states = ACTIVE if state == "open" else (*ACTIVE, "resolved")
    alerts = [a for s in states for a in Alert.by_state.query(s, scan_index_forward=False, limit=limit)]
    alerts = [a for a in alerts if account is None or a.account == account]
    alerts.sort(key=lambda a: a.opened_at, reverse=True)
    return {"alerts": [alert_view(a) for a in alerts[:limit]]}
