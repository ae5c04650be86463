"""The mock upstream's Gemini answers: `/gemini/{v1,v1beta}/models/{model}:…` from the recordings under tests/events/
(gemini_*), and Google's OpenAI-compatible `/gemini/v1beta/openai/chat/completions` as the OpenAI mock answers it.

Scripts work as for the other providers: `usage` is the raw `usageMetadata` object, `status` answers in Google's
error shape, and a stream's faults (dropped, stalled, paced) are the shared SSE writer's.
"""
from __future__ import annotations

import json
import re
import time
from typing import Any
from urllib.parse import parse_qs

from local import mock_upstream
from local.mock_upstream import ANSWER, Script, _words, recorded

_MODEL_CALL = re.compile(r"/gemini/(?:v1|v1beta)/models/([^/]+):([A-Za-z]+)")
_RPC_STATUS = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
               429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}


def serve(handler: Any, body: Any) -> None:
    """Answer one request under `/gemini/` on `handler` (the mock's request handler)."""
    path, _, query = handler.path.partition("?")
    headers = {k.lower(): v for k, v in handler.headers.items()}
    if path.startswith("/gemini/v1beta/openai/"):
        return _compatible(handler, path, body)
    if "key" in parse_qs(query):  # a caller's key must stay at the gateway: make a leak loud
        return handler._json(400, error(400, "a key reached upstream in the query string"))
    expected = handler.upstream.expected_key
    if expected is not None and headers.get("x-goog-api-key") != expected:
        return handler._json(400, error(400, "API key not valid. Please pass a valid API key."))
    if handler.command == "GET":
        return handler._json(200, recorded("gemini_models.json"))
    call = _MODEL_CALL.fullmatch(path)
    if call is None:
        return handler._json(404, error(404, f"no route {path}"))
    model, method = call.groups()
    if method == "countTokens":
        return handler._json(200, {**recorded("gemini_count_tokens.json"), "totalTokens": prompt_tokens(body)})
    script = handler.upstream.next_script()
    if script.delay_seconds:
        time.sleep(script.delay_seconds)
    if script.status != 200:
        return handler._json(script.status, script.body or error(script.status, "scripted failure"))
    if method in ("embedContent", "batchEmbedContents"):
        return handler._json(200, _embedding(method, body, script))
    if method == "generateContent":
        return handler._json(200, _generated(model, body, script))
    if method == "streamGenerateContent":
        chunks = _stream(model, body, script)
        if "alt=sse" in query.split("&"):
            return handler._sse([(None, chunk) for chunk in chunks], script)
        return handler._json(200, chunks)  # without `alt=sse` Google answers one JSON array of the chunks
    return handler._json(404, error(404, f"models/{model} has no method {method}"))


def error(status: int, message: str) -> dict[str, Any]:
    body = recorded("gemini_error.json")
    body["error"].update(code=status, message=message, status=_RPC_STATUS.get(status, "UNKNOWN"))
    return body


def prompt_tokens(body: Any) -> int:
    """About four characters a token over every `text` of the request: stable, not exact."""
    return sum(mock_upstream.estimate_tokens(text) for text in _texts(body))


def _texts(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for k, v in value.items() for t in ([v] if k == "text" and isinstance(v, str) else _texts(v))]
    if isinstance(value, list):
        return [t for v in value for t in _texts(v)]
    return []


def _usage(body: Any, script: Script) -> dict[str, Any]:
    """The script's raw `usageMetadata`; by default the prompt's and ANSWER's estimated counts."""
    if script.usage is not None:
        return script.usage
    prompt, answer = prompt_tokens(body), mock_upstream.estimate_tokens(ANSWER)
    return {"promptTokenCount": prompt, "candidatesTokenCount": answer, "totalTokenCount": prompt + answer,
            "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt}]}


def _generated(model: str, body: Any, script: Script) -> dict[str, Any]:
    answer = recorded("gemini_generate_content.json")
    answer["candidates"][0]["content"]["parts"][0]["text"] = ANSWER
    return {**answer, "modelVersion": model, "usageMetadata": _usage(body, script)}


def _stream(model: str, body: Any, script: Script) -> list[dict[str, Any]]:
    """ANSWER a word a chunk. Each chunk carries the prompt's counts, as Google's do; the last one the whole usage."""
    first, *_, last = _recorded_stream()
    usage = _usage(body, script)
    running = {k: v for k, v in usage.items() if k in ("promptTokenCount", "cachedContentTokenCount",
                                                         "toolUsePromptTokenCount", "promptTokensDetails")}
    words = _words()
    chunks = []
    for n, word in enumerate(words):
        chunk = json.loads(json.dumps(last if n == len(words) - 1 else first))
        chunk["candidates"][0]["content"]["parts"][0]["text"] = word
        chunk.update(modelVersion=model, usageMetadata=usage if n == len(words) - 1 else running)
        chunks.append(chunk)
    return chunks


def _recorded_stream() -> list[dict[str, Any]]:
    text = (mock_upstream.EVENTS / "gemini_stream.sse").read_text().replace("\r\n", "\n")
    return [json.loads(block.removeprefix("data: ")) for block in text.strip().split("\n\n")]


def _embedding(method: str, body: Any, script: Script) -> dict[str, Any]:
    prompt = prompt_tokens(body)
    usage = script.usage if script.usage is not None else {"promptTokenCount": prompt, "totalTokenCount": prompt}
    if method == "embedContent":
        return {**recorded("gemini_embed_content.json"), "usageMetadata": usage}
    answer = recorded("gemini_batch_embed_contents.json")
    requests = body.get("requests") if isinstance(body, dict) and isinstance(body.get("requests"), list) else [{}]
    return {**answer, "embeddings": answer["embeddings"] * len(requests), "usageMetadata": usage}


def _compatible(handler: Any, path: str, body: Any) -> None:
    """Google's OpenAI-compatible endpoint: the key as a Bearer token, OpenAI's answers and errors."""
    expected = handler.upstream.expected_key
    if expected is not None and handler.headers.get("authorization", "") != f"Bearer {expected}":
        return handler._json(401, mock_upstream._error(False, "authentication_error", "invalid upstream API key"))
    if not path.endswith("/chat/completions"):
        return handler._json(404, mock_upstream._error(False, "not_found_error", f"no route {path}"))
    script = handler.upstream.next_script()
    if script.status != 200:
        return handler._json(script.status, script.body or mock_upstream._error(False, "api_error", "scripted failure"))
    answer = mock_upstream._chat_completion(body, script, False)
    return handler._sse(answer, script) if isinstance(answer, list) else handler._json(200, answer)
