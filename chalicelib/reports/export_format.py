"""Exports of the call log, the pure part: what an export covers (its spec), how its file is written row by row
(CSV or JSON), export ids, deadlines and the state an export shows. No AWS here: chalicelib/reports/exports.py
reads the calls and writes the file.
"""
from __future__ import annotations

import csv
import io
import json
import re
import secrets
import time
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any, Callable

from chalicelib.clock import EPOCH, parse_iso, precise
from chalicelib.errors import InvalidRequest
from chalicelib.reports import ranges
from chalicelib.query import Query

CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}
FILTERS = {"provider": "provider", "model": "model", "team": "team", "user": "user", "key": "key_id"}  # param: field
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EXPORT_FIELDS = ("call_id", "ts", "provider", "model", "endpoint", "operation", "account", "team", "key_id", "user",
                 "session", "tags", "status", "error_type", "input_tokens", "cache_read_tokens", "cache_write_tokens",
                 "cache_write_1h_tokens", "output_tokens", "reasoning_tokens", "input_audio_tokens",
                 "output_audio_tokens", "web_searches", "service_tier", "speed", "cost_usd", "priced", "price_source",
                 "price_version", "repriced_at", "provider_cost_usd", "estimated_cost_usd", "price_drift",
                 "latency_ms", "ttft_ms", "output_tokens_per_s", "stream", "attempts")
EXPORT_ID = re.compile(r"exp_[0-9a-f]{32}")
STATES = ("queued", "running", "ready", "failed")
PREFIX = "exports/"  # the archive bucket's folder of export files
KEEP_DAYS = 3  # an export's file (the bucket's lifecycle: infra/template.py) and record (TTL) go after this
LAMBDA_RESPONSE_MAX = 6 * 1024 * 1024 - 64 * 1024  # Lambda's 6 MB response, less room for status and headers


def new_export_id(now: datetime) -> str:
    """`exp_` + the millisecond it was asked for (12 hex digits, so ids sort by time) + 80 random bits."""
    millis = int((now - EPOCH).total_seconds() * 1000)
    return f"exp_{millis:012x}{secrets.token_hex(10)}"


def first_id_after(moment: datetime) -> str:
    """The smallest export id asked for at or after `moment`: a sort-key bound for recent exports."""
    return f"exp_{int((moment - EPOCH).total_seconds() * 1000):012x}"


def check_export_id(export_id: Any) -> str:
    if not isinstance(export_id, str) or not EXPORT_ID.fullmatch(export_id):
        raise InvalidRequest("`export_id` must be an id from `GET /api/export`: exp_ and 32 hex digits")
    return export_id


@dataclass(frozen=True)
class Window:
    """One UTC day of an export: its calls are those whose sort key lies in [low, high]."""

    day: str
    low: str
    high: str


@dataclass(frozen=True)
class ExportSpec:
    """What an export holds: a format, a time range (precise UTC stamps, both ends included) and the scope."""

    format: str
    start: str
    end: str
    last_day: str
    named: dict[str, Any]
    account: str | None = None  # the one account read; None: every account
    filters: dict[str, str] = field(default_factory=dict)

    @classmethod
    def from_params(cls, params: Query, now: datetime, account: str | None) -> "ExportSpec":
        """The export the query parameters ask for (`account` already scoped to the caller's key); 400s say why."""
        fmt = params.get("format") or "csv"
        if fmt not in CONTENT_TYPES:
            raise InvalidRequest("`format` must be csv or json")
        span = ranges.parse(params, now, default=("hours", 24))
        filters = {name: params[name] for name in FILTERS if params.get(name)}
        return cls(fmt, precise(span.start), precise(span.end), span.last_day, dict(span.named), account, filters)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "ExportSpec":
        return cls(**json.loads(text))

    def windows(self) -> list[Window]:
        """Each UTC day the range touches, oldest first, with the sort-key bounds of its part of the range."""
        found, day, last = [], date.fromisoformat(self.start[:10]), date.fromisoformat(self.last_day)
        while day <= last:
            low = max(self.start, f"{day.isoformat()}T00:00:00.000000Z")
            high = min(self.end, f"{day.isoformat()}T23:59:59.999999Z")
            if low <= high:
                found.append(Window(day.isoformat(), low, high + "#~"))  # `#~` sorts after every `#call_…`
            day += timedelta(days=1)
        return found

    def range_view(self) -> dict[str, Any]:
        return {**self.named, "from": self.start[:19] + "Z", "to": self.end[:19] + "Z"}

    @property
    def content_type(self) -> str:
        return CONTENT_TYPES[self.format]

    @property
    def file_name(self) -> str:
        named = self.named
        if "hours" in named:
            label = f"{self.start[:10]}-{named['hours']}h"
        elif "month" in named:
            label = named["month"]
        else:
            label = f"{self.start[:10]}-{self.last_day}"
        return f"tollgate-calls-{label}.{self.format}"

    @property
    def content_disposition(self) -> str:
        return f'attachment; filename="{self.file_name}"'


