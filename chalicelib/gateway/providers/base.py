"""What a provider adapter provides: endpoints, upstream auth, usage parsing, error bodies."""
from __future__ import annotations

import json
from urllib.parse import urlencode
from dataclasses import dataclass, replace
from decimal import Decimal
from typing import Any

from chalicelib.errors import NotFound, TollgateError
from chalicelib.gateway.sse import SseDecoder, SseEvent, comment
from chalicelib.gateway.tokens import TokenUsage


@dataclass(frozen=True)
class Endpoint:
    """One proxied route: its path after `/v1/`, method, and how its usage is reported."""

    path: str
    method: str = "POST"
    usage_flavor: str | None = None  # genai-prices extractor flavor; None → not metered

    @property
    def metered(self) -> bool:
        return self.usage_flavor is not None


@dataclass(frozen=True)
class Match:
    """What a request path names: the endpoint, the path sent upstream, and what the path itself says of the call
    (the model, for Gemini, Bedrock and Azure deployments; streaming, for Gemini and Bedrock)."""

    endpoint: Endpoint
    upstream_path: str
    model: str | None = None
    stream: bool | None = None
    adapter: "ProviderAdapter | None" = None  # another wire format served under this provider (Gemini's OpenAI one)


@dataclass(frozen=True)
class PreparedBody:
    body: bytes
    injected_stream_usage: bool = False
    image_variant: str | None = None  # what a per-image price depends on, which only the request says


# Caller headers that carry protocol, never credentials; everything else stays at the gateway.
COMMON_FORWARD_HEADERS = ("content-type", "accept")
# Upstream response headers that SDKs use (retries, rate limits, request ids).
RESPONSE_HEADER_PREFIXES = ("x-ratelimit-", "anthropic-ratelimit-")
RESPONSE_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry", "x-request-id", "request-id",
                    "openai-processing-ms", "openai-version")


