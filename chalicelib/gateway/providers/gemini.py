"""Google Gemini's native wire format (`/v1beta/models/{model}:generateContent` and friends), and Google's
OpenAI-compatible endpoint served beside it.

The path names the model and whether the answer streams; usage comes from `usageMetadata` (streams carry it in
their last chunks), the model that answered from `modelVersion`. Errors go back in Google's own shape.
"""
from __future__ import annotations

import re
from dataclasses import replace
from typing import Any
from urllib.parse import quote

from chalicelib.errors import NotFound, TollgateError
from chalicelib.gateway.providers.base import Endpoint, Match, ProviderAdapter
from chalicelib.gateway.providers.openai import OpenAIAdapter
from chalicelib.gateway.sse import SseEvent
from chalicelib.gateway.tokens import TokenUsage

# `{version}/models/{model}:{method}`; the model is checked as a caller's name, after the path has matched.
_MODEL_CALL = re.compile(r"(v1|v1beta)/models/([^/]+):([A-Za-z]{1,64})")
_MODEL_GET = re.compile(r"(v1|v1beta)/models(?:/([^/:]+))?")
_COMPATIBLE_PATH = "v1beta/openai/"
STREAM_CHUNKS_MAX = 10_000  # a streamed answer read whole (no `alt=sse`) is folded over at most this many chunks

# google.rpc.Code names, as Google's APIs put them beside the HTTP status.
RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
              408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
              499: "CANCELLED", 500: "INTERNAL", 501: "NOT_IMPLEMENTED", 502: "UNAVAILABLE", 503: "UNAVAILABLE",
              504: "DEADLINE_EXCEEDED"}


class GeminiCompatibleAdapter(OpenAIAdapter):
    """`/v1beta/openai/chat/completions`: OpenAI's wire and usage, priced as Gemini (the provider's genai-prices id)."""

    endpoints = (Endpoint("chat/completions", usage_flavor="chat"),)
    forward_headers = ()
    usage_provider_id = "openai"

    def parse_usage(self, endpoint: Endpoint, body: Any) -> tuple[TokenUsage | None, str | None]:
        usage, model = super().parse_usage(endpoint, body)
        return usage, _model_name(model)


class GeminiAdapter(ProviderAdapter):
    name = "gemini"
    genai_provider_id = "google"
    endpoints = (
        Endpoint("generateContent", usage_flavor="default"),
        Endpoint("streamGenerateContent", usage_flavor="default"),
        Endpoint("countTokens"),  # free: Google bills no tokens for counting them
        Endpoint("embedContent", usage_flavor="default"),
        Endpoint("batchEmbedContents", usage_flavor="default"),  # what google-genai's embed_content calls
        Endpoint("models", method="GET"),
    )
    forward_query = ("alt",)  # `alt=sse` asks for SSE; without it a stream is one JSON array. Never `key`.
    model_in_body = False

    def __init__(self, name: str | None = None, genai_provider_id: str | None = None) -> None:
        super().__init__(name, genai_provider_id)
        self.compatible = GeminiCompatibleAdapter(self.name, self.genai_provider_id)

    def resolve(self, path: str, method: str) -> Match:
        if method == "POST" and (call := _MODEL_CALL.fullmatch(path)):
            version, model, verb = call.groups()
            for endpoint in self.endpoints:
                if endpoint.path == verb and endpoint.method == "POST":
                    upstream = f"{version}/models/{quote(model, safe='')}:{verb}"  # the path arrives decoded
                    return Match(endpoint, upstream, model=model, stream=verb == "streamGenerateContent")
        if method == "GET" and (listing := _MODEL_GET.fullmatch(path)):
            version, model = listing.groups()
            upstream = f"{version}/models" + (f"/{quote(model, safe='')}" if model else "")
            return Match(self.endpoint("models"), upstream)
        if path.startswith(_COMPATIBLE_PATH):
            match = self.compatible.resolve("v1/" + path.removeprefix(_COMPATIBLE_PATH), method)
            return replace(match, upstream_path=_COMPATIBLE_PATH + match.endpoint.path, adapter=self.compatible)
        raise NotFound(f"gemini has no endpoint {method} /gemini/{path[:200]}")

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"x-goog-api-key": api_key}

    def trailer(self, text: str) -> bytes:
        """None: google-genai reads every line of a stream that is not `data:` as JSON, so a comment breaks it.
        The call's id is in the `X-Tollgate-Call-Id` header, its cost at `GET /api/calls/{call_id}`."""
        return b""

    def parse_usage(self, endpoint: Endpoint, body: Any) -> tuple[TokenUsage | None, str | None]:
        """`usageMetadata` through genai-prices' google extractor: `promptTokenCount` (with
        `toolUsePromptTokenCount`) is input, `cachedContentTokenCount` the cached part of it, `candidatesTokenCount`
        output and `thoughtsTokenCount` reasoning, billed as output. A stream read whole is an array of chunks."""
        if isinstance(body, list):
            folded: dict[str, Any] = {}
            for chunk in body[:STREAM_CHUNKS_MAX]:
                if isinstance(chunk, dict):
                    self.fold_stream_event(folded, chunk)
            body = folded
        if not isinstance(body, dict):
            return None, None
        model = _model_name(body.get("modelVersion"))
        if not isinstance(body.get("usageMetadata"), dict):
            return None, model
        from genai_prices import data_snapshot  # here: the proxy's cold start skips genai-prices (see proxy._log)

        provider = data_snapshot.get_snapshot().find_provider(None, self.usage_provider_id, None)
        try:
            _, usage = provider.extract_usage({"usageMetadata": body["usageMetadata"]},
                                              api_flavor=endpoint.usage_flavor)
            return TokenUsage.from_genai(usage), model
        except (ValueError, TypeError, ArithmeticError):
            return TokenUsage.unreadable(), model

    def fold_stream_event(self, final: dict[str, Any], data: dict[str, Any]) -> None:
        """Counts in `usageMetadata` are running totals: the latest of each is the call's."""
        if isinstance(data.get("modelVersion"), str):
            final["modelVersion"] = data["modelVersion"]
        if isinstance(data.get("usageMetadata"), dict):
            usage = final.setdefault("usageMetadata", {})
            usage.update(data["usageMetadata"])

    def is_content(self, data: dict[str, Any]) -> bool:
        for candidate in _candidates(data):
            content = candidate.get("content")
            parts = content.get("parts") if isinstance(content, dict) else None
            if isinstance(parts, list) and any(isinstance(part, dict) and any(part.values()) for part in parts):
                return True
        return False

    def is_final(self, event: SseEvent) -> bool:
        if '"finishReason"' not in event.data:  # most chunks: no second parse of their JSON
            return False
        data = event.json()
        return isinstance(data, dict) and any(candidate.get("finishReason") for candidate in _candidates(data))

    def error_body(self, error: TollgateError) -> dict[str, Any]:
        """Google's error shape; the gateway's own error type rides in an ErrorInfo's `reason`."""
        return {"error": {"code": error.status, "message": error.message,
                          "status": RPC_STATUS.get(error.status, "UNKNOWN"),
                          "details": [{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                                       "reason": error.error_type.upper(), "domain": "tollgate",
                                       "metadata": {"type": error.error_type}}]}}


def _candidates(data: dict[str, Any]) -> list[dict[str, Any]]:
    candidates = data.get("candidates")
    return [c for c in candidates if isinstance(c, dict)] if isinstance(candidates, list) else []


def _model_name(model: Any) -> str | None:
    """`models/gemini-2.5-pro` → `gemini-2.5-pro`, the name prices know."""
    return model.removeprefix("models/") if isinstance(model, str) else None
