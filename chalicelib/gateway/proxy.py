"""The proxy's flow: authenticate, forward upstream, relay the answer as it arrives, meter it, log the call.
The request's checks are in request.py, the call record in record.py.

`handle` answers with an `Answer`: a whole body (errors, non-streamed calls, which carry their cost
in a header) or a stream of SSE bytes whose usage is read event by event as it passes and whose
call record is written when the upstream ends, just before the closing `: tollgate {…}` comment.
DynamoDB and SSM are reached through a worker thread, so the event loop only ever waits on sockets; the checks
before upstream run on the loop itself when their caches are warm and they need no request (`_admitted`).
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, AsyncIterator

import anyio
import httpx
from anyio.to_thread import run_sync

from chalicelib import aws, caller_names, clock, secret_store
from chalicelib.errors import (
    NotFound,
    TollgateError,
    UpstreamAnswerTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from chalicelib.gateway import failover, limits, upstream
from chalicelib.gateway.attribution import attribution_of
from chalicelib.gateway.providers import ProviderAdapter, get_adapter
from chalicelib.gateway.providers.base import Match, PreparedBody, StreamMeter
from chalicelib.gateway.record import (
    CLIENT_DISCONNECTED,
    STREAM_INCOMPLETE,
    STREAM_INTERRUPTED,
    USAGE_INVALID,
    Call,
    observe,
    record_of,
    reported_model,
    upstream_error_type,
    upstream_json,
)
from chalicelib.gateway.request import IncomingRequest, deadline_of, parse_body
from chalicelib.gateway.sse import EventTooLarge
from chalicelib.ledger import auth, calllog, signals
from chalicelib.money import money
from chalicelib.observability import logger
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.gateway import pricing


@dataclass
class Answer:
    """What goes back to the caller: a whole `body`, or `stream` (headers leave before the first event)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    deadline: float | None = None  # monotonic time by which a stream must have been delivered


async def handle(provider: str, path: str, request: IncomingRequest) -> Answer:
    """Serve one proxied call end to end. Never raises: errors answer in the caller's wire format."""
    adapter = get_adapter(provider)
    now = clock.now()
    try:
        match = adapter.resolve(path, request.method)
    except NotFound as error:  # no such endpoint: nothing to meter or log
        return unlogged_answer(adapter, error)
    adapter = match.adapter or adapter
    call = Call(provider, match.endpoint, calllog.new_call_id(now), now, time.monotonic())
    call.deadline = deadline_of(request.headers, call.started)
    try:
        prepared, upstream_headers = await _admitted(adapter, call, request, match)
        leg, response = await failover.reach(call, request, failover.Leg(adapter, match, prepared, upstream_headers))
    except TollgateError as error:
        if call.principal is None:  # an unknown caller: there is no account to log the call under
            await signals.auth_failed(error.status, request.headers)  # counted for the failed-auth alert
            return _with_call_id(error_answer(adapter, error), call)
        return await _failed(adapter, call, error)
    adapter, prepared = leg.adapter, leg.prepared
    call.upstream_reached = True
    call.upstream_latency_ms = call.elapsed_ms()
    headers = {**adapter.response_headers(upstream.response_headers(response)),
               "Content-Type": adapter.answer_content_type(response.headers.get("content-type", "application/json")),
               **failover.answered_by(call)}
    if (call.stream and call.endpoint.metered and response.status_code < 400
            and adapter.streams(headers["Content-Type"])):
        call.status = response.status_code
        meter = adapter.stream_meter(call.endpoint, prepared or PreparedBody(b""))
        headers.update(_limit_headers(call, None))
        relay = _relay(adapter, call, response, meter)
        return _with_call_id(Answer(response.status_code, headers, stream=relay, deadline=call.deadline), call)
    return await _whole(adapter, call, response, headers, prepared)


async def _admitted(adapter: ProviderAdapter, call: Call, request: IncomingRequest,
                    match: Match) -> tuple[PreparedBody | None, dict]:
    """`_admit` on the event loop when it makes no AWS request (key, budgets, rate limits and secret cached, nothing
    to reserve): no hop to a worker thread. Otherwise it stops at its first request, before anything is held or
    cached, and runs again from the start in a worker thread. (A process serving several calls at once, as the local stack
    does, may find the budget or rate-limit cache expired while a worker thread reloads it: the loop then waits
    for that one read. A Lambda environment serves one call at a time.)"""
    try:
        with aws.no_requests():
            return _admit(adapter, call, request, match)
    except aws.WouldRequest:
        return await run_sync(_admit, adapter, call, request, match)


