"""The proxy step: authenticate, forward upstream, relay the answer as it arrives, meter it, log the call.

`handle` answers with an `Answer`: a whole body (errors, non-streamed calls, which carry their cost
in a header) or a stream of SSE bytes whose usage is read event by event as it passes and whose
call record is written when the upstream ends, just before the closing `: tollgate {…}` comment.
DynamoDB and SSM are reached through a worker thread, so the event loop only ever waits on sockets.
"""
from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from itertools import accumulate
from typing import TYPE_CHECKING, Any, AsyncIterator

import anyio
import httpx
from anyio.to_thread import run_sync

from chalicelib import names, secret_store
from chalicelib.errors import (
    InvalidRequest,
    PayloadTooLarge,
    TollgateError,
    UpstreamAnswerTooLarge,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from chalicelib.gateway import limits, upstream
from chalicelib.gateway.attribution import Attribution, attribution_of
from chalicelib.gateway.providers import Endpoint, ProviderAdapter, get_adapter
from chalicelib.gateway.providers.base import PreparedBody, StreamMeter
from chalicelib.gateway.sse import EventTooLarge, SseDecoder, comment
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.ledger import auth, calllog, signals
from chalicelib.money import money
from chalicelib.observability import MetricUnit, flush_metrics, logger, metrics
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.gateway import pricing

JSON_TYPES = ("application/json", "")
# How a stream that did not end normally is logged.
CLIENT_DISCONNECTED = "client_disconnected"
STREAM_INTERRUPTED = "stream_interrupted"
USAGE_INVALID = "usage_invalid"
RECORD_SECONDS = 10  # kept back from the Lambda invocation's end to write the call record (or spill it)
JSON_DEPTH_MAX = 256  # refused the same everywhere, whatever the interpreter's recursion limit
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_JSON_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"')


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class Answer:
    """What goes back to the caller: a whole `body`, or `stream` (headers leave before the first event)."""

    status: int
    headers: dict[str, str]
    body: bytes = b""
    stream: AsyncIterator[bytes] | None = None
    deadline: float | None = None  # monotonic time by which a stream must have been delivered


@dataclass
class Call:
    """What happened on one call, filled in as it goes; becomes the answer's headers and the call record."""

    provider: str
    endpoint: Endpoint
    call_id: str
    now: datetime
    started: float
    principal: auth.Principal | None = None
    attribution: Attribution = field(default_factory=Attribution)
    model: str | None = None
    stream: bool = False
    usage: TokenUsage | None = None
    status: int = 0
    error_type: str | None = None
    upstream_reached: bool = False
    upstream_latency_ms: int | None = None
    first_byte_at: float | None = None  # time to first body byte, or to the first content event of a stream
    provider_cost_usd: Decimal | None = None
    limit: limits.LimitCheck | None = None
    deadline: float = float("inf")  # monotonic time by which the call must be over, record written

    def elapsed_ms(self, at: float | None = None) -> int:
        return round(((time.monotonic() if at is None else at) - self.started) * 1000)


async def handle(provider: str, path: str, request: IncomingRequest) -> Answer:
    """Serve one proxied call end to end. Never raises: errors answer in the caller's wire format."""
    adapter = get_adapter(provider)
    now = datetime.now(timezone.utc)
    call = Call(provider, adapter.endpoint(path), calllog.new_call_id(now), now, time.monotonic())
    call.deadline = deadline_of(request.headers, call.started)
    try:
        prepared, upstream_headers = await run_sync(_admit, adapter, call, request)
        response = await upstream.open_stream(
            call.endpoint.method, adapter.upstream_url(get_settings().base_url(provider), call.endpoint),
            upstream_headers, prepared.body if prepared else None)
    except TollgateError as error:
        if call.principal is None:  # an unknown caller: there is no account to log the call under
            await signals.auth_failed(error.status, request.headers)  # counted for the failed-auth alert
            return _with_call_id(error_answer(adapter, error), call)
        return await _failed(adapter, call, error)
    call.upstream_reached = True
    call.upstream_latency_ms = call.elapsed_ms()
    headers = {**adapter.response_headers(upstream.response_headers(response)),
               "Content-Type": response.headers.get("content-type", "application/json")}
    if (call.stream and call.endpoint.metered and response.status_code < 400
            and "text/event-stream" in headers["Content-Type"]):
        call.status = response.status_code
        meter = adapter.stream_meter(call.endpoint, prepared or PreparedBody(b""))
        headers.update(_limit_headers(call, None))
        answer = Answer(response.status_code, headers, stream=_relay(call, response, meter), deadline=call.deadline)
        return _with_call_id(answer, call)
    return await _whole(adapter, call, response, headers)


def deadline_of(headers: dict[str, str], started: float) -> float:
    """When the call must end: `TOLLGATE_UPSTREAM_DEADLINE_SECONDS` from its start, or sooner if the Lambda
    invocation ends sooner. The Web Adapter passes the invocation's context as `x-amzn-lambda-context`
    (JSON, `deadline` in epoch milliseconds); a caller who forges it can only shorten their own call."""
    deadline = started + get_settings().upstream_deadline_seconds
    try:
        lambda_ends = float(json.loads(headers.get("x-amzn-lambda-context", "{}"))["deadline"]) / 1000
    except (ValueError, TypeError, KeyError):
        return deadline
    return min(deadline, started + (lambda_ends - time.time()) - RECORD_SECONDS)


def _admit(adapter: ProviderAdapter, call: Call, request: IncomingRequest) -> tuple[PreparedBody | None, dict]:
    """Who is calling, is the body sound, is a hard limit hit: all before anything goes upstream.

    Runs in a worker thread: a cold key cache, budget cache or secret is a DynamoDB or SSM request.
    """
    call.principal = auth.verify_key(auth.bearer_or_api_key(request.headers), "gateway")
    prepared = None
    if call.endpoint.method == "POST":
        body = parse_body(request, get_settings().max_body_bytes)
        call.model = body["model"]
        call.stream = body.get("stream") is True
        prepared = adapter.prepare_body(call.endpoint, request.body, body)
    call.attribution = attribution_of(request.headers, call.principal)  # after the body: a refusal keeps the model
    if call.endpoint.metered:
        call.limit = limits.check(call.principal, adapter.name, call.model, call.now.replace(tzinfo=None),
                                  call.attribution.user)
    headers = adapter.upstream_headers(request.headers, secret_store.provider_key(adapter.name))
    if call.stream:
        headers["accept-encoding"] = "identity"  # a compressed stream would reach us in lumps
    return prepared, headers


async def _whole(adapter: ProviderAdapter, call: Call, response: httpx.Response, headers: dict[str, str]) -> Answer:
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
        call.error_type = _upstream_error_type(body, call.status)
    elif call.endpoint.metered:
        parsed = _loads(body)
        call.usage, model = adapter.parse_usage(call.endpoint, parsed)
        call.model = _reported_model(model, call.model)
        call.provider_cost_usd = adapter.provider_cost(parsed)
    answer = _with_call_id(Answer(call.status, headers, body), call)
    if call.endpoint.metered:
        price = await _log(call)
        if price.priced:
            answer.headers["X-Tollgate-Cost-USD"] = money(price.cost_usd)
        answer.headers.update(_limit_headers(call, price.cost_usd))
    return answer


async def _relay(call: Call, response: httpx.Response, meter: StreamMeter) -> AsyncIterator[bytes]:
    """Each upstream event goes to the caller as it arrives; at the end the call is logged, then the trailer.

    If the caller goes away, the consumer stops iterating (or cancels it mid-read): the upstream
    request is closed at once and the call is logged with what was seen so far.
    """
    decoder = SseDecoder()
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
            call.usage, model = meter.usage()
            call.model = _reported_model(model, call.model)
            call.provider_cost_usd = meter.provider_cost()
            price = await _log(call)
    trailer = {"call_id": call.call_id, "cost_usd": money(price.cost_usd) if price.priced else None}
    yield comment("tollgate " + json.dumps(trailer))


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

    Our price (an override, else genai-prices) wins; the provider's own statement of the cost is the
    price only when we know none for the model. Implausible usage is never priced, whatever is stated.

    The write is a DynamoDB request, so it runs in a worker thread.
    """
    if call.usage is not None and not call.usage.plausible():  # never priced, never summed into a budget
        call.usage, call.error_type = None, call.error_type or USAGE_INVALID
    # Here, not at the top: genai-prices and pydantic cost the proxy's cold start ~50 ms before GET /ready,
    # and a stream needs them only once its last event has gone to the caller.
    from chalicelib.gateway import pricing

    price = pricing.price_call(call.provider, call.model, call.usage, call.now,
                               provider_cost_usd=call.provider_cost_usd)
    record = _record(call, price, call.elapsed_ms())
    outcome = await run_sync(calllog.write, record)
    tokens = call.usage.total_input_tokens + call.usage.total_output_tokens if call.usage else 0
    limits.note_served(call.principal, call.provider, call.model, price.cost_usd, tokens, datetime.now(timezone.utc),
                       call.attribution.user)
    _observe(record, outcome)
    return price


def parse_body(request: IncomingRequest, max_bytes: int) -> dict[str, Any]:
    """The caller's JSON body, checked just enough to meter it; the provider validates the rest."""
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
    if not isinstance(body.get("model"), str) or not body["model"].strip():
        raise InvalidRequest("`model` is required and must be a string")
    names.check(body["model"], "`model`")
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


def error_answer(adapter: ProviderAdapter, error: TollgateError) -> Answer:
    body = json.dumps(adapter.error_body(error)).encode()
    return Answer(error.status, {"Content-Type": "application/json", **error.headers}, body)


def _reported_model(reported: str | None, requested: str | None) -> str | None:
    """The model the provider says answered, unless it is no fit name (then the one asked for)."""
    return reported if reported and names.problem(reported) is None else requested


# An upstream body that is not JSON (an HTML error page, say) must not run as a page of the gateway's origin.
INERT = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}


