"""The Anthropic Messages wire format: cache tokens on top of input, usage split over stream events, web searches
and fast mode (`speed`) stated in the usage block."""
from __future__ import annotations

from typing import Any

from chalicelib.errors import TollgateError
from chalicelib.gateway.providers.base import Endpoint, ProviderAdapter
from chalicelib.gateway.sse import SseEvent


class AnthropicAdapter(ProviderAdapter):
    name = "anthropic"
    genai_provider_id = "anthropic"
    endpoints = (
        Endpoint("messages", usage_flavor="default"),
        Endpoint("messages/count_tokens"),
    )
    forward_headers = ("anthropic-version", "anthropic-beta")
    upstream_prefix = "v1/"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-api-key": api_key}

    def fold_stream_event(self, final: dict[str, Any], data: dict[str, Any]) -> None:
        """message_start holds input and cache counts; each message_delta the running output count."""
        if data.get("type") == "message_start" and isinstance(data.get("message"), dict):
            message = data["message"]
            final["model"] = message.get("model")
            if isinstance(message.get("usage"), dict):
                final["usage"] = dict(message["usage"])
        elif data.get("type") == "message_delta" and isinstance(data.get("usage"), dict):
            usage = final["usage"] if isinstance(final.get("usage"), dict) else {}
            usage.update({k: v for k, v in data["usage"].items() if v is not None})
            final["usage"] = usage

    def price_variant(self, body: dict[str, Any]) -> tuple[Any, Any]:
        """`usage.service_tier` ("standard", "priority", "batch") and `usage.speed` ("standard", "fast")."""
        usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
        return usage.get("service_tier"), usage.get("speed")

    def is_content(self, data: dict[str, Any]) -> bool:
        return data.get("type") == "content_block_delta"

    def is_final(self, event: SseEvent) -> bool:
        return event.event == "message_stop"

    def error_body(self, error: TollgateError) -> dict[str, Any]:
        return {"type": "error", "error": {"type": error.error_type, "message": error.message}}
