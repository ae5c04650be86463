"""Server-sent events as the proxy sees them: split incrementally from upstream bytes, relayed one by one.

The decoder holds only the event being received and looks at each byte once, so memory and time
stay bounded by the largest event, not by the stream; an event past `max_event_bytes` is refused
rather than buffered without end. Line ends (CRLF, LF or a lone CR, as SSE allows) are relayed as
LF, and bytes that are not UTF-8 as U+FFFD, which is how any SSE reader would decode them.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
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
        """The event's JSON data (None if it has none); fractions as Decimal, so money in it stays exact."""
        if not self.data or self.data == "[DONE]":
            return None
        try:
            return json.loads(self.data, parse_float=Decimal)
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
    """Feed upstream chunks as they arrive; get back the events they complete."""

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._pending = bytearray()  # line ends already made LF
        self._scanned = 0  # no blank line before this offset
        self._held_cr = False  # the last chunk ended in CR: if the next starts with LF, they are one line end
        self._max = max_event_bytes

    def feed(self, chunk: bytes) -> list[SseEvent]:
        if self._held_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF whose CR ended the previous chunk, already a line end
        self._held_cr = chunk.endswith(b"\r")
        self._pending += chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        events = []
        start = 0
        while (end := self._pending.find(b"\n\n", max(self._scanned, start))) >= 0:
            events.append(self._pending[start:end])
            start = end + 2
        del self._pending[:start]
        self._scanned = max(len(self._pending) - 1, 0)
        if len(self._pending) > self._max:
            raise EventTooLarge(f"an upstream event is larger than {self._max} bytes")
        return [parse_event(block.decode("utf-8", errors="replace")) for block in events if block.strip()]

    def flush(self) -> list[SseEvent]:
        """What is left when the upstream closes: a last event without its blank line."""
        rest = bytes(self._pending).rstrip(b"\n")
        self._pending.clear()
        self._scanned, self._held_cr = 0, False
        return [parse_event(block.decode("utf-8", errors="replace")) for block in rest.split(b"\n\n")
                if block.strip()]


def comment(text: str) -> bytes:
    """An SSE comment line: every SSE parser skips it, so it can carry the gateway's own trailer."""
    return f": {text}\n\n".encode()
