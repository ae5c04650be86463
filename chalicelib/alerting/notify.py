"""Deliver queued messages to Slack, a webhook and SNS: short timeouts, retried on later runs, never dropped.

A channel that fails is skipped for the rest of the run, so one outage delays only that channel.
Deliveries are claimed with a conditional update (a lease), so concurrent runs send each once; a run
that dies between sending and recording may send again (at least once).
"""
from __future__ import annotations

import json
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chalicelib import aws, secret_store
from chalicelib.clock import iso
from chalicelib.errors import DeliveryFailed, InvalidRequest
from chalicelib.ledger import Delivery
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    import jinja2

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"  # the top-level templates/, also at the zip's root
SEND_TIMEOUT_S, CONNECT_TIMEOUT_S = 5.0, 3.0
MAX_ATTEMPTS = 10
LEASE = timedelta(seconds=60)
COLOURS = {"info": "#2EB67D", "medium": "#DAA038", "high": "#E8912D", "critical": "#D00000"}
WEBHOOK_FIELDS = ("event", "provider", "severity", "title", "message", "timestamp")
CHANNELS = ("slack", "sns", "webhook")


@lru_cache(maxsize=1)
def _templates() -> jinja2.Environment:
    """Imported here: only the scheduled senders render messages, so the proxy's cold start skips jinja2."""
    import jinja2

    return jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=False,
                              undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def slack_escape(text: str) -> str:
    """Slack's mrkdwn control characters; with them escaped, `<!channel>` or `<url|x>` stay text."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def render_slack(facts: dict[str, Any]) -> dict[str, Any]:
    dashboard = get_settings().dashboard_url
    context = f"{facts['severity']} · {facts['event']} · {facts['timestamp']}"
    text = _templates().get_template("slack_message.json.j2").render(
        fallback=slack_escape(f"[{facts['severity']}] {facts['title']}"), colour=COLOURS.get(facts["severity"], "#888888"),
        title=facts["title"], message=facts["message"], context=context, dashboard_url=dashboard)
    return json.loads(text)


def render_text(facts: dict[str, Any]) -> str:
    return _templates().get_template("message.txt.j2").render(dashboard_url=get_settings().dashboard_url, **facts)


def configured_channels() -> tuple[str, ...]:
    settings = get_settings()
    found = {"slack": settings.slack_webhook_url or settings.slack_webhook_parameter,
             "webhook": settings.alert_webhook_url, "sns": settings.sns_topic_arn}
    return tuple(name for name, target in found.items() if target)


def send(channel: str, facts: dict[str, Any]) -> None:
    """One attempt; raises on any failure (timeouts included)."""
    settings = get_settings()
    if channel == "sns":
        aws.client("sns").publish(TopicArn=settings.sns_topic_arn, Subject=facts["title"][:100],
                                  Message=render_text(facts))
        return
    if channel == "slack":
        url, body = secret_store.slack_webhook_url(), render_slack(facts)
    else:
        url, body = settings.alert_webhook_url, {name: facts.get(name) for name in WEBHOOK_FIELDS}
    if not url:
        raise RuntimeError(f"channel {channel} has no URL configured")
    import httpx  # here: only a Slack or webhook delivery needs it, and it costs every cold import of app.py ~12 ms

    response = httpx.post(url, json=body, timeout=httpx.Timeout(SEND_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
                          follow_redirects=False)
    response.raise_for_status()


def send_test(body: Any, now: datetime) -> dict[str, Any]:
    """`POST /admin/alerts/test {"channel"}`: one test message, sent now (not queued), so the answer says
    whether the channel took it."""
    channel = body.get("channel") if isinstance(body, dict) else None
    if channel not in CHANNELS:
        raise InvalidRequest(f"`channel` must be one of {', '.join(CHANNELS)}")
    if channel not in configured_channels():
        raise InvalidRequest(f"channel {channel} is not configured (see docs/RULES.md, Channels)")
    stamp = iso(now)
    facts = {"event": "alert.test", "provider": None, "severity": "info", "title": "Tollgate test notification",
             "message": f"Sent on request at {stamp}: this channel receives Tollgate's alerts.", "timestamp": stamp}
    try:
        send(channel, facts)
    except Exception as exc:  # whatever the channel did, the admin is told here
        raise DeliveryFailed(f"{channel} did not take the test message: {type(exc).__name__}: {exc}"[:500]) from None
    return {"channel": channel, "sent": True, "at": stamp}


def _claim(delivery: Delivery, now: datetime) -> bool:
    stamp = iso(now)
    return aws.conditional(lambda: delivery.update(
        actions=[Delivery.status.set("sending"), Delivery.lease_until.set(iso(now + LEASE))],
        condition=(Delivery.status == "pending") | ((Delivery.status == "sending") & (Delivery.lease_until < stamp))))


def deliver_pending(now: datetime, limit: int = 200) -> dict[str, int]:
    """Send what is queued (and what a dead run left mid-send); record every outcome."""
    counts = {"sent": 0, "failed": 0, "skipped": 0}
    down: set[str] = set()
    queued = list(Delivery.by_status.query("pending", limit=limit)) + list(Delivery.by_status.query("sending"))
    for delivery in sorted(queued, key=lambda d: d.created_at):
        if delivery.channel in down or not _claim(delivery, now):
            counts["skipped"] += 1
            continue
        try:
            send(delivery.channel, json.loads(delivery.payload))
        except Exception as exc:  # any channel failure is recorded on the delivery and retried next run
            attempts = delivery.attempts + 1
            delivery.update(actions=[Delivery.status.set("failed" if attempts >= MAX_ATTEMPTS else "pending"),
                                     Delivery.attempts.set(attempts), Delivery.last_error.set(str(exc)[:500])])
            down.add(delivery.channel)
            counts["failed"] += 1
            logger.warning("delivery failed", extra={"channel": delivery.channel, "attempts": attempts,
                                                     "delivery_id": delivery.delivery_id})
            metrics.add_metric(name="DeliveryFailed", unit=MetricUnit.Count, value=1)
            continue
        delivery.update(actions=[Delivery.status.set("sent"), Delivery.attempts.set(delivery.attempts + 1),
                                 Delivery.sent_at.set(iso(now))])
        counts["sent"] += 1
    return counts


def queue(delivery_key: str, event: str, facts: dict[str, Any], now: datetime) -> int:
    """Queue a message that is not about an alert (digest, report) once per key and channel."""
    created = 0
    for channel in configured_channels():
        delivery = Delivery(f"{delivery_key}#{channel}", channel=channel, event=event, payload=json.dumps(facts),
                            status="pending", created_at=iso(now))
        if aws.conditional(lambda: delivery.save(condition=Delivery.delivery_id.does_not_exist())):
            created += 1  # else queued by an earlier run already: nothing to do
    return created
