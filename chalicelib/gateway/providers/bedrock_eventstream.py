"""AWS event-stream frames (`application/vnd.amazon.eventstream`), as Bedrock streams its answers: split
incrementally from upstream bytes and relayed one by one, each as the exact bytes it came in.

A frame: prelude (total length, headers length: 4 bytes each, big-endian; the prelude's CRC32), headers,
payload, the whole message's CRC32. Both CRCs are checked. The decoder holds at most one frame, refused
before it is buffered when its prelude announces more than `max_frame_bytes`. Not botocore's EventStreamBuffer:
it hands back parsed messages, not the bytes to relay, and its bound is its own (24 MB payloads), not the gateway's.
"""
from __future__ import annotations

import json
import struct
import zlib
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from chalicelib.gateway.sse import MAX_EVENT_BYTES, EventTooLarge

PRELUDE_BYTES = 12  # total length, headers length, prelude CRC
MIN_FRAME_BYTES = PRELUDE_BYTES + 4  # no headers, no payload, the message CRC
# Bytes a header value of each type takes after its type byte (None: a 2-byte length, then that many bytes).
VALUE_BYTES = {0: 0, 1: 0, 2: 1, 3: 2, 4: 4, 5: 8, 6: None, 7: None, 8: 8, 9: 16}


class CorruptFrame(EventTooLarge):
    """A frame whose CRC or lengths do not hold: the stream cannot be read past it."""


@dataclass
class Frame:
    """One event-stream message: its headers (string values; others kept as raw bytes), payload and wire bytes."""

    headers: dict[str, Any]
    payload: bytes
    raw: bytes
    _parsed: Any = field(default=None, repr=False)

    @property
    def event_type(self) -> str | None:
        """The `:event-type` (messageStart, metadata, chunk…), or the `:exception-type` of an exception frame."""
        return self.headers.get(":event-type") or self.headers.get(":exception-type")

    def json(self) -> Any | None:
        """`{event type: payload JSON}`, as boto3 hands events to its callers (fractions as Decimal); None if
        the payload is no JSON object."""
        if self._parsed is None:
            try:
                payload = json.loads(self.payload, parse_float=Decimal) if self.payload else {}
            except ValueError:
                payload = None
            self._parsed = {self.event_type or "": payload} if isinstance(payload, dict) else False
        return self._parsed or None

    def wire(self) -> bytes:
        return self.raw


def parse_headers(data: bytes) -> dict[str, Any]:
    """Header name (1-byte length), type byte, value; CorruptFrame if they overrun their block."""
    headers: dict[str, Any] = {}
    at = 0
    try:
        while at < len(data):
            name_length = data[at]
            name = data[at + 1:at + 1 + name_length].decode("utf-8")
            at += 1 + name_length
            kind = data[at]
            at += 1
            size = VALUE_BYTES[kind]
            if size is None:
                (size,) = struct.unpack_from(">H", data, at)
                at += 2
            value = data[at:at + size]
            if len(value) != size:
                raise CorruptFrame("an event-stream header overruns its block")
            headers[name] = value.decode("utf-8") if kind == 7 else value
            at += size
    except (IndexError, KeyError, UnicodeDecodeError, struct.error):
        raise CorruptFrame("an event-stream header block is malformed") from None
    return headers


class EventStreamDecoder:
    """Feed upstream chunks as they arrive; get back the frames they complete."""

    def __init__(self, max_frame_bytes: int = MAX_EVENT_BYTES) -> None:
        self._pending = bytearray()
        self._max = max_frame_bytes

    def feed(self, chunk: bytes) -> list[Frame]:
        self._pending += chunk
        frames = []
        while len(self._pending) >= PRELUDE_BYTES:
            total, headers_length, prelude_crc = struct.unpack_from(">III", self._pending)
            if zlib.crc32(self._pending[:8]) != prelude_crc:
                raise CorruptFrame("an event-stream prelude fails its CRC")
            if total > self._max:
                raise EventTooLarge(f"an upstream event-stream frame is larger than {self._max} bytes")
            if total < MIN_FRAME_BYTES or headers_length > total - MIN_FRAME_BYTES:
                raise CorruptFrame("an event-stream prelude states impossible lengths")
            if len(self._pending) < total:
                break
            raw = bytes(self._pending[:total])
            del self._pending[:total]
            (message_crc,) = struct.unpack_from(">I", raw, total - 4)
            if zlib.crc32(raw[:-4]) != message_crc:
                raise CorruptFrame("an event-stream frame fails its CRC")
            headers_end = PRELUDE_BYTES + headers_length
            frames.append(Frame(parse_headers(raw[PRELUDE_BYTES:headers_end]), raw[headers_end:-4], raw))
        return frames

    def flush(self) -> list[Frame]:
        """The upstream closed: a partial frame left over is a broken stream."""
        if self._pending:
            self._pending.clear()
            raise CorruptFrame("the upstream closed in the middle of an event-stream frame")
        return []

