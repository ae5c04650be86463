"""A fake OpenAI / Anthropic / OpenRouter server over real HTTP: canned answers, scriptable usage and faults.

Paths: `/v1/...` answers as OpenAI, `/openrouter/v1/...` as OpenRouter (adds `usage.cost`), and
`/v1/messages...` as Anthropic. Tests queue `Script`s to choose the next answer's raw usage object
(in the provider's own convention), status, delay, or a connection dropped mid-stream.
"""
from __future__ import annotations

import base64
import json
import math
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ANSWER = "This is a mock answer from Tollgate's built-in upstream."


@dataclass
class Script:
    usage: dict[str, Any] | None = None  # the raw `usage` object to answer with
    status: int = 200
    body: dict[str, Any] | None = None  # a whole body, for error answers
    delay_seconds: float = 0.0
    drop_stream_after_events: int | None = None  # close the connection after this many events
    event_interval_seconds: float = 0.0  # a pause before each streamed event after the first, as a model generates
    stall_after_events: int | None = None  # then go silent (for `stall_seconds`) instead of sending the rest
    stall_seconds: float = 0.0
    filler_events: int = 0  # a long streamed chat answer: this many more content events before the last ones,
    filler_event_bytes: int = 1024  # each about this many bytes on the wire


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class MockUpstream:
    """State shared by the handler threads; `expected_key`, when set, is the only key accepted."""

    expected_key: str | None = None
    scripts: deque = field(default_factory=deque)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    streams_abandoned: int = 0  # streams whose reader hung up before the end

    def enqueue(self, **kwargs: Any) -> None:
        self.scripts.append(Script(**kwargs))

    def next_script(self) -> Script:
        with self.lock:
            return self.scripts.popleft() if self.scripts else Script()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        state = self

        class Handler(_Handler):
            upstream = state

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True, name="mock-upstream").start()
        return f"http://{host}:{self.server.server_address[1]}"

    def stop(self) -> None:
        if self.server:
            self.server.shutdown()
            self.server.server_close()


def estimate_tokens(value: Any) -> int:
    """About four characters a token, over every string in the request: stable, not exact."""
    if isinstance(value, str):
        return max(1, math.ceil(len(value) / 4))
    if isinstance(value, list):
        return sum(estimate_tokens(v) for v in value)
    if isinstance(value, dict):
        return sum(estimate_tokens(v) for k, v in value.items() if k in ("content", "text", "input", "prompt",
                                                                        "messages", "system", "instructions"))
    return 0


