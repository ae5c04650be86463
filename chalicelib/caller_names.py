"""Names that callers choose (models, accounts, users, sessions, tags, filters): bounded and clean.

One rule everywhere: valid Unicode (no lone surrogates, which no store can encode), no control
characters, and a length limit, so nothing a caller types can break a write or a key further down.
"""
from __future__ import annotations

import unicodedata

from chalicelib.errors import InvalidRequest

NAME_MAX = 256
GLOBAL_ID = "all"  # the scope id of all traffic, in aggregates and budgets alike: no caller names it


def problem(value: str, max_chars: int = NAME_MAX) -> str | None:
    """What is wrong with a caller's name, in words; None when it is fine."""
    if len(value) > max_chars:
        return f"is longer than {max_chars} characters"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "is not valid Unicode"
    if any(unicodedata.category(c) == "Cc" for c in value):
        return "contains control characters"
    return None


def check(value: str, what: str, max_chars: int = NAME_MAX) -> str:
    """The name as given, or a 400 that says which rule it breaks."""
    if (reason := problem(value, max_chars)) is not None:
        raise InvalidRequest(f"{what} {reason}")
    return value


def from_header(raw: str) -> str:
    """An HTTP header value as the UTF-8 its sender wrote (servers hand them over decoded as Latin-1)."""
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeEncodeError:  # already decoded beyond Latin-1: take it as it is
        return raw
    except UnicodeDecodeError:
        raise InvalidRequest("a X-Tollgate-* header is not valid UTF-8") from None
