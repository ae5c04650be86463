"""Per-user data requests (GDPR): export every call attributed to a user, or erase them all, archive included."""
from __future__ import annotations

from typing import Any

from chalicelib.ledger import archive
from chalicelib.ledger.calllog import call_view
from chalicelib.ledger.models import CallRecord


def export(user: str) -> dict[str, Any]:
    return {"user": user, "calls": [call_view(call) for call in CallRecord.by_user.query(user)]}


def erase(user: str) -> dict[str, Any]:
    """Delete the user's calls from the call log and every version of their archived calls.

    Each call-log deletion reaches the stream, which subtracts it from the aggregates (and does not
    archive it: only TTL expiry archives). A call that TTL expires while this runs may be archived
    after the sweep: running the erasure again a minute later removes it.
    """
    deleted = 0
    for call in CallRecord.by_user.query(user):
        call.delete()
        deleted += 1
    return {"user": user, "deleted": deleted, "archive_versions_deleted": archive.erase_user(user),
            "note": "aggregates are corrected by the stream rollup within seconds"}
