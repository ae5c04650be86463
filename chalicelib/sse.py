"""Server-sent events as the proxy sees them: split incrementally from upstream bytes, forwarded byte for byte.

The decoder holds only the event being received, so memory is bounded by the largest event, not
by the stream; an event past `max_event_bytes` is refused rather than buffered without end.
"""
from __future__ import annotations

import codecs
import json
from dataclasses import dataclass
from typing import Any

MAX_EVENT_BYTES = 8 * 1024 * 1024


class EventTooLarge(ValueError):
    """One upstream event grew past the bound the gateway keeps in memory."""


@dataclass(frozen=True)
class SseEvent:
    """One server-sent event, with its raw text kept so it can be forwarded as it came."""

    event: str | None
    data: str
    raw: str

    def json(self) -> Any | None:
        if not self.data or self.data == "[DONE]":
            return None
        try:
            return json.loads(self.data)
        except ValueError:
            return None

    def wire(self) -> bytes:
        return f"{self.raw}\n\n".encode()


def parse_event(raw: str) -> SseEvent:
    """One blank-line-delimited block → its `event` name and `data` (multi-line data joined by newlines)."""
    event, data_lines = None, []
    for line in raw.split("\n"):
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "event":
            event = value
        elif name == "data":
            data_lines.append(value)
    return SseEvent(event=event, data="\n".join(data_lines), raw=raw)


class SseDecoder:
    """Feed upstream chunks as they arrive; get back the events they complete (CRLF read as LF)."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._text = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._pending = ""
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        self._pending += self._text.decode(chunk)
        held_cr = self._pending.endswith("\r")  # its LF may be in the next chunk
        if held_cr:
            self._pending = self._pending[:-1]
        self._pending = self._pending.replace("\r\n", "\n")
        *blocks, self._pending = self._pending.split("\n\n")
        if held_cr:
            self._pending += "\r"
        if len(self._pending) > self._max:
            raise EventTooLarge(f"an upstream event is longer than {self._max} characters")
        return [parse_event(block) for block in blocks if block.strip()]

    def flush(self) -> list[SseEvent]:
        """What is left when the upstream closes: a last event without its blank line."""
        rest = (self._pending + self._text.decode(b"", final=True)).replace("\r\n", "\n").rstrip("\n")
        self._pending = ""
        return [parse_event(block) for block in rest.split("\n\n") if block.strip()]


def comment(text: str) -> bytes:
    """An SSE comment line: every SSE parser skips it, so it can carry the gateway's own trailer."""
    return f": {text}\n\n".encode()
