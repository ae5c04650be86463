"""Who and what a call is for: user, session, operation and tags from the X-Tollgate-* headers."""
from __future__ import annotations

from dataclasses import dataclass, field

from chalicelib import caller_names
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import Principal

VALUE_MAX = 256
TAG_KEY_MAX = 64
TAGS_MAX = 20
TAGS_HEADER_MAX = TAGS_MAX * (TAG_KEY_MAX + VALUE_MAX + 2)


@dataclass(frozen=True)
class Attribution:
    user: str | None = None
    session: str | None = None
    operation: str | None = None
    tags: dict[str, str] = field(default_factory=dict)


def _header(headers: dict[str, str], name: str) -> str | None:
    value = caller_names.from_header(headers.get(name, "")).strip()
    return caller_names.check(value, name, VALUE_MAX) or None


def parse_tags(text: str | None) -> dict[str, str]:
    """`k=v,k2=v2` → {"k": "v", "k2": "v2"}; anything else is a clear 400."""
    tags: dict[str, str] = {}
    text = caller_names.check(caller_names.from_header(text or ""), "X-Tollgate-Tags", TAGS_HEADER_MAX)
    for part in filter(None, (p.strip() for p in text.split(","))):
        key, sep, value = part.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not key or len(key) > TAG_KEY_MAX or len(value) > VALUE_MAX:
            raise InvalidRequest(f"X-Tollgate-Tags must look like `k=v,k2=v2` with keys of at most "
                                 f"{TAG_KEY_MAX} characters (got {part[:40]!r})")
        tags[key] = value
    if len(tags) > TAGS_MAX:
        raise InvalidRequest(f"X-Tollgate-Tags carries more than {TAGS_MAX} tags")
    return tags


def attribution_of(headers: dict[str, str], principal: Principal) -> Attribution:
    """Headers win over the key's defaults, so one service key can attribute calls to its end users."""
    return Attribution(
        user=_header(headers, "x-tollgate-user") or principal.user,
        session=_header(headers, "x-tollgate-session"),
        operation=_header(headers, "x-tollgate-operation"),
        tags=parse_tags(headers.get("x-tollgate-tags")),
    )