class _Handler(BaseHTTPRequestHandler):
    upstream: MockUpstream
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: don't wait for a delayed ACK

    def log_message(self, *args: Any) -> None:  # quiet: the gateway logs calls
        pass

    # -- plumbing ---------------------------------------------------------------------------------
    def do_GET(self) -> None:
        self._safely(None)

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else {}
        except ValueError:
            return self._json(400, {"error": {"type": "invalid_request_error", "message": "bad JSON"}})
        self._safely(body)

    def _safely(self, body: Any) -> None:
        try:
            self._dispatch(body)
        except (BrokenPipeError, ConnectionResetError):  # the gateway gave up (a timeout test)
            self.close_connection = True

    def _dispatch(self, body: Any) -> None:
        path = self.path.split("?")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.upstream.lock:
            self.upstream.requests.append(Seen(self.command, path, headers, body))
        anthropic = path.startswith("/v1/messages")
        if not self._authorised(headers, anthropic):
            return self._json(401, _error(anthropic, "authentication_error", "invalid upstream API key"))
        if path.endswith("/models"):
            return self._json(200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 1700000000, "owned_by": "tollgate-mock"}
                for m in ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-5")]})
        if path.endswith("/messages/count_tokens"):
            return self._json(200, {"input_tokens": estimate_tokens(body)})
        script = self.upstream.next_script()
        if script.delay_seconds:
            time.sleep(script.delay_seconds)
        if script.status != 200:
            return self._json(script.status, script.body or _error(anthropic, "api_error", "scripted failure"))
        route = path.rsplit("/v1/", 1)[-1]
        openrouter = path.startswith("/openrouter/")
        builder = {"messages": _anthropic_message, "chat/completions": _chat_completion,
                   "completions": _completion, "embeddings": _embedding, "responses": _response}.get(route)
        if builder is None:
            return self._json(404, _error(anthropic, "not_found_error", f"no route {path}"))
        events_or_body = builder(body, script, openrouter)
        if isinstance(events_or_body, list):
            return self._sse(events_or_body, script)
        return self._json(200, events_or_body)

    def _authorised(self, headers: dict[str, str], anthropic: bool) -> bool:
        expected = self.upstream.expected_key
        if expected is None:
            return True
        presented = headers.get("x-api-key") if anthropic else headers.get("authorization", "")[7:]
        return presented == expected

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:12]}")
        self.end_headers()
        self.wfile.write(data)

    def _sse(self, events: list[tuple[str | None, Any]], script: Script) -> None:
        """Chunked, one event a chunk, flushed as it is written: a real provider's shape on the wire."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for n, (name, data) in enumerate(events):
                if n == script.drop_stream_after_events:
                    self.close_connection = True  # no closing chunk: the reader sees a broken stream
                    return
                if n == script.stall_after_events:
                    time.sleep(script.stall_seconds)
                elif n and script.event_interval_seconds:
                    time.sleep(script.event_interval_seconds)
                payload = data if isinstance(data, str) else json.dumps(data)
                block = ((f"event: {name}\n" if name else "") + f"data: {payload}\n\n").encode()
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            with self.upstream.lock:
                self.upstream.streams_abandoned += 1
            self.close_connection = True


def _error(anthropic: bool, error_type: str, message: str) -> dict[str, Any]:
    if anthropic:
        return {"type": "error", "error": {"type": error_type, "message": message}}
    return {"error": {"type": error_type, "message": message, "param": None, "code": None}}


def _openai_usage(body: dict[str, Any], script: Script, openrouter: bool) -> dict[str, Any]:
    if script.usage is not None:
        return script.usage
    prompt, completion = estimate_tokens(body), estimate_tokens(ANSWER)
    usage: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion,
                             "total_tokens": prompt + completion,
                             "prompt_tokens_details": {"cached_tokens": 0},
                             "completion_tokens_details": {"reasoning_tokens": 0}}
    if openrouter:
        usage["cost"] = 0.0
    return usage


def _stamp() -> dict[str, Any]:
    return {"id": f"chatcmpl-{uuid.uuid4().hex[:16]}", "created": int(time.time())}


def _chat_completion(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    usage, stamp, model = _openai_usage(body, script, openrouter), _stamp(), body.get("model")
    if not body.get("stream"):
        return {**stamp, "object": "chat.completion", "model": model, "system_fingerprint": None,
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": ANSWER, "refusal": None}}],
                "usage": usage}
    include_usage = (body.get("stream_options") or {}).get("include_usage") is True
    chunk = {**stamp, "object": "chat.completion.chunk", "model": model}
    extra = {"usage": None} if include_usage else {}
    events: list[tuple[str | None, Any]] = [
        (None, {**chunk, **extra, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""},
                                               "finish_reason": None}]})]
    for word in ANSWER.split(" "):
        events.append((None, {**chunk, **extra, "choices": [{"index": 0, "delta": {"content": word + " "},
                                                             "finish_reason": None}]}))
    if script.filler_events:  # one shared event object: the mock holds the list, not the stream's bytes
        filler = {**chunk, **extra, "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": None}]}
        overhead = len(json.dumps(filler)) + len("data: \n\n")
        filler["choices"][0]["delta"]["content"] = "token " * max(0, (script.filler_event_bytes - overhead) // 6)
        events += [(None, filler)] * script.filler_events
    events.append((None, {**chunk, **extra, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}))
    if include_usage:
        events.append((None, {**chunk, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return events


def _completion(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    usage, stamp, model = _openai_usage(body, script, openrouter), _stamp(), body.get("model")
    if not body.get("stream"):
        return {**stamp, "object": "text_completion", "model": model,
                "choices": [{"index": 0, "text": ANSWER, "logprobs": None, "finish_reason": "stop"}],
                "usage": usage}
    include_usage = (body.get("stream_options") or {}).get("include_usage") is True
    chunk = {**stamp, "object": "text_completion", "model": model}
    events: list[tuple[str | None, Any]] = [
        (None, {**chunk, "choices": [{"index": 0, "text": ANSWER, "logprobs": None, "finish_reason": "stop"}]})]
    if include_usage:
        events.append((None, {**chunk, "choices": [], "usage": usage}))
    events.append((None, "[DONE]"))
    return events


def _embedding(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    inputs = body.get("input")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    prompt = estimate_tokens(inputs)
    usage = script.usage if script.usage is not None else {"prompt_tokens": prompt, "total_tokens": prompt}
    vector = [0.1, 0.2, 0.3, 0.4]
    encoded: Any = vector
    if body.get("encoding_format") == "base64":
        encoded = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return {"object": "list", "model": body.get("model"), "usage": usage,
            "data": [{"object": "embedding", "index": i, "embedding": encoded} for i in range(len(inputs))]}


def _response(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    prompt, completion = estimate_tokens(body), estimate_tokens(ANSWER)
    usage = script.usage if script.usage is not None else {
        "input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": completion, "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": prompt + completion}
    response = {"id": f"resp_{uuid.uuid4().hex[:16]}", "object": "response", "created_at": int(time.time()),
                "status": "completed", "model": body.get("model"), "error": None, "incomplete_details": None,
                "instructions": None, "metadata": {}, "parallel_tool_calls": True, "temperature": 1.0,
                "tool_choice": "auto", "tools": [], "top_p": 1.0,
                "output": [{"type": "message", "id": f"msg_{uuid.uuid4().hex[:12]}", "status": "completed",
                            "role": "assistant",
                            "content": [{"type": "output_text", "text": ANSWER, "annotations": []}]}],
                "usage": usage}
    if not body.get("stream"):
        return response
    start = {**response, "status": "in_progress", "output": [], "usage": None}
    item = response["output"][0]
    part = item["content"][0]
    where = {"item_id": item["id"], "output_index": 0}
    steps = [
        ("response.created", {"response": start}),
        ("response.output_item.added", {"output_index": 0, "item": {**item, "status": "in_progress",
                                                                       "content": []}}),
        ("response.content_part.added", {**where, "content_index": 0, "part": {**part, "text": ""}}),
        ("response.output_text.delta", {**where, "content_index": 0, "delta": ANSWER, "logprobs": []}),
        ("response.output_text.done", {**where, "content_index": 0, "text": ANSWER, "logprobs": []}),
        ("response.content_part.done", {**where, "content_index": 0, "part": part}),
        ("response.output_item.done", {"output_index": 0, "item": item}),
        ("response.completed", {"response": response}),
    ]
    return [(name, {"type": name, "sequence_number": n, **data}) for n, (name, data) in enumerate(steps)]


def _anthropic_message(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    usage = script.usage if script.usage is not None else {
        "input_tokens": estimate_tokens(body), "output_tokens": estimate_tokens(ANSWER),
        "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
    message = {"id": f"msg_{uuid.uuid4().hex[:16]}", "type": "message", "role": "assistant",
               "model": body.get("model"), "stop_reason": "end_turn", "stop_sequence": None,
               "content": [{"type": "text", "text": ANSWER}], "usage": usage}
    if not body.get("stream"):
        return message
    start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
    start_usage["output_tokens"] = 1
    events: list[tuple[str | None, Any]] = [
        ("message_start", {"type": "message_start",
                           "message": {**message, "content": [], "stop_reason": None, "usage": start_usage}}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}})]
    for word in ANSWER.split(" "):
        events.append(("content_block_delta", {"type": "content_block_delta", "index": 0,
                                               "delta": {"type": "text_delta", "text": word + " "}}))
    events += [
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": usage.get("output_tokens", 0)}}),
        ("message_stop", {"type": "message_stop"}),
    ]
    return events
