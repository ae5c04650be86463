"""A gateway key's rate limits, set by the admin (`PUT /admin/keys/{key_id}/limits`): requests and tokens per
minute, enforced by the proxy with conditional counters (chalicelib/ledger/reservations.py)."""
from __future__ import annotations

from typing import Any

from chalicelib import aws
from chalicelib.errors import NotFound
from chalicelib.ledger.auth import key_cache
from chalicelib.ledger.models import ApiKey
from chalicelib.ledger.rate_limits import as_count, parse_limits


def set_limits(key_id: str, body: Any) -> dict[str, Any]:
    """Set (a positive integer) or clear (null) `rpm` and `tpm`; a field left out is kept. Effective within the
    key cache's seconds."""
    actions = [getattr(ApiKey, name).remove() if value is None else getattr(ApiKey, name).set(value)
               for name, value in parse_limits(body).items()]
    item = ApiKey(key_id)
    if not aws.conditional(lambda: item.update(actions=actions, condition=ApiKey.key_id.exists()
                                               & (ApiKey.kind == "gateway"))):
        raise NotFound(f"no gateway key with key_id {key_id!r}")
    key_cache.clear()
    return limits_view(ApiKey.get(key_id, consistent_read=True))


def limits_view(item: ApiKey) -> dict[str, Any]:
    return {"key_id": item.key_id, "rpm": as_count(item.rpm), "tpm": as_count(item.tpm)}
