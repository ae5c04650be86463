"""The audit trail of admin actions and alert decisions: who did what, when, and how it ended. Never a secret or a
body."""
from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from chalicelib import clock
from chalicelib.clock import precise
from chalicelib.ledger.auth import KEY_PREFIXES, is_admin_secret
from chalicelib.ledger.models import AuditEntry
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


def _principal(path: str, headers: dict[str, str], refused: bool) -> str:
    """`admin`, `dashboard <key id>` (the public part of a dashboard key) or `refused`."""
    if refused:
        return "refused"
    secret = headers.get("x-dashboard-key", "").strip()
    if path.startswith("/admin") or is_admin_secret(secret):
        return "admin"
    key_id = secret[len(KEY_PREFIXES["dashboard"]):].partition("_")[0]
    return f"dashboard {key_id[:TEXT_MAX]}"


def _details(body: bytes | str | None) -> dict[str, str] | None:
    try:
        parsed = json.loads(body or b"null")
    except (ValueError, RecursionError):
        return None
    if not isinstance(parsed, dict):
        return None
    kept = {k: str(parsed[k])[:TEXT_MAX] for k in KEPT_FIELDS if k in parsed and parsed[k] is not None}
    return kept or None


def record(request: Any, status: int) -> None:
    """Write one entry for an audited request (called by the HTTP middleware after the response)."""
    headers = {k.lower(): v for k, v in request.headers.items()}
    now = clock.now()
    stamp = precise(now)
    identity = (request.context or {}).get("identity", {}) if hasattr(request, "context") else {}
    refused = status in (401, 403)  # the route decided; the trail only names who it let through
    AuditEntry(stamp[:7], f"{stamp}#{uuid.uuid4().hex[:8]}", ts=stamp,
               principal=_principal(request.path, headers, refused),
               actor=(headers.get("x-tollgate-actor") or "")[:TEXT_MAX] or None,
               source_ip=identity.get("sourceIp"), user_agent=(headers.get("user-agent") or "")[:TEXT_MAX] or None,
               method=request.method, path=request.path.format(**(request.uri_params or {}))[:TEXT_MAX],
               status=status,
               details=_details(request.raw_body) if request.method in ("POST", "PUT") else None).save()


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
