"""A fake OpenAI / Anthropic / OpenRouter server over real HTTP: recorded answers, scriptable usage and faults.

Paths: `/v1/...` answers as OpenAI (images too), `/openrouter/v1/...` as OpenRouter (with `usage.cost`),
`/v1/messages...` as Anthropic, `/groq/openai/v1/...` as Groq (`x_groq.usage`) and `/azure/openai/...` as Azure
OpenAI (deployments need `?api-version=`; the answer names the deployment's model). Each answer is a recording under tests/events/ (the same bodies and streams the
proxy's own tests parse), with the request's model, fresh ids, ANSWER as its text (a word an event when
streamed) and usage filled in. Tests queue `Script`s to choose the next answer's raw usage object
(in the provider's own convention), status, delay, or a connection dropped mid-stream. Models named `fault-…`
answer a fault (`fault-429`, `fault-503`, `fault-reset`, `fault-silence-N`), to try fallbacks with `make run`.
"""
from __future__ import annotations

import base64
import json
import math
import random
import re
import socket
import struct
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from functools import lru_cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

ANSWER = "This is a mock answer from Tollgate's built-in upstream."
EVENTS = Path(__file__).resolve().parent.parent / "tests" / "events"  # the recorded provider bodies and streams


@dataclass
class Script:
    usage: dict[str, Any] | None = None  # the raw `usage` object to answer with
    status: int = 200
    body: dict[str, Any] | None = None  # a whole body, for error answers
    delay_seconds: float = 0.0
    drop_stream_after_events: int | None = None  # close the connection after this many events
    event_interval_seconds: float | None = None  # a pause before each streamed event after the first, as a model
    # generates; None: the server's own pace
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


class DeepBacklogServer(ThreadingHTTPServer):
    """The standard library listens with a backlog of 5: a burst of 20 new connections overflowed it and the
    kernel reset some of them, which the gateway rightly reported as 502s. A real provider has a deep backlog."""

    request_queue_size = 256
    daemon_threads = True


