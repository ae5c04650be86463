"""A gateway key's rate limits, set by the admin (`PUT /admin/keys/{key_id}/limits`): requests and tokens per
minute, enforced by the proxy with conditional counters (chalicelib/ledger/reservations.py)."""
from __future__ import annotations

from typing import Any


from chalicelib import aws
from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.ledger.auth import key_cache
from chalicelib.ledger.models import ApiKey

LIMIT_MAX = 10 ** 12


def set_limits(key_id: str, body: Any) -> dict[str, Any]:
    """Set (a positive integer) or clear (null) `rpm` and `tpm`; a field left out is kept. Effective within the
    key cache's seconds."""
    if not isinstance(body, dict) or not body or set(body) - {"rpm", "tpm"}:
        raise InvalidRequest("body must be a JSON object with `rpm` and/or `tpm` (integers, or null to remove)")
    actions = []
    for name in ("rpm", "tpm"):
        if name not in body:
            continue
        value, attribute = body[name], getattr(ApiKey, name)
        if value is None:
            actions.append(attribute.remove())
        elif type(value) is int and 0 < value < LIMIT_MAX:
            actions.append(attribute.set(value))
        else:
            raise InvalidRequest(f"`{name}` must be a positive integer below {LIMIT_MAX:,}, or null to remove it")
    item = ApiKey(key_id)
    if not aws.conditional(lambda: item.update(actions=actions, condition=ApiKey.key_id.exists()
                                               & (ApiKey.kind == "gateway"))):
        raise NotFound(f"no gateway key with key_id {key_id!r}")
    key_cache.clear()
    return limits_view(ApiKey.get(key_id, consistent_read=True))


def limits_view(item: ApiKey) -> dict[str, Any]:
    return {"key_id": item.key_id, "rpm": _count(item.rpm), "tpm": _count(item.tpm)}


def _count(value: float | None) -> int | None:
    return None if value is None else int(value)


