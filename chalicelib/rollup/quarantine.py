"""The rollup's quarantine: stream records that cannot be folded, kept with the reason for a person to look at.

Entries live in the aggregates table under one partition, `pk = quarantine#calls`, sorted by
`<stream label>#<sequence number>`: a redelivered record overwrites its own entry, and one Query lists
(or counts) them. They have no `kind`, so the by_kind index and the reports never see them. While any
entry is there, /health says degraded and the evaluator keeps one alert open (decide.decide_quarantine);
an entry stays until an operator deletes it (after fixing the record, or deciding it should not count).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from chalicelib.clock import iso
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.rollup.models import QuarantineEntry

PK = "quarantine#calls"
IMAGE_BYTES_MAX = 64_000  # kept whole up to this; longer images keep their start (the call log keeps the record)
REASON_CHARS_MAX = 1_000
COUNT_PAGES_MAX = 3


@dataclass(frozen=True)
class Quarantined:
    """One stream record set aside: where it was in the stream, what it held, why it could not be folded."""

    stream: str  # the stream's label
    sequence_number: str
    event_name: str
    image: dict[str, Any] | None  # the call as the stream delivered it (new image, or old for a REMOVE)
    reason: str


def printable(text: str, limit: int = REASON_CHARS_MAX) -> str:
    """`text` as something every store and log takes: valid Unicode, no control characters, bounded."""
    clean = text.encode("utf-8", "replace").decode("utf-8")
    return "".join(c if c.isprintable() else "?" for c in clean)[:limit]


def _entry(entry: Quarantined, now: datetime) -> QuarantineEntry:
    image = json.dumps(entry.image, sort_keys=True)  # ASCII: a lone surrogate stays an escape
    stored = QuarantineEntry(
        PK, f"{entry.stream}#{entry.sequence_number}", stream=entry.stream, sequence_number=entry.sequence_number,
        event_name=entry.event_name, reason=printable(entry.reason), image=image[:IMAGE_BYTES_MAX],
        image_bytes=len(image), quarantined_at=iso(now))
    called = entry.image or {}
    for name in ("account", "sk", "call_id"):  # enough to find the call in the call log
        value = called.get(name)
        if isinstance(value, dict) and isinstance(value.get("S"), str):
            setattr(stored, f"call_{name}", printable(value["S"], 2_000))
    return stored


def keep(entries: list[Quarantined], now: datetime) -> None:
    """Store the entries (each overwrites its own earlier copy), log and count them."""
    for entry in entries:
        _entry(entry, now).save()
        logger.error("stream record quarantined: it cannot be folded into the aggregates",
                     extra={"sequence_number": entry.sequence_number, "reason": printable(entry.reason)})
    if entries:
        metrics.add_metric(name="RollupQuarantined", unit=MetricUnit.Count, value=len(entries))


def count() -> tuple[int, bool]:
    """(entries found, whether there may be more than that): a few Query pages at most, keys only."""
    pages = QuarantineEntry.query(PK, attributes_to_get=["pk", "day"]).page_iter
    found = 0
    for _, page in zip(range(COUNT_PAGES_MAX), pages):
        found += page["Count"]
        if "LastEvaluatedKey" not in page:
            return found, False
    return found, True
