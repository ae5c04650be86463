"""The mock upstream's Amazon Bedrock Runtime: `/bedrock/model/{modelId}/{converse,converse-stream,invoke,
invoke-with-response-stream}`, answered from the recordings under tests/events/bedrock_*.

JSON answers as Bedrock writes them, streams as AWS event-stream frames (built here, with both CRCs, from the
format's published layout: it shares no code with the gateway's decoder). A request must carry a SigV4
signature (`AWS4-HMAC-SHA256`); errors are Bedrock's `{"message"}` with `x-amzn-ErrorType`. The mock's
`Script` chooses the raw usage (Converse's or Anthropic's convention), the status, and drops or pauses.
"""
from __future__ import annotations

import base64
import json
import re
import struct
import time
import uuid
import zlib
from typing import Any
from urllib.parse import unquote

from local import mock_upstream as mock

ERROR_TYPES = {400: "ValidationException", 403: "AccessDeniedException", 404: "ResourceNotFoundException",
               408: "ModelTimeoutException", 429: "ThrottlingException", 500: "InternalServerException",
               503: "ServiceUnavailableException"}


def encode_frame(headers: dict[str, str], payload: bytes) -> bytes:
    """Prelude (total length, headers length, CRC32 of those 8 bytes), string headers, payload, CRC32 of it all."""
    block = b"".join(struct.pack(">B", len(name)) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode()))
                     + value.encode() for name, value in headers.items())
    prelude = struct.pack(">II", 12 + len(block) + len(payload) + 4, len(block))
    message = prelude + struct.pack(">I", zlib.crc32(prelude)) + block + payload
    return message + struct.pack(">I", zlib.crc32(message))


def event_frame(event_type: str, payload: dict[str, Any]) -> bytes:
    return encode_frame({":event-type": event_type, ":content-type": "application/json", ":message-type": "event"},
                        json.dumps(payload, separators=(",", ":")).encode())


def exception_frame(exception_type: str, message: str) -> bytes:
    return encode_frame({":exception-type": exception_type, ":content-type": "application/json",
                         ":message-type": "exception"}, json.dumps({"message": message}).encode())


def chunk_frame(event: dict[str, Any]) -> bytes:
    """InvokeModelWithResponseStream's frame: the model's own JSON event, base64 in `bytes`."""
    return event_frame("chunk", {"bytes": base64.b64encode(json.dumps(event).encode()).decode(),
                                 "p": "abcdefghijklmnopqrstuvwxyz"})


def serve(handler: Any, path: str, headers: dict[str, str], body: Any) -> None:
    """Answer one Bedrock request on the mock's handler."""
    found = re.match(r"^/bedrock/model/([^/]+)/(converse|converse-stream|invoke|invoke-with-response-stream)$", path)
    if found is None:
        return _error(handler, 404, "UnknownOperationException", f"no route {path}")
    model, op = unquote(found[1]), found[2]
    if not headers.get("authorization", "").startswith("AWS4-HMAC-SHA256 Credential=") or "x-amz-date" not in headers:
        return _error(handler, 403, "MissingAuthenticationTokenException", "Missing Authentication Token")
    script = handler.upstream.next_script()
    if script.delay_seconds:
        time.sleep(script.delay_seconds)
    if script.status != 200:
        error = script.body or {"message": "scripted failure"}
        return _error(handler, script.status, ERROR_TYPES.get(script.status, "InternalServerException"),
                      error.get("message", ""), error)
    if not isinstance(body, dict):
        return _error(handler, 400, "ValidationException", "the body must be a JSON object")
    if op.startswith("converse"):
        usage = _converse_usage(body, script)
        if op == "converse":
            answer = mock.recorded("bedrock_converse.json")
            answer["output"]["message"]["content"][0]["text"] = mock.ANSWER
            return handler._json(200, {**answer, "usage": usage})
        return _frames(handler, _converse_stream(usage), script)
    if "anthropic." in model and body.get("anthropic_version") != "bedrock-2023-05-31":
        return _error(handler, 400, "ValidationException", "anthropic_version: must be bedrock-2023-05-31")
    message = mock.recorded("bedrock_invoke_claude.json")
    usage = _anthropic_usage(message["usage"], body, script)
    message.update(id=f"msg_bdrk_{uuid.uuid4().hex[:24]}", model=_claude_name(model), usage=usage)
    message["content"][0]["text"] = mock.ANSWER
    if op == "invoke":
        return handler._json(200, message)
    return _frames(handler, [chunk_frame(event) for event in _invoke_stream(message)], script)


def _converse_usage(body: dict[str, Any], script: Any) -> dict[str, Any]:
    if script.usage is not None:
        return script.usage
    prompt, completion = mock.estimate_tokens(body), mock.estimate_tokens(mock.ANSWER)
    return {"inputTokens": prompt, "outputTokens": completion, "totalTokens": prompt + completion}


def _anthropic_usage(recorded: dict[str, Any], body: dict[str, Any], script: Any) -> dict[str, Any]:
    return mock._usage(recorded, script, input_tokens=mock.estimate_tokens(body),
                       output_tokens=mock.estimate_tokens(mock.ANSWER))


def _claude_name(model: str) -> str:
    """`us.anthropic.claude-sonnet-4-5-20250929-v1:0` → `claude-sonnet-4-5-20250929`, as Claude names itself."""
    name = model.rsplit("anthropic.", 1)[-1]
    return re.sub(r"-v\d+(:\d+)?$", "", name)


def _converse_stream(usage: dict[str, Any]) -> list[bytes]:
    """The recording, its one text delta once a word, and `usage` in the closing `metadata` event."""
    frames = []
    for event_type, payload in mock.recorded("bedrock_converse_stream.json"):
        if event_type == "contentBlockDelta":
            frames += [event_frame(event_type, {**payload, "delta": {"text": word}}) for word in mock._words()]
            continue
        if event_type == "metadata":
            payload["usage"] = usage
        frames.append(event_frame(event_type, payload))
    return frames


def _invoke_stream(message: dict[str, Any]) -> list[dict[str, Any]]:
    """Anthropic's events as Bedrock wraps them: input and cache counts first, output in message_delta, and
    Bedrock's invocation metrics on message_stop."""
    usage = message["usage"]
    events = []
    for event in mock.recorded("bedrock_invoke_claude_stream.json"):
        kind = event["type"]
        if kind == "message_start":
            event["message"].update(id=message["id"], model=message["model"],
                                    usage={**{k: v for k, v in usage.items() if k != "output_tokens"},
                                           "output_tokens": 1})
        elif kind == "content_block_delta":
            events += [{**event, "delta": {**event["delta"], "text": word}} for word in mock._words()]
            continue
        elif kind == "message_delta":
            event["usage"] = {"output_tokens": usage.get("output_tokens", 0)}
        elif kind == "message_stop":
            event["amazon-bedrock-invocationMetrics"].update(inputTokenCount=usage.get("input_tokens", 0),
                                                             outputTokenCount=usage.get("output_tokens", 0))
        events.append(event)
    return events


def _frames(handler: Any, frames: list[bytes], script: Any) -> None:
    handler._chunked("application/vnd.amazon.eventstream", frames, script, **{"x-amzn-RequestId": str(uuid.uuid4())})


def _error(handler: Any, status: int, error_type: str, message: str, body: dict[str, Any] | None = None) -> None:
    data = json.dumps(body or {"message": message}).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("x-amzn-ErrorType", f"{error_type}:http://internal.amazon.com/coral/com.amazon.bedrock/")
    handler.send_header("x-amzn-RequestId", str(uuid.uuid4()))
    handler.end_headers()
    handler.wfile.write(data)
