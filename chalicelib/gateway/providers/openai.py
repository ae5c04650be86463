"""The OpenAI wire format (chat, completions, embeddings, responses, images), and those who speak it: OpenRouter
(with its own cost field), Groq, Azure OpenAI and the providers of the providers file."""
from __future__ import annotations

from dataclasses import replace
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any
from urllib.parse import quote

from chalicelib.errors import NotFound, TollgateError
from chalicelib.gateway import image_prices
from chalicelib.gateway.providers.base import Endpoint, Match, PreparedBody, ProviderAdapter
from chalicelib.gateway.sse import SseEvent
from chalicelib.gateway.tokens import TokenUsage

# Endpoints whose streams carry usage only when `stream_options.include_usage` is set.
_USAGE_OPT_IN = {"chat/completions", "completions"}
_RESPONSES_TERMINAL = ("response.completed", "response.incomplete", "response.failed")
_IMAGE_DONE = "image_generation.completed"
# A provider's own statement of a call's cost is kept only within these bounds (a DynamoDB Number holds 38 digits).
STATED_COST_MAX_USD = 10**6
STATED_COST_PLACES = 24  # finer than any bill; an aggregate summing such amounts keeps within 38 digits
# Chat delta fields that carry generated output.
_CONTENT_DELTAS = ("content", "tool_calls", "function_call", "refusal", "reasoning", "reasoning_content", "audio")


class OpenAIAdapter(ProviderAdapter):
    name = "openai"
    genai_provider_id = "openai"
    endpoints = (
        Endpoint("chat/completions", usage_flavor="chat"),
        Endpoint("completions", usage_flavor="chat"),
        Endpoint("embeddings", usage_flavor="embeddings"),
        Endpoint("responses", usage_flavor="responses"),
        Endpoint("images/generations", usage_flavor="images"),
        Endpoint("models", method="GET"),
    )
    forward_headers = ("openai-beta", "idempotency-key")

    def prepare_body(self, endpoint: Endpoint, raw: bytes, body: dict[str, Any]) -> PreparedBody:
        if endpoint.usage_flavor == "images" and image_prices.billed_per_image(body.get("model")):
            return PreparedBody(raw, image_variant=image_prices.variant(body.get("size"), body.get("quality")))
        if endpoint.path not in _USAGE_OPT_IN or body.get("stream") is not True:
            return PreparedBody(raw)
        options = body.get("stream_options")
        if isinstance(options, dict) and options.get("include_usage") is True:
            return PreparedBody(raw)
        options = dict(options) if isinstance(options, dict) else {}
        options["include_usage"] = True
        return PreparedBody(self.dumps({**body, "stream_options": options}), injected_stream_usage=True)

    def parse_usage(self, endpoint: Endpoint, body: Any) -> tuple[TokenUsage | None, str | None]:
        """Images: the tokens a GPT image model states, and the images made (DALL-E's unit; it states no usage)."""
        usage, model = super().parse_usage(endpoint, body)
        if endpoint.usage_flavor == "images" and isinstance(body, dict) and isinstance(body.get("data"), list):
            usage = replace(usage or TokenUsage(), images=len(body["data"]))
        return usage, model

    def with_request(self, usage: TokenUsage | None, prepared: PreparedBody | None) -> TokenUsage | None:
        if usage is None or prepared is None or prepared.image_variant is None:
            return usage
        return replace(usage, image_variant=prepared.image_variant)

    def fold_stream_event(self, final: dict[str, Any], data: dict[str, Any]) -> None:
        if final.get("object") == "response":  # Responses: the terminal event held the whole answer
            return
        if data.get("type") == _IMAGE_DONE:  # a streamed image: its completed event states the usage
            final.setdefault("data", []).append({})
            if isinstance(data.get("usage"), dict):
                final["usage"] = data["usage"]
            return
        if data.get("type") in _RESPONSES_TERMINAL:
            final.clear()
            final.update(data["response"] if isinstance(data.get("response"), dict) else {})
            final["object"] = "response"
            return
        for name in ("model", "service_tier"):
            if isinstance(data.get(name), str):
                final[name] = data[name]
        if isinstance(data.get("usage"), dict):
            final["usage"] = data["usage"]

    def is_content(self, data: dict[str, Any]) -> bool:
        if isinstance(data.get("type"), str):  # Responses: output arrives in `*.delta` events; images, partial
            return data["type"].endswith(".delta") or data["type"].startswith("image_generation.")
        choices = data.get("choices") if isinstance(data.get("choices"), list) else []
        for choice in choices:
            delta = choice.get("delta") if isinstance(choice, dict) else None
            if isinstance(choice, dict) and choice.get("text"):
                return True
            if isinstance(delta, dict) and any(delta.get(k) for k in _CONTENT_DELTAS):
                return True
        return False

    def is_final(self, event: SseEvent) -> bool:
        return event.data == "[DONE]" or event.event in _RESPONSES_TERMINAL or event.event == _IMAGE_DONE

    def forwards(self, data: Any, prepared: PreparedBody) -> bool:
        return not (prepared.injected_stream_usage and _is_usage_only_chunk(data))

    def price_variant(self, body: dict[str, Any]) -> tuple[Any, Any]:
        return body.get("service_tier"), None

    def tool_calls(self, body: dict[str, Any]) -> int:
        """Responses: each `web_search_call` output item is one search, billed per call."""
        output = body.get("output") if body.get("object") == "response" else None
        if not isinstance(output, list):
            return 0
        return sum(1 for item in output if isinstance(item, dict) and item.get("type") == "web_search_call")

    def error_body(self, error: TollgateError) -> dict[str, Any]:
        return {"error": {"message": error.message, "type": error.error_type, "param": None,
                          "code": error.error_type}}


