"""Reaching a provider, and the next one when it fails: the fallback rules (gateway/fallbacks.py) applied.

A target is tried after the one before answered with a status the rule names (429, 5xx), could not be reached
or timed out, all before any byte went to the caller: the first answer that is not such a failure, or the last
target's, is what the caller gets. Attempts run one after another within the call's deadline. Only the model
is rewritten in the caller's body; targets share its wire format (the OpenAI family among themselves).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx
from anyio.to_thread import run_sync

from chalicelib import secret_store
from chalicelib.errors import UpstreamError, UpstreamTimeout, UpstreamUnreachable
from chalicelib.gateway import fallbacks, upstream
from chalicelib.gateway.providers import get_adapter
from chalicelib.gateway.providers.base import Match, PreparedBody, ProviderAdapter
from chalicelib.ledger import fallback_cache
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.gateway.record import Call
    from chalicelib.gateway.request import IncomingRequest

FAULTS = {UpstreamTimeout: "timeout", UpstreamUnreachable: "unreachable"}


@dataclass
class Leg:
    """One way to send the call: which provider, at which path, with which body and headers."""

    adapter: ProviderAdapter
    match: Match
    prepared: PreparedBody | None
    headers: dict[str, str]


async def reach(call: Call, request: IncomingRequest, leg: Leg) -> tuple[Leg, httpx.Response]:
    """The answer's headers from the first target that does not fail in a way the call's rule retries.

    Raises the last failure's error when every target failed before answering. The rules are read only once an
    attempt has failed (a call that did not fail makes no request for them); then every attempt is noted on
    `call.attempts`, and `call.provider` / `call.model` name who was asked last.
    """
    rule, targets = None, None
    while True:
        started = time.monotonic()
        response, error = None, None
        try:
            response = await _open(leg, request)
        except UpstreamError as failed:
            error = failed
        if error is not None:
            failure: int | str | None = FAULTS.get(type(error), error.status)
            status, error_type = error.status, error.error_type
        else:
            failure = response.status_code if response.status_code >= 400 else None
            status, error_type = response.status_code, failure and f"upstream_{failure}"
        if failure is not None and targets is None and call.endpoint.metered:
            rule = fallbacks.rule_for(await run_sync(fallback_cache.rules), call.provider, call.model)
            targets = list(rule.targets) if rule is not None else []
        if rule is not None:
            _note(call, status, error_type, started)
        if failure is None or not targets or not fallbacks.retryable(failure, rule) or time.monotonic() >= call.deadline:
            if error is not None:
                raise error
            return leg, response
        if response is not None:
            await response.aclose()
        target = targets.pop(0)
        leg = await run_sync(_leg_for, call, request, leg, target.provider, target.model)
        call.provider, call.model = target.provider, target.model


async def _open(leg: Leg, request: IncomingRequest) -> httpx.Response:
    adapter, match = leg.adapter, leg.match
    url = adapter.upstream_url(get_settings().base_url(adapter.name), match, request.query)
    body = leg.prepared.body if leg.prepared else None
    headers = adapter.signed(match.endpoint.method, url, leg.headers, body)
    return await upstream.open_stream(match.endpoint.method, url, headers, body)


def _note(call: Call, status: int, error_type: str | None, started: float) -> None:
    call.attempts = call.attempts or []
    call.attempts.append({"provider": call.provider, "model": call.model, "status": status,
                          "error_type": error_type, "latency_ms": round((time.monotonic() - started) * 1000)})


def _leg_for(call: Call, request: IncomingRequest, leg: Leg, provider: str, model: str) -> Leg:
    """The same call to another provider and model: its endpoint, the caller's body with only the model changed.
    (In a worker thread: the provider's key may be an SSM read.)"""
    adapter = get_adapter(provider)
    endpoint = adapter.endpoint(leg.match.endpoint.path)
    match = Match(endpoint, adapter.upstream_prefix + endpoint.path)
    prepared = leg.prepared
    if prepared is not None:
        body: dict[str, Any] = json.loads(prepared.body)
        body["model"] = model
        prepared = adapter.prepare_body(endpoint, json.dumps(body).encode(), body)
        if leg.prepared.injected_stream_usage and not prepared.injected_stream_usage:
            prepared = PreparedBody(prepared.body, injected_stream_usage=True)
    headers = adapter.upstream_headers(request.headers, secret_store.provider_key(provider, adapter.needs_key))
    if call.stream:
        headers["accept-encoding"] = "identity"
    return Leg(adapter, match, prepared, headers)


def answered_by(call: Call) -> dict[str, str]:
    """Who answered, for the caller: the provider, the model asked of it, and how many attempts it took."""
    headers = {"X-Tollgate-Provider": call.provider, "X-Tollgate-Attempts": str(len(call.attempts or ()) or 1)}
    if call.model:
        headers["X-Tollgate-Model"] = call.model if call.model.isascii() else quote(call.model)
    return headers
