"""Who is calling: gateway, dashboard and admin keys; hashed at rest, compared in constant time, cached briefly."""
from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from pynamodb.exceptions import DoesNotExist

from chalicelib import secret_store
from chalicelib.errors import AuthenticationError, PermissionDenied
from chalicelib.ledger.models import ApiKey
from chalicelib.settings import get_settings

KEY_PREFIXES = {"gateway": "tg-", "dashboard": "tgd-"}


@dataclass(frozen=True)
class Principal:
    """An authenticated caller. `account` None means every account (admin or unscoped dashboard key)."""

    kind: str  # gateway | dashboard | admin
    key_id: str | None = None
    account: str | None = None
    team: str | None = None
    user: str | None = None
    rpm: int | None = None  # the key's requests per minute, if limited
    tpm: int | None = None  # the key's tokens per minute, if limited


ADMIN = Principal(kind="admin")


def hash_secret(secret: str) -> str:
    """SHA-256 is enough: secrets carry 256 random bits, so there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(kind: str) -> tuple[str, str]:
    """A fresh (key_id, secret); the key_id is the secret's public part, used for lookup."""
    key_id = secrets.token_hex(6)
    return key_id, f"{KEY_PREFIXES[kind]}{key_id}_{secrets.token_urlsafe(32)}"


def _key_id_of(secret: str, kind: str) -> str | None:
    prefix = KEY_PREFIXES[kind]
    if not secret.startswith(prefix):
        return None
    key_id, sep, rest = secret[len(prefix):].partition("_")
    return key_id if sep and key_id and rest else None


class KeyCache:
    """key_id → key item (or None for unknown ids) for a few seconds: revocation lands within the TTL."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, ApiKey | None]] = {}
        self._lock = threading.Lock()

    def get(self, key_id: str) -> ApiKey | None:
        now = time.monotonic()
        with self._lock:
            hit = self._items.get(key_id)
        if hit and hit[0] > now:
            return hit[1]
        try:
            item: ApiKey | None = ApiKey.get(key_id)
        except DoesNotExist:
            item = None
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[key_id] = (now + get_settings().key_cache_seconds, item)
        return item

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


key_cache = KeyCache()


def bearer_or_api_key(headers: dict[str, str]) -> str | None:
    """The presented secret from `Authorization: Bearer …` or `x-api-key` (lower-case header names)."""
    authorization = headers.get("authorization", "")
    if authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return headers.get("x-api-key", "").strip() or None


def presented_key(headers: dict[str, str], query: dict[str, str] | None = None) -> str | None:
    """A gateway key where each SDK puts it: `Authorization: Bearer` (OpenAI, Groq, Bedrock), `x-api-key`
    (Anthropic), `x-goog-api-key` or `?key=` (Gemini), `api-key` (Azure)."""
    return (bearer_or_api_key(headers) or headers.get("x-goog-api-key", "").strip()
            or headers.get("api-key", "").strip() or (query or {}).get("key", "").strip() or None)


def verify_key(secret: str | None, kind: str) -> Principal:
    """The principal for a gateway or dashboard secret, or AuthenticationError."""
    if not secret:
        raise AuthenticationError("missing API key: send your Tollgate key as `Authorization: Bearer`, `x-api-key`, "
                                  "`x-goog-api-key` or `api-key`")
    key_id = _key_id_of(secret, kind)
    item = key_cache.get(key_id) if key_id else None
    if item is None or item.kind != kind or not hmac.compare_digest(item.key_hash, hash_secret(secret)):
        raise AuthenticationError("invalid API key")
    if item.revoked_at:
        raise AuthenticationError("this API key has been revoked")
    return Principal(kind=kind, key_id=item.key_id, account=item.account, team=item.team, user=item.user,
                     rpm=_count(item.rpm), tpm=_count(item.tpm))


def _count(value: float | None) -> int | None:
    return None if value is None else int(value)


def is_admin_secret(secret: str | None) -> bool:
    expected = secret_store.admin_key()
    return bool(secret and expected and hmac.compare_digest(secret.encode(), expected.encode()))


def require_admin(headers: dict[str, str]) -> Principal:
    secret = bearer_or_api_key(headers)
    if not secret:
        raise AuthenticationError("missing admin key: send `Authorization: Bearer <admin key>`")
    if not is_admin_secret(secret):
        raise PermissionDenied("this endpoint needs the admin key")
    return ADMIN


def require_dashboard(headers: dict[str, str]) -> Principal:
    """`X-Dashboard-Key`: the admin key (all accounts) or a dashboard key (its account, or all)."""
    secret = headers.get("x-dashboard-key", "").strip()
    if is_admin_secret(secret):
        return ADMIN
    if not secret:
        raise AuthenticationError("missing X-Dashboard-Key header")
    return verify_key(secret, "dashboard")


def scoped_account(principal: Principal, requested: str | None) -> str | None:
    """The account a query may read: an account-scoped key sees only its own."""
    if principal.account is None:
        return requested or None
    if requested and requested != principal.account:
        raise PermissionDenied(f"this key can only read account {principal.account!r}")
    return principal.account