def _is_usage_only_chunk(chunk: Any) -> bool:
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
        """`usage.cost`, as exact as it was sent: bodies and stream events are parsed with Decimal for
        fractions. Anything but a plausible amount (negative, not finite, absurd) is no statement at all."""
        usage = body.get("usage") if isinstance(body, dict) else None
        cost = usage.get("cost") if isinstance(usage, dict) else None
        if isinstance(cost, bool) or not isinstance(cost, (int, float, str, Decimal)):
            return None
        try:
            amount = Decimal(str(cost)) if isinstance(cost, float) else Decimal(cost)
        except InvalidOperation:
            return None
        if not amount.is_finite() or not 0 <= amount < STATED_COST_MAX_USD:
            return None
        if amount.as_tuple().exponent < -STATED_COST_PLACES:  # more digits than any bill has: round them off
            with localcontext(prec=38):
                amount = amount.quantize(Decimal(1).scaleb(-STATED_COST_PLACES))
        return amount


class CompatibleAdapter(OpenAIAdapter):
    """A provider of the providers file (vLLM, Ollama, LM Studio, Together…): OpenAI's routes and usage, its own
    name and prices; a local server may need no key."""

    endpoints = OpenAIAdapter.endpoints
    forward_headers = ()
    usage_provider_id = "openai"  # the wire is OpenAI's, whoever prices it
    needs_key = False


class GroqAdapter(OpenAIAdapter):
    """Groq: OpenAI's chat under `/openai/v1/` (where the `groq` SDK puts it); streams carry usage in
    `x_groq.usage` on the last chunk, or in `usage` when asked for."""

    endpoints = (
        Endpoint("chat/completions", usage_flavor="chat"),
        Endpoint("models", method="GET"),
    )
    forward_headers = ()
    path_prefix = "openai/v1/"
    usage_provider_id = "openai"

    def prepare_body(self, endpoint: Endpoint, raw: bytes, body: dict[str, Any]) -> PreparedBody:
        """Groq always states a stream's usage (`x_groq.usage`): the caller's body goes as written."""
        return PreparedBody(raw)

    def fold_stream_event(self, final: dict[str, Any], data: dict[str, Any]) -> None:
        extra = data.get("x_groq")
        if isinstance(extra, dict) and isinstance(extra.get("usage"), dict):
            data = {**data, "usage": extra["usage"]}
        super().fold_stream_event(final, data)


class AzureAdapter(OpenAIAdapter):
    """Azure OpenAI: deployments (`/openai/deployments/{deployment}/…?api-version=`) and the v1 API
    (`/openai/v1/…`), the key in `api-key`. The call is priced by the model the answer names."""

    endpoints = tuple(e for e in OpenAIAdapter.endpoints if e.metered)  # no model list under a deployment
    forward_headers = ()
    forward_query = ("api-version",)
    usage_provider_id = "openai"

    def resolve(self, path: str, method: str) -> Match:
        parts = path.split("/")
        if len(parts) >= 4 and parts[:2] == ["openai", "deployments"] and method == "POST":
            deployment, rest = parts[2], "/".join(parts[3:])  # the path arrives decoded
            for endpoint in self.endpoints:
                if deployment and endpoint.path == rest and endpoint.path != "responses":
                    return Match(endpoint, f"openai/deployments/{quote(deployment, safe='')}/{rest}", model=deployment)
        if path.startswith("openai/v1/"):
            match = super().resolve(path.removeprefix("openai/"), method)
            return Match(match.endpoint, f"openai/v1/{match.endpoint.path}")
        raise NotFound(f"azure has no endpoint {method} /azure/{path[:200]}")

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {"api-key": api_key}
