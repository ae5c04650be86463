"""Amazon Bedrock Runtime: Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream, the model named
by the path, signed upstream with SigV4 (the function's role), streams relayed frame by frame (AWS event-stream).

Usage: Converse's `usage` (`inputTokens`, `outputTokens`, `cacheReadInputTokens`, `cacheWriteInputTokens`, read by
genai-prices' `aws` extractor `default`), ConverseStream's `metadata` event; InvokeModel with Anthropic models
answers Anthropic's own body (extractor `anthropic`), streamed as Anthropic's events inside `chunk` frames.
The call is priced by the model id in the path: genai-prices' `aws` entries match the cross-region inference
profile ids themselves (`us.`/`eu.`/`apac.`… at the regional price, `global.` at the global one).
"""
from __future__ import annotations

import base64
import binascii
import json
import re
from dataclasses import replace
from decimal import Decimal
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from chalicelib.errors import ConfigurationError, InvalidRequest, NotFound, TollgateError
from chalicelib.gateway.providers.anthropic import AnthropicAdapter
from chalicelib.gateway.providers.base import Endpoint, Match, ProviderAdapter
from chalicelib.gateway.providers.bedrock_eventstream import EventStreamDecoder, Frame
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.settings import get_settings

# `model/{modelId}/{operation}`; the id arrives percent-decoded, so an ARN's `/` are in it (the last part is the op).
PATH = re.compile(r"^model/(?P<model>.*)/(?P<op>converse|converse-stream|invoke|invoke-with-response-stream)\Z",
                  re.DOTALL)
# Bedrock's model ids: foundation models and inference profiles (`us.anthropic.claude-…-v1:0`), or an ARN.
MODEL_ID = re.compile(r"^(?:[A-Za-z0-9][A-Za-z0-9._:-]*|arn:aws[a-z-]*:bedrock:[A-Za-z0-9._:/-]+)\Z")
STREAMED = {"converse-stream", "invoke-with-response-stream"}
EVENT_STREAM = "application/vnd.amazon.eventstream"

# The gateway's refusals as the AWS error codes boto3 raises them by (`x-amzn-ErrorType`): a ClientError whose
# `Error.Code` says what happened. A wrong or missing gateway key is `UnrecognizedClientException` (AWS's
# code for credentials it does not know), with the gateway's own 401.
ERROR_CODES = {
    "authentication_error": "UnrecognizedClientException",
    "permission_error": "AccessDeniedException",
    "not_found_error": "ResourceNotFoundException",
    "invalid_request_error": "ValidationException",
    "request_too_large": "ValidationException",
    "request_timeout": "ValidationException",
    "budget_exceeded": "ServiceQuotaExceededException",  # not retried by botocore: a budget does not refill soon
    "rate_limit_exceeded": "ThrottlingException",  # retried by botocore, as a key's rate frees up
    "upstream_timeout": "ModelTimeoutException",
    "upstream_unreachable": "ServiceUnavailableException",
}
# Amazon Nova's InvokeModel usage names its cache counts apart from Converse's.
NOVA_CACHE_NAMES = {"cacheReadInputTokenCount": "cacheReadInputTokens",
                    "cacheWriteInputTokenCount": "cacheWriteInputTokens"}
_ANTHROPIC = AnthropicAdapter()  # the Anthropic events inside InvokeModelWithResponseStream's chunks