def csv_tags(tags: dict[str, str] | None) -> str:
    """A call's tags in one CSV cell, as callers send them in X-Tollgate-Tags: `k=v,k2=v2`, sorted by name."""
    return ",".join(f"{name}={value}" for name, value in sorted((tags or {}).items()))


def csv_attempts(attempts: list[dict[str, Any]] | None) -> str:
    """A fallen-back call's tries in one CSV cell, as compact JSON (a model name may hold any separator)."""
    return json.dumps(attempts, separators=(",", ":"), ensure_ascii=False) if attempts else ""


class ExportWriter:
    """An export's text in pieces: `head()`, a `row()` per call (oldest first), `tail()`. Joined, they are one
    CSV file (a header, then one line per call, formula-looking cells quoted) or one JSON document
    `{"range": {...}, "calls": [...]}`. `rows_before` continues a file whose first rows were written already."""

    def __init__(self, spec: ExportSpec, rows_before: int = 0) -> None:
        self.spec, self.rows = spec, rows_before
        self._out = io.StringIO()
        self._csv = csv.DictWriter(self._out, fieldnames=EXPORT_FIELDS, extrasaction="ignore")

    def head(self) -> str:
        if self.spec.format == "json":
            return '{"range": ' + json.dumps(self.spec.range_view(), sort_keys=True) + ', "calls": [\n'
        self._csv.writeheader()
        return self._take()

    def row(self, view: dict[str, Any]) -> str:
        self.rows += 1
        if self.spec.format == "json":
            return ("" if self.rows == 1 else ",\n") + json.dumps(view, ensure_ascii=False)
        # a leading = + - @ (or a tab or CR before one) would be a formula in a spreadsheet
        cells = {**view, "tags": csv_tags(view.get("tags")), "attempts": csv_attempts(view.get("attempts"))}
        self._csv.writerow({k: (f"'{v}" if isinstance(v, str) and v[:1] in FORMULA_STARTS else v)
                            for k, v in cells.items()})
        return self._take()

    def tail(self) -> str:
        return "\n]}\n" if self.spec.format == "json" else ""

    def _take(self) -> str:
        text = self._out.getvalue()
        self._out.seek(0)
        self._out.truncate()
        return text


def fits_one_response(body: str) -> bool:
    """Whether `body` fits a Lambda response once JSON-escaped there (quotes, non-ASCII as \\uXXXX)."""
    return len(body) <= LAMBDA_RESPONSE_MAX // 6 or len(json.dumps(body)) <= LAMBDA_RESPONSE_MAX


class Deadline:
    """When a run should hand over to a fresh one: `margin` seconds before the time it has left, but never
    sooner than `minimum` seconds from now (so every run moves forward). None left: no deadline."""

    def __init__(self, seconds_left: float | None, margin: float, minimum: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.at = None if seconds_left is None else clock() + max(seconds_left - margin, minimum)

    def passed(self) -> bool:
        return self.at is not None and self.clock() >= self.at


def shown_state(state: str, updated_at: str, now: datetime, stale_after: timedelta) -> tuple[str, str | None]:
    """(state, error) as an export shows them: a queued or running export whose job has not moved for
    `stale_after` is `failed` (its run ended without finishing: a crash, or a timeout it did not see coming)."""
    if state in ("queued", "running") and now - parse_iso(updated_at) > stale_after:
        waited = "started" if state == "queued" else "moved"
        return "failed", f"the export job has not {waited} since {updated_at}; ask for the export again"
    return state, None


def progress_view(days_done: int, days_total: int, calls_written: int, bytes_written: int,
                  state: str) -> dict[str, Any]:
    percent = 100 if state == "ready" else (100 * days_done // days_total if days_total else 0)
    return {"calls_written": calls_written, "days_done": days_done, "days_total": days_total,
            "bytes_written": bytes_written, "percent": percent}