@dataclass
class MockUpstream:
    """State shared by the handler threads; `expected_key`, when set, is the only key accepted."""

    expected_key: str | None = None
    scripts: deque = field(default_factory=deque)
    requests: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    server: ThreadingHTTPServer | None = None
    streams_abandoned: int = 0  # streams whose reader hung up before the end
    pace_seconds: tuple[float, float] = (0.0, 0.0)  # an unscripted stream's pause per event: uniform in this range
    credit_reads: list[Seen] = field(default_factory=list)  # GET /openrouter/v1/credits, kept apart from `requests`
    openrouter_credits: tuple[str, str] = ("100", "0")  # GET /openrouter/v1/credits: (total_credits, total_usage)

    def enqueue(self, **kwargs: Any) -> None:
        self.scripts.append(Script(**kwargs))

    def next_script(self) -> Script:
        with self.lock:
            return self.scripts.popleft() if self.scripts else Script()

    def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        state = self

        class Handler(_Handler):
            upstream = state

        self.server = DeepBacklogServer((host, port), Handler)
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
            return self._json(400, _error(self.path.startswith("/v1/messages"), "invalid_request_error", "bad JSON"))
        self._safely(body)

    def _safely(self, body: Any) -> None:
        try:
            self._dispatch(body)
        except (BrokenPipeError, ConnectionResetError):  # the gateway gave up (a timeout test)
            self.close_connection = True

    def _dispatch(self, body: Any) -> None:
        path = self.path.split("?")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        with self.upstream.lock:  # the scheduler's balance reads apart: a test's last request stays its own call's
            credits = self.command == "GET" and path == "/openrouter/v1/credits"
            (self.upstream.credit_reads if credits else self.upstream.requests).append(
                Seen(self.command, path, headers, body))
        if path.startswith("/gemini/"):  # Gemini's own shapes: local/mock_gemini.py (it imports this module)
            from local import mock_gemini
            return mock_gemini.serve(self, body)
        if path.startswith("/bedrock/"):  # SigV4-signed, in Bedrock's shapes: local/mock_bedrock.py (imports this)
            from local import mock_bedrock
            return mock_bedrock.serve(self, path, headers, body)
        anthropic = path.startswith("/v1/messages")
        if not self._authorised(headers, anthropic):
            return self._json(401, _error(anthropic, "authentication_error", "invalid upstream API key"))
        if path.endswith("/models"):
            return self._json(200, recorded("openai_models.json"))
        if self.command == "GET" and path == "/openrouter/v1/credits":
            return self._openrouter_credits()
        if path.endswith("/messages/count_tokens"):
            return self._json(200, {**recorded("anthropic_count_tokens.json"), "input_tokens": estimate_tokens(body)})
        model = body.get("model") if isinstance(body, dict) else None
        if isinstance(model, str) and model.startswith("fault-"):
            return self._fault(model, anthropic)
        script = self.upstream.next_script()
        if script.delay_seconds:
            time.sleep(script.delay_seconds)
        if script.status != 200:
            return self._json(script.status, script.body or _error(anthropic, "api_error", "scripted failure"))
        route = re.sub(r"^/azure/openai/deployments/[^/]+/", "", path).rsplit("/v1/", 1)[-1]
        if (own := _openai_family(self.path, route, body, script)) is not None:  # Groq, Azure, images
            status, answer = own
            return self._sse(answer, script) if isinstance(answer, list) else self._json(status, answer)
        openrouter = path.startswith("/openrouter/")
        builder = {"messages": _anthropic_message, "chat/completions": _chat_completion,
                   "completions": _completion, "embeddings": _embedding, "responses": _response}.get(route)
        if builder is None:
            return self._json(404, _error(anthropic, "not_found_error", f"no route {path}"))
        events_or_body = builder(body, script, openrouter)
        if isinstance(events_or_body, list):
            return self._sse(events_or_body, script)
        return self._json(200, events_or_body)

    # -- OpenRouter's credit (fallbacks and balances, issue #28) ---------------------------------------
    def _openrouter_credits(self) -> None:
        """`{"data": {"total_credits", "total_usage"}}` as OpenRouter answers it, the numbers exactly as set."""
        total, used = self.upstream.openrouter_credits
        data = f'{{"data": {{"total_credits": {total}, "total_usage": {used}}}}}'.encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _fault(self, model: str, anthropic: bool) -> None:
        """A provider's bad hour, by model name, to try fallbacks against `make run`: `fault-429`, `fault-500`,
        `fault-503` (that status), `fault-reset` (the connection reset before any answer), `fault-silence-N`
        (no answer for N seconds, at most 600, then the connection closed)."""
        kind = model.removeprefix("fault-")
        if kind.isdigit() and 400 <= int(kind) <= 599:
            error_type = "rate_limit_error" if kind == "429" else "api_error"
            return self._json(int(kind), _error(anthropic, error_type, f"scripted fault {kind}"))
        if kind.startswith("silence-") and kind[8:].isdigit():
            time.sleep(min(int(kind[8:]), 600))
        elif kind != "reset":
            return self._json(404, _error(anthropic, "not_found_error", f"no fault named {model!r}"))
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # RST on close
        self.close_connection = True

    def _authorised(self, headers: dict[str, str], anthropic: bool) -> bool:
        expected = self.upstream.expected_key
        if expected is None:
            return True
        presented = headers.get("x-api-key") if anthropic else (
            headers.get("api-key") or headers.get("x-goog-api-key") or headers.get("authorization", "")[7:])
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
        self._chunked("text/event-stream", [_sse_block(name, data) for name, data in events], script)

    def _chunked(self, content_type: str, blocks: list[bytes], script: Script, **headers: str) -> None:
        """Chunked, one event (or frame) a chunk, flushed as it is written: a real provider's shape on the wire; the
        script may pace, stall or drop it part way."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Transfer-Encoding", "chunked")
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        try:
            for n, block in enumerate(blocks):
                if n == script.drop_stream_after_events:
                    self.close_connection = True  # no closing chunk: the reader sees a broken stream
                    return
                if n == script.stall_after_events:
                    time.sleep(script.stall_seconds)
                elif n and (pause := script.event_interval_seconds
                            if script.event_interval_seconds is not None else random.uniform(*self.upstream.pace_seconds)):
                    time.sleep(pause)
                self.wfile.write(b"%x\r\n%s\r\n" % (len(block), block))
                self.wfile.flush()
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            with self.upstream.lock:
                self.upstream.streams_abandoned += 1
            self.close_connection = True


def _sse_block(name: str | None, data: Any) -> bytes:
    if name == ":":  # a comment line
        return f": {data}\n\n".encode()
    payload = data if isinstance(data, str) else json.dumps(data)
    return ((f"event: {name}\n" if name else "") + f"data: {payload}\n\n").encode()


# -- Answers: the recordings under tests/events/, with this request's model, ids, text and usage filled in ------
def recorded(name: str) -> Any:
    """A fresh copy of a recording: a body (JSON), or a stream as [(event name or None, data)], JSON data parsed
    and a comment line as (":", its text)."""
    text = _recording(name)
    if name.endswith(".json"):
        return json.loads(text)
    events: list[tuple[str | None, Any]] = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines())
        if "" in fields:  # ": OPENROUTER PROCESSING"
            events.append((":", fields[""]))
        else:
            data = fields["data"]
            events.append((fields.get("event"), json.loads(data) if data.startswith("{") else data))
    return events


@lru_cache(maxsize=None)
def _recording(name: str) -> str:
    return (EVENTS / name).read_text()


def _usage(recorded_usage: dict[str, Any], script: Script, **counts: int) -> dict[str, Any]:
    """The script's raw usage object; by default the recording's, every number zeroed, then `counts`."""
    if script.usage is not None:
        return script.usage
    return {**_zeroed(recorded_usage), **counts}


def _zeroed(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _zeroed(v) for k, v in value.items()}
    return type(value)(0) if isinstance(value, (int, float)) else value  # OpenRouter's `cost` stays a float


def _fresh_id(recorded_id: str) -> str:
    """A new id in the recording's style: its prefix ("chatcmpl-", "msg_", "gen-", "resp_"), then random hex."""
    prefix = re.match(r"[a-z]+[-_]", recorded_id)
    return (prefix.group() if prefix else "") + uuid.uuid4().hex[:24]


