"""The caller's request, before anything goes upstream: its body checked just enough to meter it, and the
deadline by which the whole call must be over."""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import accumulate
from typing import Any

from chalicelib import caller_names, clock
from chalicelib.errors import InvalidRequest, PayloadTooLarge
from chalicelib.settings import get_settings

JSON_TYPES = ("application/json", "")
RECORD_SECONDS = 10  # kept back from the Lambda invocation's end to write the call record (or spill it)
JSON_DEPTH_MAX = 256  # refused the same everywhere, whatever the interpreter's recursion limit
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    headers: dict[str, str]  # lower-case names
    body: bytes
    query: dict[str, str] = field(default_factory=dict)  # the URL's query (Gemini's `alt`, Azure's `api-version`)


def deadline_of(headers: dict[str, str], started: float) -> float:
    """When the call must end: `TOLLGATE_UPSTREAM_DEADLINE_SECONDS` from its start, or sooner if the Lambda
    invocation ends sooner. The Web Adapter passes the invocation's context as `x-amzn-lambda-context`
    (JSON, `deadline` in epoch milliseconds); a caller who forges it can only shorten their own call."""
    deadline = started + get_settings().upstream_deadline_seconds
    try:
        lambda_ends = float(json.loads(headers.get("x-amzn-lambda-context", "{}"))["deadline"]) / 1000
    except (ValueError, TypeError, KeyError):
        return deadline
    return min(deadline, started + (lambda_ends - clock.now().timestamp()) - RECORD_SECONDS)


def parse_body(request: IncomingRequest, max_bytes: int, model_in_body: bool = True) -> dict[str, Any]:
    """The caller's JSON body, checked just enough to meter it; the provider validates the rest.
    (`model_in_body` False: the path names the model, so the body need not.)"""
    if len(request.body) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than the limit of {max_bytes} bytes")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise InvalidRequest(f"Content-Type must be application/json, not {content_type!r}")
    if _json_depth(request.body) > JSON_DEPTH_MAX:
        raise InvalidRequest(f"request body is nested too deeply (more than {JSON_DEPTH_MAX} levels)")
    try:
        body = json.loads(request.body.decode("utf-8"))
    except UnicodeDecodeError:
        raise InvalidRequest("request body is not valid UTF-8") from None
    except RecursionError:
        raise InvalidRequest("request body is nested too deeply") from None
    except ValueError as exc:
        raise InvalidRequest(f"request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise InvalidRequest("request body must be a JSON object")
    if model_in_body or "model" in body:
        if not isinstance(body.get("model"), str) or not body["model"].strip():
            raise InvalidRequest("`model` is required and must be a string")
        caller_names.check(body["model"], "`model`")
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise InvalidRequest("`stream` must be true or false")
    return body


def _json_depth(raw: bytes) -> int:
    """How deeply a JSON text nests (or more: an upper bound when that is under the limit), from its
    brackets outside strings, without parsing it."""
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    opened = brackets.count(b"[") + brackets.count(b"{")
    if opened <= JSON_DEPTH_MAX:  # the usual body: it cannot nest deeper than it opens
        return opened
    return max(accumulate(1 if b in b"[{" else -1 for b in brackets))
