"""Per-user data requests (GDPR): export every call attributed to a user, or erase them all."""
from __future__ import annotations

from typing import Any

from .api import call_view
from .models import CallRecord


def export(user: str) -> dict[str, Any]:
    return {"user": user, "calls": [call_view(call) for call in CallRecord.by_user.query(user)]}


def erase(user: str) -> dict[str, Any]:
    """Delete the user's calls. Each deletion reaches the stream, which subtracts it from the aggregates."""
    deleted = 0
    for call in CallRecord.by_user.query(user):
        call.delete()
        deleted += 1
    return {"user": user, "deleted": deleted,
            "note": "aggregates are corrected by the stream rollup within seconds"}