class ProviderAdapter:
    """One wire family. An instance serves one provider of the registry (its `name` and genai-prices id)."""

    name: str
    genai_provider_id: str | None
    endpoints: tuple[Endpoint, ...]
    forward_headers: tuple[str, ...] = ()
    path_prefix = "v1/"  # what the caller's path holds after `/<provider>/` before an endpoint's path
    upstream_prefix = ""  # what the upstream path holds before an endpoint's path, after the base URL
    forward_query: tuple[str, ...] = ()  # query parameters that go upstream (never a key)
    model_in_body = True  # False: the model is named by the path alone
    needs_key = True  # False: the upstream may be called without a key (a local model server)
    usage_provider_id: str | None = None  # whose genai-prices extractor reads the usage (default: its own)

    def __init__(self, name: str | None = None, genai_provider_id: str | None = None) -> None:
        if name is not None:
            self.name, self.genai_provider_id = name, genai_provider_id
        self.usage_provider_id = self.usage_provider_id or self.genai_provider_id

    def endpoint(self, path: str) -> Endpoint:
        for endpoint in self.endpoints:
            if endpoint.path == path:
                return endpoint
        raise NotFound(f"{self.name} has no endpoint {path[:200]}")

    def resolve(self, path: str, method: str) -> Match:
        """The endpoint a caller's path (after `/<provider>/`) names; NotFound for any other."""
        if path.startswith(self.path_prefix):
            rest = path[len(self.path_prefix):]
            for endpoint in self.endpoints:
                if endpoint.path == rest and endpoint.method == method:
                    return Match(endpoint, self.upstream_prefix + endpoint.path)
        raise NotFound(f"{self.name} has no endpoint {method} /{self.name}/{path[:200]}")

    def upstream_url(self, base_url: str, match: Match, query: dict[str, str]) -> str:
        forwarded = {name: query[name] for name in self.forward_query if name in query}
        return f"{base_url}/{match.upstream_path}" + (f"?{urlencode(forwarded)}" if forwarded else "")

    def signed(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, str]:
        """The upstream request's headers, signed where the provider wants a signature (Bedrock's SigV4)."""
        return headers

    def streams(self, content_type: str) -> bool:
        """Is an answer of this content type a stream the gateway relays event by event?"""
        return "text/event-stream" in content_type

    def answer_content_type(self, upstream: str) -> str:
        """The Content-Type the caller gets (a format the gateway translates names the caller's own)."""
        return upstream

    def stream_decoder(self) -> Any:
        """Splits the upstream's bytes into events (each with `wire()` and `json()`)."""
        return SseDecoder()

    def trailer(self, text: str) -> bytes:
        """The gateway's closing line on a stream; a format with no place for comments has none."""
        return comment(text)

    def error_headers(self, error: TollgateError) -> dict[str, str]:
        return {}

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"authorization": f"Bearer {api_key}"}

    def upstream_headers(self, caller: dict[str, str], api_key: str | None) -> dict[str, str]:
        allowed = COMMON_FORWARD_HEADERS + self.forward_headers
        headers = {name: caller[name] for name in allowed if name in caller}
        if api_key:
            headers.update(self.auth_headers(api_key))
        return headers

    @staticmethod
    def response_headers(upstream: dict[str, str]) -> dict[str, str]:
        return {
            name: value for name, value in upstream.items()
            if name in RESPONSE_HEADERS or name.startswith(RESPONSE_HEADER_PREFIXES)
        }

    def prepare_body(self, endpoint: Endpoint, raw: bytes, body: dict[str, Any]) -> PreparedBody:
        """The body sent upstream: the caller's bytes, untouched unless an adapter must ask for usage."""
        return PreparedBody(raw)

    def parse_usage(self, endpoint: Endpoint, body: Any) -> tuple[TokenUsage | None, str | None]:
        """Usage and model of a non-streamed answer; (None, model) when the body reports none."""
        if not isinstance(body, dict):
            return None, None
        model = body.get("model") if isinstance(body.get("model"), str) else None
        if not isinstance(body.get("usage"), dict):
            return None, model
        from genai_prices import data_snapshot  # here: the proxy's cold start skips genai-prices (see proxy._log)

        provider = data_snapshot.get_snapshot().find_provider(None, self.usage_provider_id, None)
        try:
            _, usage = provider.extract_usage(body, api_flavor=endpoint.usage_flavor)
            tokens = TokenUsage.from_genai(usage)
        except (ValueError, TypeError, ArithmeticError):
            return TokenUsage.unreadable(), model
        tokens = replace(tokens, web_searches=tokens.web_searches + self.tool_calls(body))
        return tokens.stated(*self.price_variant(body)), model

    def with_request(self, usage: TokenUsage | None, prepared: PreparedBody | None) -> TokenUsage | None:
        """The answer's usage with what only the request says of its price (an image's size and quality)."""
        return usage

    def price_variant(self, body: dict[str, Any]) -> tuple[Any, Any]:
        """(service tier, speed) as the answer states them: which of the model's prices it was served at."""
        return None, None

    def tool_calls(self, body: dict[str, Any]) -> int:
        """Web searches the answer shows outside its usage block (genai-prices reads the ones inside it)."""
        return 0

    def stream_meter(self, endpoint: Endpoint, prepared: PreparedBody) -> "StreamMeter":
        return StreamMeter(self, endpoint, prepared)

    def fold_stream_event(self, final: dict[str, Any], data: dict[str, Any]) -> None:
        """Fold one stream event into the final body it stands for (only what usage needs is kept)."""
        raise NotImplementedError

    def is_content(self, data: dict[str, Any]) -> bool:
        """Does this event carry generated output (the first one marks time to first token)?"""
        raise NotImplementedError

    def is_final(self, event: SseEvent) -> bool:
        """Is this the event that ends a complete answer (a caller may hang up once it has it)?"""
        raise NotImplementedError

    def forwards(self, data: Any, prepared: PreparedBody) -> bool:
        """Is this event for the caller (not something the gateway asked for on its own behalf)?"""
        return True

    def provider_cost(self, body: Any) -> Decimal | None:
        """The provider's own statement of what the call cost, where it gives one."""
        return None

    def error_body(self, error: TollgateError) -> dict[str, Any]:
        raise NotImplementedError

    @staticmethod
    def dumps(body: Any) -> bytes:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


class StreamMeter:
    """Usage of one streamed answer, read event by event as it passes: keeps a small final body, not the stream."""

    def __init__(self, adapter: ProviderAdapter, endpoint: Endpoint, prepared: PreparedBody) -> None:
        self.adapter, self.endpoint, self.prepared = adapter, endpoint, prepared
        self.final: dict[str, Any] = {}
        self.content_started = False
        self.complete = False  # the answer's last event went by

    def see(self, event: SseEvent) -> bool:
        """Take one event into account; True if it goes on to the caller."""
        data = event.json()
        if isinstance(data, dict):
            self.adapter.fold_stream_event(self.final, data)
            self.content_started = self.content_started or self.adapter.is_content(data)
        self.complete = self.complete or self.adapter.is_final(event)
        return self.adapter.forwards(data, self.prepared)

    def usage(self) -> tuple[TokenUsage | None, str | None]:
        usage, model = self.adapter.parse_usage(self.endpoint, self.final)
        return self.adapter.with_request(usage, self.prepared), model

    def provider_cost(self) -> Decimal | None:
        return self.adapter.provider_cost(self.final)
