"""The audit trail of admin actions and alert decisions: who did what, when, and how it ended. Never a secret or a
body."""
from __future__ import annotations

import json
import unicodedata
import uuid
from datetime import timedelta
from typing import Any

from chalicelib import caller_names, clock
from chalicelib.clock import precise
from chalicelib.ledger.auth import KEY_PREFIXES, is_admin_secret
from chalicelib.ledger.models import AuditEntry
from chalicelib.observability import MetricUnit, flush_metrics, logger, metrics
from chalicelib.query import Query

# Body fields worth keeping; anything else (and every secret) stays out of the trail.
KEPT_FIELDS = ("name", "account", "team", "user", "scope", "scope_id", "period", "mode", "limit_usd", "limit_tokens",
               "window_minutes", "from", "to", "day", "fix", "kind", "amount_usd", "note", "channel")
TEXT_MAX = 256
ALERT_ACTIONS = ("/ack", "/resolve")  # POST /api/alerts/{alert_id}/…: a person's decision about an alert


def is_audited(method: str, path: str) -> bool:
    """Every /admin request, and every acknowledgement or resolution of an alert."""
    return path.startswith("/admin") or (method == "POST" and path.startswith("/api/alerts/")
                                         and path.endswith(ALERT_ACTIONS))


def _text(value: Any) -> str | None:
    """What the trail keeps of a caller's text: bounded, and storable whatever was sent (a lone surrogate, a
    control character), so recording a request never fails on what the request held."""
    text = str(value)[:TEXT_MAX]
    if caller_names.problem(text) is None:
        return text or None
    cleaned = text.encode("utf-8", "replace").decode("utf-8")
    return "".join("?" if unicodedata.category(c) == "Cc" else c for c in cleaned) or None


def _principal(path: str, headers: dict[str, str], refused: bool) -> str:
    """`admin`, `dashboard <key id>` (the public part of a dashboard key) or `refused`."""
    if refused:
        return "refused"
    secret = headers.get("x-dashboard-key", "").strip()
    if path.startswith("/admin") or is_admin_secret(secret):
        return "admin"
    key_id = secret[len(KEY_PREFIXES["dashboard"]):].partition("_")[0]
    return f"dashboard {_text(key_id) or ''}"


def _details(body: bytes | str | None) -> dict[str, str] | None:
    try:
        parsed = json.loads(body or b"null")
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    kept = {k: _text(parsed[k]) for k in KEPT_FIELDS if k in parsed and parsed[k] is not None}
    return {k: v for k, v in kept.items() if v is not None} or None


def record(request: Any, status: int) -> None:
    """Write one entry for an audited request (called by the HTTP middleware after the response). The answer is
    decided already: a write that fails is tried once more, then counted (`AuditWriteFailed`) and logged."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    now = clock.now()
    stamp = precise(now)
    identity = (request.context or {}).get("identity", {}) if hasattr(request, "context") else {}
    refused = status in (401, 403)  # the route decided; the trail only names who it let through
    entry = AuditEntry(stamp[:7], f"{stamp}#{uuid.uuid4().hex[:8]}", ts=stamp,
                       principal=_principal(request.path, headers, refused),
                       actor=_text(headers.get("x-tollgate-actor") or ""),
                       source_ip=_text(identity.get("sourceIp") or ""),
                       user_agent=_text(headers.get("user-agent") or ""),
                       method=request.method, path=_text(request.path.format(**(request.uri_params or {}))),
                       status=status,
                       details=_details(request.raw_body) if request.method in ("POST", "PUT") else None)
    for attempt in range(2):
        try:
            entry.save()
            return
        except Exception:  # noqa: BLE001 - whatever the store says, the caller's answer stands
            if attempt == 0:
                continue
            logger.exception("audit entry not stored", extra={"method": entry.method, "path": entry.path,
                                                               "status": status, "ts": stamp})
            metrics.add_metric(name="AuditWriteFailed", unit=MetricUnit.Count, value=1)
            flush_metrics()


def entry_view(entry: AuditEntry) -> dict[str, Any]:
    return {"ts": entry.ts, "principal": entry.principal, "actor": entry.actor, "source_ip": entry.source_ip,
            "user_agent": entry.user_agent, "method": entry.method, "path": entry.path, "status": entry.status,
            "details": entry.details.as_dict() if entry.details else None}


def list_entries(params: Query) -> dict[str, Any]:
    """`GET /admin/audit?limit=100`: newest first, over this month and the one before."""
    limit = params.integer("limit", 100, 1, 1000)
    now = clock.now()
    months = [now.strftime("%Y-%m"), (now.replace(day=1) - timedelta(days=1)).strftime("%Y-%m")]
    entries: list[AuditEntry] = []
    for month in months:
        entries += list(AuditEntry.query(month, scan_index_forward=False, limit=limit - len(entries)))
        if len(entries) >= limit:
            break
    return {"entries": [entry_view(e) for e in entries]}
