"""The proxy step: authenticate, forward upstream, meter usage and cost, log the call, answer the caller."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

from . import auth, calllog, limits, pricing, secrets, upstream
from .attribution import Attribution, attribution_of
from .errors import InvalidRequest, PayloadTooLarge, TollgateError, UpstreamError, UpstreamUnreachable
from .observability import MetricUnit, flush_metrics, logger, metrics
from .providers import Endpoint, ProviderAdapter, get_adapter
from .settings import get_settings
from .usage import TokenUsage, join_sse

JSON_TYPES = ("application/json", "")


@dataclass(frozen=True)
class IncomingRequest:
    method: str
    headers: dict[str, str]  # lower-case names
    body: bytes


@dataclass
class OutgoingResponse:
    status: int
    body: str
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Exchange:
    """What happened on one call, filled in as it goes; becomes the response and the call record."""

    response: OutgoingResponse | None = None
    model: str | None = None
    stream: bool = False
    usage: TokenUsage | None = None
    error_type: str | None = None
    upstream_reached: bool = False
    upstream_latency_ms: int | None = None
    provider_cost_usd: Decimal | None = None
    limit: limits.LimitCheck | None = None


def handle(provider: str, path: str, request: IncomingRequest) -> OutgoingResponse:
    """Serve one proxied call end to end. Never raises: errors answer in the caller's wire format."""
    started = time.monotonic()
    now = datetime.now(timezone.utc)
    adapter = get_adapter(provider)
    endpoint = adapter.endpoint(path)
    call_id = calllog.new_call_id()
    logger.set_correlation_id(call_id)
    try:
        principal = auth.verify_key(auth.bearer_or_api_key(request.headers), "gateway")
        attribution = attribution_of(request.headers, principal)
    except TollgateError as error:
        return _with_call_id(error_response(adapter, error), call_id)

    exchange = Exchange()
    try:
        _forward(adapter, endpoint, request, exchange, principal, now)
    except TollgateError as error:
        exchange.response = error_response(adapter, error)
        exchange.error_type = error.error_type
        exchange.upstream_reached = isinstance(error, UpstreamError) and not isinstance(error, UpstreamUnreachable)
    response = _with_call_id(exchange.response, call_id)
    if not endpoint.metered:
        return response

    price = pricing.price_call(provider, exchange.model, exchange.usage, now)
    if price.priced:
        response.headers["X-Tollgate-Cost-USD"] = pricing.money(price.cost_usd)
    if exchange.limit is not None:
        response.headers.update(limits.remaining_header(exchange.limit, price.cost_usd))
    latency_ms = round((time.monotonic() - started) * 1000)
    record = _record(call_id, now, provider, endpoint, principal, attribution, exchange, price, latency_ms)
    log_outcome = calllog.write(record)
    _observe(record, log_outcome)
    return response


def _forward(adapter: ProviderAdapter, endpoint: Endpoint, request: IncomingRequest, exchange: Exchange,
             principal: auth.Principal, now: datetime) -> None:
    settings = get_settings()
    body, prepared = None, None
    if endpoint.method == "POST":
        body = parse_body(request, settings.max_body_bytes)
        exchange.model = body["model"]
        exchange.stream = body.get("stream") is True
        prepared = adapter.prepare_body(endpoint, request.body, body)
    if endpoint.metered:
        exchange.limit = limits.check(principal, adapter.name, exchange.model, now.replace(tzinfo=None))
    answer = upstream.send(
        endpoint.method,
        adapter.upstream_url(settings.base_url(adapter.name), endpoint),
        adapter.upstream_headers(request.headers, secrets.provider_key(adapter.name)),
        prepared.body if prepared else None,
    )
    exchange.upstream_reached = True
    exchange.upstream_latency_ms = answer.latency_ms
    text = answer.body.decode("utf-8", errors="replace")
    headers = adapter.response_headers(answer.headers)
    headers["Content-Type"] = answer.headers.get("content-type", "application/json")
    if answer.truncated:
        exchange.error_type = "stream_interrupted"

    if answer.status >= 400:
        exchange.error_type = _upstream_error_type(text, answer.status)
    elif exchange.stream and endpoint.metered and "text/event-stream" in headers["Content-Type"]:
        events = adapter.parse_stream(text)
        exchange.usage, model = adapter.stream_usage(endpoint, events)
        exchange.model = model or exchange.model
        text = join_sse(adapter.filter_stream(events, prepared))
    elif endpoint.metered:
        parsed = _loads(text)
        exchange.usage, model = adapter.parse_usage(endpoint, parsed)
        exchange.model = model or exchange.model
        exchange.provider_cost_usd = adapter.provider_cost(parsed)
    exchange.response = OutgoingResponse(answer.status, text, headers)