def _with_call_id(answer: Answer, call: Call) -> Answer:
    """Every answer names its call, and is inert if a browser opens it."""
    answer.headers.update(INERT)
    answer.headers["X-Tollgate-Call-Id"] = call.call_id
    return answer


def _limit_headers(call: Call, cost_usd: Decimal | None) -> dict[str, str]:
    return limits.remaining_header(call.limit, cost_usd) if call.limit is not None else {}


def _loads(body: bytes) -> Any:
    """An upstream body's JSON, fractions as Decimal: a provider's statement of cost stays exact."""
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        return None


def _upstream_error_type(body: bytes, status: int) -> str:
    """The provider's own error type (both wire formats nest it under `error.type`)."""
    parsed = _loads(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        return error["type"][:64]
    return f"upstream_{status}"


def output_tokens_per_s(usage: TokenUsage | None, latency_ms: int, ttft_ms: int | None) -> float | None:
    """Generation speed of a stream: output and reasoning tokens over the time after the first token."""
    if usage is None or ttft_ms is None or latency_ms <= ttft_ms:
        return None
    return round(usage.total_output_tokens * 1000 / (latency_ms - ttft_ms), 1)


def _record(call: Call, price: pricing.Price, latency_ms: int):
    usage = call.usage or TokenUsage()
    principal, attribution = call.principal, call.attribution
    ttft_ms = call.elapsed_ms(call.first_byte_at) if call.first_byte_at is not None else None
    return calllog.new_record(
        call.call_id, call.now, principal.account,
        provider=call.provider, endpoint=call.endpoint.path, model=call.model, operation=attribution.operation,
        team=principal.team, key_id=principal.key_id, user=attribution.user, session=attribution.session,
        tags=attribution.tags or None, status=call.status, error_type=call.error_type,
        upstream_reached=call.upstream_reached, stream=call.stream,
        input_tokens=usage.input_tokens, cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens, reasoning_tokens=usage.reasoning_tokens,
        usage_reported=call.usage is not None and call.error_type is None, cost_usd=price.cost_usd,
        priced=price.priced, price_source=price.source, price_version=price.version,
        provider_cost_usd=call.provider_cost_usd,
        latency_ms=latency_ms, upstream_latency_ms=call.upstream_latency_ms, ttft_ms=ttft_ms,
        output_tokens_per_s=output_tokens_per_s(call.usage, latency_ms, ttft_ms) if call.stream else None,
    )


def _observe(record, log_outcome: str) -> None:
    """One structured log line and one EMF blob per call; never the prompt, the answer or a key."""
    logger.info("call", extra={
        "call_id": record.call_id, "provider": record.provider, "model": record.model, "status": record.status,
        "error_type": record.error_type, "cost_usd": None if record.cost_usd is None else str(record.cost_usd),
        "latency_ms": record.latency_ms, "ttft_ms": record.ttft_ms, "log": log_outcome,
    })
    metrics.add_dimension(name="provider", value=record.provider)
    metrics.add_metric(name="Calls", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1 if record.status >= 400 else 0)
    metrics.add_metric(name="LatencyMs", unit=MetricUnit.Milliseconds, value=record.latency_ms)
    flush_metrics()