class BedrockAdapter(ProviderAdapter):
    """Bedrock Runtime under `/bedrock/model/{modelId}/…`: no key upstream, a SigV4 signature instead."""

    endpoints = (
        Endpoint("converse", usage_flavor="default"),
        Endpoint("converse-stream", usage_flavor="default"),
        Endpoint("invoke", usage_flavor="anthropic"),
        Endpoint("invoke-with-response-stream", usage_flavor="anthropic"),
    )
    # InvokeModel's own request headers (the stream's `accept`, guardrails, tier, trace): protocol, not credentials.
    forward_headers = ("x-amzn-bedrock-accept", "x-amzn-bedrock-trace", "x-amzn-bedrock-guardrailidentifier",
                       "x-amzn-bedrock-guardrailversion", "x-amzn-bedrock-performanceconfig-latency",
                       "x-amzn-bedrock-service-tier")
    model_in_body = False
    needs_key = False  # signed with the function's AWS credentials, never a key

    def resolve(self, path: str, method: str) -> Match:
        found = PATH.match(path)
        if found is None or method != "POST":
            raise NotFound(f"bedrock has no endpoint {method} /bedrock/{path[:200]}")
        op = found["op"]
        return Match(self.endpoint(op), op, model=found["model"], stream=op in STREAMED)

    def upstream_url(self, base_url: str, match: Match, query: dict[str, str]) -> str:
        """`/model/{modelId}/{op}` with the id quoted again (as boto3 sends it); a name no model has is refused
        here, after the call is admitted, so the refusal is logged."""
        model = match.model or ""
        if not MODEL_ID.match(model):
            raise InvalidRequest("the model id in the path is not a Bedrock model id, inference profile or ARN")
        return f"{base_url}/model/{quote(model, safe='')}/{match.upstream_path}"

    def auth_headers(self, api_key: str) -> dict[str, str]:
        return {}  # the caller's bearer is the gateway key: it never goes upstream

    def signed(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> dict[str, str]:
        """SigV4 for service `bedrock` with the credentials of botocore's default chain (the role in AWS)."""
        from botocore.auth import SigV4Auth
        from botocore.awsrequest import AWSRequest

        settings = get_settings()
        request = AWSRequest(method=method, url=url, data=body or b"", headers=headers)
        SigV4Auth(_credentials().get_frozen_credentials(), "bedrock",
                  settings.bedrock_region or settings.region).add_auth(request)
        return dict(request.headers.items())

    @staticmethod
    def response_headers(upstream: dict[str, str]) -> dict[str, str]:
        """Bedrock's error type (boto3 raises by it), request id and token-count headers go back to the caller."""
        return {**ProviderAdapter.response_headers(upstream),
                **{name: value for name, value in upstream.items() if name.startswith("x-amzn-")}}

    def streams(self, content_type: str) -> bool:
        return EVENT_STREAM in content_type

    def stream_decoder(self) -> EventStreamDecoder:
        return EventStreamDecoder()

    def trailer(self, text: str) -> bytes:
        return b""  # an event stream has no comments; the call id is in X-Tollgate-Call-Id

    def parse_usage(self, endpoint: Endpoint, body: Any) -> tuple[TokenUsage | None, str | None]:
        """Priced by the path's model id, never the body's: Claude names itself without the inference profile
        (`global.` costs less than `us.`). An InvokeModel body whose usage is in Converse's shape (Amazon Nova's
        own format) is read as Converse's."""
        usage = body.get("usage") if isinstance(body, dict) else None
        if isinstance(usage, dict) and "inputTokens" in usage:
            endpoint = replace(endpoint, usage_flavor="default")
            body = {**body, "usage": {NOVA_CACHE_NAMES.get(name, name): count for name, count in usage.items()}}
        tokens, _ = super().parse_usage(endpoint, body)
        return tokens, None

    def fold_stream_event(self, final: dict[str, Any], data: dict[str, Any]) -> None:
        """ConverseStream's `metadata` holds the usage (so does the one inside a Nova model's InvokeModel chunk);
        Claude's chunks are Anthropic's events, with `amazon-bedrock-invocationMetrics` on the last as a fallback
        when they state none."""
        event = chunk_event(data) if "chunk" in data else data  # InvokeModel's chunks wrap the model's own events
        if event is None:
            return
        if isinstance(event.get("metadata"), dict):
            if isinstance(event["metadata"].get("usage"), dict):
                final["usage"] = event["metadata"]["usage"]
            return
        if event is data:
            return
        _ANTHROPIC.fold_stream_event(final, event)
        metrics = event.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict) and not isinstance(final.get("usage"), dict):
            final["usage"] = {"input_tokens": metrics.get("inputTokenCount"),
                              "output_tokens": metrics.get("outputTokenCount"),
                              "cache_read_input_tokens": metrics.get("cacheReadInputTokenCount", 0),
                              "cache_creation_input_tokens": metrics.get("cacheWriteInputTokenCount", 0)}

    def is_content(self, data: dict[str, Any]) -> bool:
        event = chunk_event(data) if "chunk" in data else data
        return event is not None and ("contentBlockDelta" in event or event.get("type") == "content_block_delta")

    def is_final(self, event: Frame) -> bool:
        if event.event_type == "metadata":
            return True
        data = event.json()
        inner = chunk_event(data) if isinstance(data, dict) else None
        return inner is not None and (inner.get("type") == "message_stop" or "metadata" in inner)

    def error_body(self, error: TollgateError) -> dict[str, Any]:
        return {"message": error.message}

    def error_headers(self, error: TollgateError) -> dict[str, str]:
        code = ERROR_CODES.get(error.error_type) or ("ValidationException" if error.status < 500
                                                     else "InternalServerException")
        return {"x-amzn-ErrorType": code}


def chunk_event(data: dict[str, Any]) -> dict[str, Any] | None:
    """The JSON event inside a `chunk` frame (`{"bytes": base64}`), or None."""
    chunk = data.get("chunk")
    if not isinstance(chunk, dict) or not isinstance(chunk.get("bytes"), str):
        return None
    try:
        event = json.loads(base64.b64decode(chunk["bytes"], validate=True), parse_float=Decimal)
    except (ValueError, binascii.Error):
        return None
    return event if isinstance(event, dict) else None


@lru_cache(maxsize=1)
def _session() -> Any:
    import botocore.session

    return botocore.session.get_session()


def _credentials() -> Any:
    """The function's credentials (env locally, the role in AWS); botocore refreshes a role's as they expire."""
    credentials = _session().get_credentials()
    if credentials is None:
        raise ConfigurationError("no AWS credentials to sign Bedrock requests with")
    return credentials
