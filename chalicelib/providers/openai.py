"""The OpenAI wire format, and OpenRouter, which speaks it with its own cost field."""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from ..errors import TollgateError
from ..usage import SseEvent
from .base import Endpoint, PreparedBody, ProviderAdapter

# Endpoints whose streams carry usage only when `stream_options.include_usage` is set.
_USAGE_OPT_IN = {"chat/completions", "completions"}


class OpenAIAdapter(ProviderAdapter):
    name = "openai"
    genai_provider_id = "openai"
    endpoints = (
        Endpoint("chat/completions", usage_flavor="chat"),
        Endpoint("completions", usage_flavor="chat"),
        Endpoint("embeddings", usage_flavor="embeddings"),
        Endpoint("responses", usage_flavor="responses"),
        Endpoint("models", method="GET"),
    )
    forward_headers = ("openai-beta", "idempotency-key")

    def prepare_body(self, endpoint: Endpoint, raw: bytes, body: dict[str, Any]) -> PreparedBody:
        if endpoint.path not in _USAGE_OPT_IN or body.get("stream") is not True:
            return PreparedBody(raw)
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return PreparedBody(raw)
        options = dict(options) if isinstance(options, dict) else {}
        options["include_usage"] = True
        return PreparedBody(self.dumps({**body, "stream_options": options}), injected_stream_usage=True)

    def final_body_from_stream(self, events: list[SseEvent]) -> dict[str, Any]:
        final: dict[str, Any] = {}
        for event in events:
            chunk = event.json()
            if not isinstance(chunk, dict):
                continue
            if chunk.get("type") in ("response.completed", "response.incomplete", "response.failed"):
                return chunk.get("response") or {}
            if isinstance(chunk.get("model"), str):
                final["model"] = chunk["model"]
            if isinstance(chunk.get("usage"), dict):
                final["usage"] = chunk["usage"]
        return final

    def filter_stream(self, events: list[SseEvent], prepared: PreparedBody) -> list[SseEvent]:
        if not prepared.injected_stream_usage:
            return events
        return [e for e in events if not _is_usage_only_chunk(e)]

    def error_body(self, error: TollgateError) -> dict[str, Any]:
        return {"error": {"message": error.message, "type": error.error_type, "param": None,
                          "code": error.error_type}}


def _is_usage_only_chunk(event: SseEvent) -> bool:
    chunk = event.json()
    return isinstance(chunk, dict) and chunk.get("choices") == [] and isinstance(chunk.get("usage"), dict)


class OpenRouterAdapter(OpenAIAdapter):
    name = "openrouter"
    genai_provider_id = "openrouter"
    endpoints = (
        Endpoint("chat/completions", usage_flavor="chat"),
        Endpoint("models", method="GET"),
    )
    forward_headers = ("http-referer", "x-title")

    def provider_cost(self, body: Any) -> Decimal | None:
        usage = body.get("usage") if isinstance(body, dict) else None
        cost = usage.get("cost") if isinstance(usage, dict) else None
        if isinstance(cost, bool) or not isinstance(cost, (int, float, str)):
            return None
        try:
            return Decimal(str(cost))
        except InvalidOperation:
            return None