def parse_body(request: IncomingRequest, max_bytes: int) -> dict[str, Any]:
    """The caller's JSON body, checked just enough to meter it; the provider validates the rest."""
    if len(request.body) > max_bytes:
        raise PayloadTooLarge(f"request body is {len(request.body)} bytes; the limit is {max_bytes}")
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in JSON_TYPES:
        raise InvalidRequest(f"Content-Type must be application/json, not {content_type!r}")
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
    if "stream" in body and body["stream"] is not None and not isinstance(body["stream"], bool):
        raise InvalidRequest("`stream` must be true or false")
    return body


def error_response(adapter: ProviderAdapter, error: TollgateError) -> OutgoingResponse:
    body = json.dumps(adapter.error_body(error))
    return OutgoingResponse(error.status, body, {"Content-Type": "application/json", **error.headers})


def _with_call_id(response: OutgoingResponse, call_id: str) -> OutgoingResponse:
    response.headers["X-Tollgate-Call-Id"] = call_id
    return response


def _loads(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return None


def _upstream_error_type(text: str, status: int) -> str:
    """The provider's own error type (both wire formats nest it under `error.type`)."""
    body = _loads(text)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("type"), str):
        return error["type"][:64]
    return f"upstream_{status}"


def _record(call_id, now, provider, endpoint, principal, attribution: Attribution, exchange: Exchange,
            price: pricing.Price, latency_ms: int):
    usage = exchange.usage or TokenUsage()
    return calllog.new_record(
        call_id, now, principal.account,
        provider=provider, endpoint=endpoint.path, model=exchange.model, operation=attribution.operation,
        team=principal.team, key_id=principal.key_id, user=attribution.user, session=attribution.session,
        tags=attribution.tags or None, status=exchange.response.status, error_type=exchange.error_type,
        upstream_reached=exchange.upstream_reached, stream=exchange.stream,
        input_tokens=usage.input_tokens, cache_read_tokens=usage.cache_read_tokens,
        cache_write_tokens=usage.cache_write_tokens, cache_write_1h_tokens=usage.cache_write_1h_tokens,
        output_tokens=usage.output_tokens, reasoning_tokens=usage.reasoning_tokens,
        usage_reported=exchange.usage is not None, cost_usd=price.cost_usd, priced=price.priced,
        price_source=price.source, provider_cost_usd=exchange.provider_cost_usd, latency_ms=latency_ms,
        upstream_latency_ms=exchange.upstream_latency_ms,
    )


def _observe(record, log_outcome: str) -> None:
    """One structured log line and one EMF blob per call; never the prompt, the answer or a key."""
    logger.info("call", extra={
        "provider": record.provider, "model": record.model, "status": record.status,
        "error_type": record.error_type, "cost_usd": None if record.cost_usd is None else str(record.cost_usd),
        "latency_ms": record.latency_ms, "log": log_outcome,
    })
    metrics.add_dimension(name="provider", value=record.provider)
    metrics.add_metric(name="Calls", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="Errors", unit=MetricUnit.Count, value=1 if record.status >= 400 else 0)
    metrics.add_metric(name="LatencyMs", unit=MetricUnit.Milliseconds, value=record.latency_ms)
    flush_metrics()