def _admit(adapter: ProviderAdapter, call: Call, request: IncomingRequest,
           match: Match) -> tuple[PreparedBody | None, dict]:
    """Who is calling, is the body sound, is a hard limit hit: all before anything goes upstream.

    A cold key cache, budget cache or secret is a DynamoDB or SSM request, and so is a hard limit's reservation.
    """
    call.principal = auth.verify_key(auth.presented_key(request.headers, request.query), "gateway")
    prepared = body = None
    if match.model is not None:  # before it is the call's: a refused name is never logged or counted
        caller_names.check(match.model, "the model in the path")
    call.model, call.stream = match.model, match.stream is True
    if call.endpoint.method == "POST":
        body = parse_body(request, get_settings().max_body_bytes, adapter.model_in_body and match.model is None)
        call.model = call.model or body.get("model")
        call.stream = call.stream or body.get("stream") is True
        prepared = adapter.prepare_body(call.endpoint, request.body, body)
    call.attribution = attribution_of(request.headers, call.principal)  # after the body: a refusal keeps the model
    if call.endpoint.metered:
        call.limit = limits.check(call.principal, adapter.name, call.model, call.now,
                                  call.attribution.user)
        call.limit = limits.reserve(call, request.body, body)  # the one AWS request of a hard-limited call
    headers = adapter.upstream_headers(request.headers, secret_store.provider_key(adapter.name, adapter.needs_key))
    if call.stream:
        headers["accept-encoding"] = "identity"  # a compressed stream would reach us in lumps
    return prepared, headers


async def _whole(adapter: ProviderAdapter, call: Call, response: httpx.Response, headers: dict[str, str],
                 prepared: PreparedBody | None = None) -> Answer:
    """A non-streamed answer (or an error, or an upstream that ignored `stream`): read it, meter it, log it."""
    limit = get_settings().max_answer_bytes
    chunks: list[bytes] = []
    size = 0
    try:
        with anyio.fail_after(max(call.deadline - time.monotonic(), 0.001)):
            async for chunk in response.aiter_bytes():
                call.first_byte_at = call.first_byte_at or time.monotonic()
                chunks.append(chunk)
                size += len(chunk)
                if size > limit:
                    return await _failed(adapter, call, UpstreamAnswerTooLarge(
                        f"the upstream answer is larger than {limit} bytes; ask for it streamed"))
    except TimeoutError:
        return await _failed(adapter, call, UpstreamTimeout("upstream did not finish its answer in time"))
    except httpx.TransportError:
        if not chunks:
            return await _failed(adapter, call, UpstreamUnreachable("upstream closed the connection"))
        call.error_type = STREAM_INTERRUPTED
    finally:
        await response.aclose()
    body = b"".join(chunks)
    call.status = response.status_code
    if call.status >= 400:
        call.error_type = upstream_error_type(body, call.status, response.headers.get("x-amzn-errortype"))
    elif call.endpoint.metered:
        parsed = upstream_json(body)
        usage, model = adapter.parse_usage(call.endpoint, parsed)
        call.usage = adapter.with_request(usage, prepared)
        call.model = reported_model(model, call.model)
        call.provider_cost_usd = adapter.provider_cost(parsed)
    answer = _with_call_id(Answer(call.status, headers, body), call)
    if call.endpoint.metered:
        price = await _log(call)
        if price.priced:
            answer.headers["X-Tollgate-Cost-USD"] = money(price.cost_usd)
        answer.headers.update(_limit_headers(call, price.cost_usd))
    return answer