def _stamp(recorded_id: str, model: Any, created: str = "created") -> dict[str, Any]:
    """An OpenAI answer's own parts: a new id, now, and the model asked for."""
    return {"id": _fresh_id(recorded_id), created: int(time.time()), "model": model}


def _words() -> list[str]:
    """ANSWER a word an event, as a model streams it."""
    return [word + " " for word in ANSWER.split(" ")]


def _error(anthropic: bool, error_type: str, message: str) -> dict[str, Any]:
    body = recorded("anthropic_error.json" if anthropic else "openai_error.json")
    body["error"].update(type=error_type, message=message)
    return body


def _openai_usage(recorded_usage: dict[str, Any], body: dict[str, Any], script: Script) -> dict[str, Any]:
    prompt, completion = estimate_tokens(body), estimate_tokens(ANSWER)
    return _usage(recorded_usage, script, prompt_tokens=prompt, completion_tokens=completion,
                  total_tokens=prompt + completion)


def _chat_completion(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    if body.get("stream"):
        stream = recorded("openrouter_chat_stream_cost.sse" if openrouter else "openai_chat_stream_usage.sse")
        return _openai_stream(stream, body, script, _delta_text)
    answer = recorded("openrouter_chat_cost.json" if openrouter else "openai_chat_cached_reasoning.json")
    answer["choices"][0]["message"]["content"] = ANSWER
    return {**answer, **_stamp(answer["id"], body.get("model")), "usage": _openai_usage(answer["usage"], body, script)}


def _completion(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    if body.get("stream"):
        return _openai_stream(recorded("openai_completion_stream.sse"), body, script, _choice_text)
    answer = recorded("openai_completion.json")
    answer["choices"][0]["text"] = ANSWER
    return {**answer, **_stamp(answer["id"], body.get("model")), "usage": _openai_usage(answer["usage"], body, script)}


def _delta_text(choice: dict[str, Any], text: str | None) -> None:
    """A chat chunk's text is its delta's `content` (none in OpenAI's last chunk)."""
    choice["delta"].pop("content", None)
    if text is not None:
        choice["delta"]["content"] = text


def _choice_text(choice: dict[str, Any], text: str | None) -> None:
    choice["text"] = text or ""


def _openai_stream(recording: list, body: dict[str, Any], script: Script, put_text) -> list:
    """A chat or completions stream from a recording that ends [a text chunk, the last chunk, the usage chunk,
    [DONE]]: what comes before it as recorded, the text chunk once a word (then `filler_events` more), the last
    chunk, and the usage chunk only if the caller asked for usage, as OpenAI does."""
    *opening, (_, text_chunk), (_, last), (_, usage_chunk), done = recording
    include_usage = (body.get("stream_options") or {}).get("include_usage") is True
    stamp = _stamp(text_chunk["id"], body.get("model"))

    def fresh(recorded_chunk: dict[str, Any]) -> dict[str, Any]:
        data = {**json.loads(json.dumps(recorded_chunk)), **stamp}
        if not include_usage:
            data.pop("usage", None)
        return data

    def with_text(recorded_chunk: dict[str, Any], text: str | None) -> dict[str, Any]:
        data = fresh(recorded_chunk)
        put_text(data["choices"][0], text)
        return data

    events = [(name, fresh(data) if isinstance(data, dict) else data) for name, data in opening]
    events += [(None, with_text(text_chunk, word)) for word in _words()]
    if script.filler_events:  # one shared event object: the mock holds the list, not the stream's bytes
        filler = with_text(text_chunk, "")
        overhead = len(json.dumps(filler)) + len("data: \n\n")
        put_text(filler["choices"][0], "token " * max(0, (script.filler_event_bytes - overhead) // 6))
        events += [(None, filler)] * script.filler_events
    events.append((None, with_text(last, None)))
    if include_usage:
        events.append((None, {**usage_chunk, **stamp, "usage": _openai_usage(usage_chunk["usage"], body, script)}))
    return events + [done]


def _embedding(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    answer = recorded("openai_embedding.json")
    inputs = body.get("input")
    inputs = inputs if isinstance(inputs, list) else [inputs]
    prompt = estimate_tokens(inputs)
    item = answer["data"][0]
    if body.get("encoding_format") == "base64":
        vector = item["embedding"]
        item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    return {**answer, "model": body.get("model"), "data": [{**item, "index": i} for i in range(len(inputs))],
            "usage": _usage(answer["usage"], script, prompt_tokens=prompt, total_tokens=prompt)}


def _response(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    """The Responses API; the recorded stream's `response.completed` holds the whole answer, the body when not
    streamed."""
    events = recorded("openai_responses_stream.sse")
    response = events[-1][1]["response"]
    prompt, completion = estimate_tokens(body), estimate_tokens(ANSWER)
    stamp = _stamp(response["id"], body.get("model"), created="created_at")
    message = response["output"][0]
    message["content"][0]["text"] = ANSWER
    response.update(stamp, usage=_usage(response["usage"], script, input_tokens=prompt, output_tokens=completion,
                                        total_tokens=prompt + completion))
    if not body.get("stream"):
        return response
    answer: list[tuple[str | None, Any]] = []
    for name, data in events:
        if name == "response.output_text.delta":
            answer += [(name, {**data, "delta": word}) for word in _words()]
            continue
        if name in ("response.created", "response.in_progress"):
            data["response"].update(stamp)
        elif name == "response.output_text.done":
            data["text"] = ANSWER
        elif name == "response.content_part.done":
            data["part"] = message["content"][0]
        elif name == "response.output_item.done":
            data["item"] = message
        answer.append((name, data))
    return [(name, {**data, "sequence_number": n}) for n, (name, data) in enumerate(answer)]


def _anthropic_message(body: dict[str, Any], script: Script, openrouter: bool) -> Any:
    message = recorded("anthropic_message_cache.json")
    usage = _usage(message["usage"], script, input_tokens=estimate_tokens(body), output_tokens=estimate_tokens(ANSWER))
    message.update(id=_fresh_id(message["id"]), model=body.get("model"), usage=usage)
    message["content"][0]["text"] = ANSWER
    if not body.get("stream"):
        return message
    events: list[tuple[str | None, Any]] = []
    for name, data in recorded("anthropic_stream.sse"):
        if name == "message_start":  # input and cache counts come first; output only in message_delta
            start_usage = {k: v for k, v in usage.items() if k != "output_tokens"}
            data["message"].update(id=message["id"], model=message["model"], usage={**start_usage, "output_tokens": 1})
        elif name == "content_block_delta":
            events += [(name, {**data, "delta": {**data["delta"], "text": word}}) for word in _words()]
            continue
        elif name == "message_delta":
            data["usage"] = {"output_tokens": usage.get("output_tokens", 0)}
        events.append((name, data))
    return events


# -- The OpenAI family's own answers: Groq, Azure OpenAI, images ----------------------------------------------------
# Azure answers with the model a deployment runs, not the deployment's name.
AZURE_DEPLOYMENTS = {"gpt-4o-mini": "gpt-4o-mini-2024-07-18", "gpt-4o": "gpt-4o-2024-11-20",
                     "text-embedding-3-small": "text-embedding-3-small"}
# A 1x1 transparent PNG: what an image answer carries, base64.
TINY_PNG = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kgAAAABJRU5ErkJggg==")


def _openai_family(raw_path: str, route: str, body: Any, script: Script) -> tuple[int, Any] | None:
    """(status, body or events) for Groq's, Azure's and the images routes; None for the others."""
    path, _, query = raw_path.partition("?")
    if path.startswith("/groq/") and route == "chat/completions":
        return 200, _groq_chat(body, script)
    if path.startswith("/azure/"):
        deployment = re.match(r"^/azure/openai/deployments/([^/]+)/", path)
        if deployment and "api-version=" not in query:  # Azure's answer to a deployment call without a version
            return 404, {"error": {"code": "404", "message": "Resource not found"}}
        name = deployment.group(1) if deployment else body.get("model")
        body = {**body, "model": AZURE_DEPLOYMENTS.get(name, name)}
        builder = {"chat/completions": _azure_chat, "embeddings": lambda b, s: _embedding(b, s, False),
                   "responses": lambda b, s: _response(b, s, False), "images/generations": _image}.get(route)
        return (200, builder(body, script)) if builder else None
    if route == "images/generations":
        return 200, _image(body, script)
    return None


def _groq_chat(body: dict[str, Any], script: Script) -> Any:
    """Groq states usage in `usage`, and a stream's in `x_groq.usage` on its last chunk (with `stream_options`
    also in that chunk's `usage`, then a usage chunk, as OpenAI)."""
    if not body.get("stream"):
        answer = recorded("groq_chat.json")
        answer["choices"][0]["message"]["content"] = ANSWER
        return {**answer, **_stamp(answer["id"], body.get("model")),
                "usage": _openai_usage(answer["usage"], body, script)}
    recording = recorded("groq_chat_stream_usage.sse")
    usage = _openai_usage(recording[-2][1]["usage"], body, script)
    events = _openai_stream(recording, body, script, _delta_text)
    for _, data in events:
        if isinstance(data, dict) and isinstance((data.get("x_groq") or {}).get("usage"), dict):
            data["x_groq"] = {**data["x_groq"], "usage": usage}
            if "usage" in data:
                data["usage"] = usage
    return events


def _azure_chat(body: dict[str, Any], script: Script) -> Any:
    """Azure's chat: content-filter results beside OpenAI's fields; a stream opens with the prompt's filter
    results in a chunk of no model and no choices."""
    if not body.get("stream"):
        answer = recorded("azure_chat.json")
        answer["choices"][0]["message"]["content"] = ANSWER
        return {**answer, **_stamp(answer["id"], body.get("model")),
                "usage": _openai_usage(answer["usage"], body, script)}
    prompt_filter, *rest = recorded("azure_chat_stream_usage.sse")
    return [prompt_filter] + _openai_stream(rest, body, script, _delta_text)


def _image(body: dict[str, Any], script: Script) -> Any:
    """GPT image models answer base64 with their token usage (streamed: partial images, then the completed one);
    DALL-E answers a URL (or base64 when asked) and no usage."""
    model = body.get("model") or "dall-e-2"
    count = body.get("n") if isinstance(body.get("n"), int) and 0 < body.get("n") <= 10 else 1
    if not str(model).startswith(("gpt-image", "chatgpt-image")):
        answer = recorded("openai_image_dalle.json")
        item = ({"b64_json": TINY_PNG} if body.get("response_format") == "b64_json"
                else {"url": "https://images.example.invalid/img.png"})
        return {**answer, "created": int(time.time()),
                "data": [{**item, "revised_prompt": body.get("prompt")} for _ in range(count)]}
    answer = recorded("openai_image_gpt.json")
    prompt = estimate_tokens(body.get("prompt"))
    usage = _usage(answer["usage"], script, input_tokens=prompt, output_tokens=272 * count,
                   total_tokens=prompt + 272 * count,
                   input_tokens_details={"text_tokens": prompt, "image_tokens": 0})
    size, quality = body.get("size") or "1024x1024", body.get("quality") or "low"
    if not body.get("stream"):
        return {**answer, "created": int(time.time()), "size": size, "quality": quality,
                "data": [{"b64_json": TINY_PNG} for _ in range(count)], "usage": usage}
    events = []
    for name, data in recorded("openai_image_stream.sse"):
        data = {**data, "b64_json": TINY_PNG, "created_at": int(time.time()), "size": size, "quality": quality}
        if name == "image_generation.partial_image":
            events += [(name, {**data, "partial_image_index": n}) for n in range(body.get("partial_images") or 0)]
        else:
            events.append((name, {**data, "usage": usage}))
    return events
