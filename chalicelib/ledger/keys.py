"""Issue, list and revoke gateway and dashboard keys; the secret is returned once and stored hashed."""
from __future__ import annotations

from typing import Any

from pynamodb.exceptions import DoesNotExist

from chalicelib import caller_names, clock
from chalicelib.clock import iso
from chalicelib.errors import InvalidRequest, NotFound
from chalicelib.ledger.auth import hash_secret, key_cache, new_secret
from chalicelib.ledger.models import ApiKey

NAME_MAX = 128


def _text(body: dict[str, Any], name: str, required: bool = False) -> str | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value.strip() or len(value) > NAME_MAX:
        raise InvalidRequest(f"`{name}` must be a non-empty string of at most {NAME_MAX} characters")
    return caller_names.check(value.strip(), f"`{name}`", NAME_MAX)


def key_view(item: ApiKey) -> dict[str, Any]:
    """The public view of a key: never the hash, never the secret."""
    return {
        "key_id": item.key_id, "kind": item.kind, "name": item.name, "account": item.account,
        "team": item.team, "user": item.user, "created_at": item.created_at,
        "revoked_at": item.revoked_at, "active": item.revoked_at is None,
    }


def _issue(kind: str, **fields: str | None) -> dict[str, Any]:
    key_id, secret = new_secret(kind)
    item = ApiKey(key_id, kind=kind, key_hash=hash_secret(secret), created_at=iso(clock.now()), **fields)
    item.save(condition=ApiKey.key_id.does_not_exist())
    return {**key_view(item), "key": secret}


def create_gateway_key(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object with `name` and `account`")
    return _issue(
        "gateway", name=_text(body, "name", required=True), account=_text(body, "account", required=True),
        team=_text(body, "team"), user=_text(body, "user"),
    )


def create_dashboard_key(body: Any) -> dict[str, Any]:
    body = body if isinstance(body, dict) else {}
    return _issue("dashboard", name=_text(body, "name"), account=_text(body, "account"))


def list_keys() -> list[dict[str, Any]]:
    return sorted((key_view(item) for item in ApiKey.scan()), key=lambda k: k["created_at"])


def revoke_key(key_id: str) -> dict[str, Any]:
    try:
        item = ApiKey.get(key_id)
    except DoesNotExist:
        raise NotFound(f"no key with key_id {key_id!r}") from None
    if item.revoked_at is None:
        item.update(actions=[ApiKey.revoked_at.set(iso(clock.now()))])
    key_cache.clear()
    return key_view(item)


def first_created() -> str | None:
    """When the first key was made (ISO-8601), revoked ones included: no call, and no digest, predates it."""
    return min((item.created_at for item in ApiKey.scan(attributes_to_get=["created_at"])), default=None)


def names_of(key_ids: set[str]) -> dict[str, str]:
    """Keys' names by id (one BatchGetItem), for messages that name a key as people know it."""
    return {item.key_id: item.name for item in ApiKey.batch_get(sorted(key_ids), attributes_to_get=["key_id", "name"])
            if item.name} if key_ids else {}
