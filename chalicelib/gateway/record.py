"""One call as it happened, and what it leaves behind: the call record, a log line and metrics.

`Call` is filled in as the proxy goes; `record_of` maps it onto the call log's record, priced. What the
provider says (the model that answered, its error type, its JSON) is read here, bounded."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from chalicelib import caller_names
from chalicelib.gateway import limits
from chalicelib.gateway.attribution import Attribution
from chalicelib.gateway.providers import Endpoint
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.ledger import auth, calllog
from chalicelib.observability import MetricUnit, flush_metrics, logger, metrics

if TYPE_CHECKING:
    from chalicelib.gateway import pricing

# How a stream that did not end normally is logged.
CLIENT_DISCONNECTED = "client_disconnected"
STREAM_INTERRUPTED = "stream_interrupted"
STREAM_INCOMPLETE = "stream_incomplete"  # closed cleanly before its final event: priced from the usage seen
USAGE_INVALID = "usage_invalid"


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
    attempts: list[dict] | None = None  # each provider tried, when a fallback rule applies (gateway/failover.py)

    def elapsed_ms(self, at: float | None = None) -> int:
        return round(((time.monotonic() if at is None else at) - self.started) * 1000)


def reported_model(reported: str | None, requested: str | None) -> str | None:
    """The model the provider says answered, unless it is no fit name (then the one asked for)."""
    return reported if reported and caller_names.problem(reported) is None else requested


def upstream_json(body: bytes) -> Any:
    """An upstream body's JSON, fractions as Decimal: a provider's statement of cost stays exact."""
    try:
        return json.loads(body, parse_float=Decimal)
    except ValueError:
        return None


ERROR_TYPE_MAX = 64


def upstream_error_type(body: bytes, status: int, aws_error_type: str | None = None) -> str:
    """The provider's own error type (`error.type`; Gemini's `error.status`; Bedrock's header), if it passes the check a
    caller's names pass (it becomes a field of the call and a counter's name); else `upstream_<status>`."""
    parsed = upstream_json(body)
    error = parsed.get("error") if isinstance(parsed, dict) else None
    named = (error.get("type") or error.get("status")) if isinstance(error, dict) else None  # Gemini: `status`
    if aws_error_type:  # Bedrock names it in `x-amzn-ErrorType` (`ThrottlingException:http://…`)
        named = aws_error_type.split(":", 1)[0]
    if isinstance(named, str) and named and caller_names.problem(named[:ERROR_TYPE_MAX]) is None:
        return named[:ERROR_TYPE_MAX]
    return f"upstream_{status}"


def output_tokens_per_s(usage: TokenUsage | None, latency_ms: int, ttft_ms: int | None) -> float | None:
    """Generation speed of a stream: output and reasoning tokens over the time after the first token."""
    if usage is None or ttft_ms is None or latency_ms <= ttft_ms:
        return None
    return round(usage.total_output_tokens * 1000 / (latency_ms - ttft_ms), 1)


def record_of(call: Call, price: pricing.Price, latency_ms: int):
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
        input_audio_tokens=usage.input_audio_tokens or None, output_audio_tokens=usage.output_audio_tokens or None,
        web_searches=usage.web_searches or None, service_tier=usage.service_tier, speed=usage.speed,
        input_image_tokens=usage.input_image_tokens or None, output_image_tokens=usage.output_image_tokens or None,
        images=usage.images or None, image_variant=usage.image_variant,
        usage_reported=call.usage is not None and call.error_type is None, cost_usd=price.cost_usd,
        priced=price.priced, price_source=price.source, price_version=price.version,
        provider_cost_usd=call.provider_cost_usd, estimated_cost_usd=price.estimated_cost_usd,
        price_drift=price.price_drift,
        latency_ms=latency_ms, upstream_latency_ms=call.upstream_latency_ms, ttft_ms=ttft_ms,
        output_tokens_per_s=output_tokens_per_s(call.usage, latency_ms, ttft_ms) if call.stream else None,
        attempts=call.attempts or None,
    )


def observe(record, log_outcome: str) -> None:
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