async def _relay(adapter: ProviderAdapter, call: Call, response: httpx.Response,
                 meter: StreamMeter) -> AsyncIterator[bytes]:
    """Each upstream event goes to the caller as it arrives; at the end the call is logged, then the trailer.

    If the caller goes away, the consumer stops iterating (or cancels it mid-read): the upstream
    request is closed at once and the call is logged with what was seen so far.
    """
    decoder = adapter.stream_decoder()
    deadline = call.deadline
    chunks = response.aiter_bytes()
    try:
        while True:
            with anyio.move_on_after(deadline - time.monotonic()) as timer:
                chunk = await anext(chunks, None)
            if timer.cancelled_caught:
                call.error_type = STREAM_INTERRUPTED  # the gateway's own deadline, before Lambda's
                break
            events = decoder.feed(chunk) if chunk is not None else decoder.flush()
            for event in events:
                started = meter.content_started
                forward = meter.see(event)
                if meter.content_started and not started:
                    call.first_byte_at = time.monotonic()
                if forward:
                    yield event.wire()
            if chunk is None:
                break
    except (httpx.TransportError, EventTooLarge):
        call.error_type = STREAM_INTERRUPTED
    except (GeneratorExit, anyio.get_cancelled_exc_class()):  # the caller has gone, or read too slowly
        if time.monotonic() >= deadline:
            call.error_type = STREAM_INTERRUPTED
        elif not meter.complete:  # SDKs may hang up as soon as they have the last event: that is no loss
            call.error_type = CLIENT_DISCONNECTED
        raise
    except Exception:  # a bug must not leave the call unlogged; the caller keeps what it got
        logger.exception("stream relay failed", extra={"call_id": call.call_id})
        call.error_type = STREAM_INTERRUPTED
    finally:
        with anyio.CancelScope(shield=True):
            await response.aclose()
            if call.error_type is None and not meter.complete:  # ended cleanly, but before its last event
                call.error_type = STREAM_INCOMPLETE
            call.usage, model = meter.usage()
            call.model = reported_model(model, call.model)
            call.provider_cost_usd = meter.provider_cost()
            price = await _log(call)
    trailer = {"call_id": call.call_id, "cost_usd": money(price.cost_usd) if price.priced else None}
    if trailer_line := adapter.trailer("tollgate " + json.dumps(trailer)):
        yield trailer_line


async def _failed(adapter: ProviderAdapter, call: Call, error: TollgateError) -> Answer:
    """An error of the gateway's own, in the caller's wire format, logged like any call."""
    answer = _with_call_id(error_answer(adapter, error), call)
    call.status, call.error_type = error.status, error.error_type
    call.upstream_reached = call.upstream_reached or (
        isinstance(error, UpstreamError) and not isinstance(error, UpstreamUnreachable))
    if call.endpoint.metered:
        await _log(call)
    return answer


async def _log(call: Call) -> pricing.Price:
    """Price what was used (all of it seen, or a stream's usage so far) and write the call record.

    The provider's own statement of the cost is the price (ours kept beside it); without one, ours (an
    override, else genai-prices). Implausible usage is never priced, whatever is stated.

    The write is a DynamoDB request, so it runs in a worker thread.
    """
    if call.usage is not None and not call.usage.plausible():  # never priced, never summed into a budget
        call.usage, call.error_type = None, call.error_type or USAGE_INVALID
    # Here, not at the top: genai-prices and pydantic cost the proxy's cold start ~50 ms before GET /ready,
    # and a stream needs them only once its last event has gone to the caller.
    from chalicelib.gateway import pricing

    price = pricing.price_call(call.provider, call.model, call.usage, call.now,
                               provider_cost_usd=call.provider_cost_usd)
    record = record_of(call, price, call.elapsed_ms())
    outcome = await run_sync(limits.write_call, record, call.limit)  # settles the call's holds with it
    tokens = call.usage.total_input_tokens + call.usage.total_output_tokens if call.usage else 0
    limits.note_served(call.principal, call.provider, call.model, price.cost_usd, tokens, clock.now(),
                       call.attribution.user)
    observe(record, outcome)
    return price


def error_answer(adapter: ProviderAdapter, error: TollgateError) -> Answer:
    body = json.dumps(adapter.error_body(error)).encode()
    headers = {"Content-Type": "application/json", **error.headers, **adapter.error_headers(error)}
    return Answer(error.status, headers, body)


def unlogged_answer(adapter: ProviderAdapter, error: TollgateError) -> Answer:
    """An error before there is a call to log (no such endpoint, a body that never arrived)."""
    answer = error_answer(adapter, error)
    answer.headers.update(INERT)
    answer.headers["X-Tollgate-Call-Id"] = calllog.new_call_id(clock.now())
    return answer


# An upstream body that is not JSON (an HTML error page, say) must not run as a page of the gateway's origin.
INERT = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}


def _with_call_id(answer: Answer, call: Call) -> Answer:
    """Every answer names its call, and is inert if a browser opens it."""
    answer.headers.update(INERT)
    answer.headers["X-Tollgate-Call-Id"] = call.call_id
    return answer


def _limit_headers(call: Call, cost_usd: Decimal | None) -> dict[str, str]:
    return limits.remaining_header(call.limit, cost_usd) if call.limit is not None else {}


