"""The HTTP edge of the JSON API: Chalice requests in (query values typed, bodies parsed), Chalice responses out,
exceptions rendered once as JSON. Only app.py imports it."""
from __future__ import annotations

import functools
import json
import re
import secrets
from decimal import Decimal
from typing import Any, Callable

from chalice import Response

from chalicelib import caller_names
from chalicelib.errors import InvalidRequest, TollgateError
from chalicelib.money import JsonNumber, money
from chalicelib.query import Query

ACTOR_CHARS_MAX = 128


def headers_of(request) -> dict[str, str]:
    return {k.lower(): v for k, v in request.headers.items()}


def actor_of(request) -> str | None:
    """The person a dashboard or script names in `X-Tollgate-Actor`, if it is a fit name (else none)."""
    raw = headers_of(request).get("x-tollgate-actor", "").strip()
    try:
        actor = caller_names.from_header(raw)
    except InvalidRequest:
        return None
    return actor[:ACTOR_CHARS_MAX] if actor and caller_names.problem(actor) is None else None


def query_of(request) -> Query:
    """Query parameters, each a bounded, clean name (they end up in keys and filters)."""
    return Query({name: caller_names.check(value, f"`{name}`")
                  for name, value in (request.query_params or {}).items()})


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is no JSON number")


def json_body(request) -> Any:
    """The request's JSON body, or a 400 that says what is wrong with it. Fractions are read as Decimal, never
    float: `12345678.123456789012` keeps every digit (money.parse_amount then bounds it), and NaN or Infinity,
    which Python's json would accept, are refused."""
    raw = request.raw_body or b""
    if not raw:
        return None
    try:
        return json.loads(raw, parse_float=Decimal, parse_constant=_no_constant)
    except (ValueError, RecursionError):
        raise InvalidRequest("body is not valid JSON") from None


# A JsonNumber is written as a marked string, and the marks (with a per-process secret no caller can guess)
# are then taken off with its quotes: Python's json can write a number only by way of a float.
_SECRET = secrets.token_hex(8)
_MARKED = re.compile(r'"\\u0000' + _SECRET + r':(-?[0-9.]+)"')


def _default(value: Any) -> Any:
    if isinstance(value, JsonNumber):
        return "\x00" + _SECRET + ":" + money(value)
    if isinstance(value, Decimal):
        return format(value, "f")
    raise TypeError(f"cannot serialise {type(value).__name__}")


def json_text(body: Any) -> str:
    """The API's JSON: Decimals as strings (money), JsonNumbers as exact numbers."""
    text = json.dumps(body, default=_default)
    return _MARKED.sub(r"\1", text) if _SECRET in text else text


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(body=json_text(body), status_code=status,
                    headers={"Content-Type": "application/json", **(headers or {})})


def error_json(error: TollgateError) -> Response:
    return json_response({"error": {"type": error.error_type, "message": error.message}},
                         error.status, error.headers)


def json_api(view: Callable[..., Any]) -> Callable[..., Response]:
    """Admin and dashboard routes: return a JSON-able value (or (status, value)); errors become JSON."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Response:
        try:
            for name, value in kwargs.items():  # path parameters: account, budget_id, key_id, user, …
                caller_names.check(value, f"`{name}`")
            result = view(*args, **kwargs)
        except TollgateError as error:
            return error_json(error)
        if isinstance(result, Response):
            return result
        if isinstance(result, tuple):
            return json_response(result[1], result[0])
        return json_response(result)

    return wrapper
