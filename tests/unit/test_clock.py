"""One clock: every read of the current time goes through `clock.now()`, and every datetime is aware UTC.

No naive/aware switching anywhere: product code never reads the time itself, never attaches or strips a zone
with `.replace(tzinfo=...)`; `chalicelib/clock.py` is the one place that does.
"""
from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from chalicelib import clock

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted([*(ROOT / "chalicelib").rglob("*.py"), ROOT / "app.py"])
CLOCK = ROOT / "chalicelib" / "clock.py"
FORBIDDEN = re.compile(r"datetime\.now\(|datetime\.utcnow\(|utcfromtimestamp|time\.time\(|\.replace\(tzinfo=")


def test_only_the_clock_reads_the_time_or_switches_zones():
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in SOURCES if path != CLOCK
             for n, line in enumerate(path.read_text().splitlines(), 1) if FORBIDDEN.search(line)]
    assert not found, "read the time with clock.now(), keep datetimes aware UTC:\n" + "\n".join(found)


def test_the_scan_sees_what_it_forbids():
    for line in ("now = datetime.now(timezone.utc)", "datetime.utcnow()", "datetime.utcfromtimestamp(0)",
                 "started = time.time()", "ts.replace(tzinfo=None)", "ts.replace(tzinfo=timezone.utc)"):
        assert FORBIDDEN.search(line), line
    for line in ("time.monotonic()", "ts.astimezone(zone)", "ts.replace(hour=0)"):
        assert not FORBIDDEN.search(line), line


def test_now_is_aware_utc():
    now = clock.now()
    assert now.tzinfo is not None and now.utcoffset() == timedelta(0)
    assert abs(now - datetime.now(timezone.utc)) < timedelta(seconds=5)
    assert clock.utc_today() == now.date()
    assert not hasattr(clock, "utc_now")


def test_parse_functions_return_aware_utc():
    at = clock.parse_iso("2026-01-31T23:59:58Z")
    assert at == datetime(2026, 1, 31, 23, 59, 58, tzinfo=timezone.utc) and at.utcoffset() == timedelta(0)
    assert clock.parse_iso(None) is None
    stamp = clock.parse_precise("2026-01-31T23:59:58.000123Z")
    assert stamp == datetime(2026, 1, 31, 23, 59, 58, 123, tzinfo=timezone.utc) and stamp.utcoffset() == timedelta(0)
    midnight = clock.midnight("2026-01-31")
    assert midnight == datetime(2026, 1, 31, tzinfo=timezone.utc) and midnight.utcoffset() == timedelta(0)
    assert clock.midnight(date(2026, 1, 31)) == midnight
    assert clock.parse_day("2026-01-31", "day") == date(2026, 1, 31)
    assert clock.EPOCH == datetime.fromtimestamp(0, timezone.utc)


def test_the_stored_forms_do_not_change():
    at = datetime(2026, 1, 31, 23, 59, 58, 123, tzinfo=timezone.utc)
    assert (clock.iso(at), clock.precise(at), clock.day_of(at)) == (
        "2026-01-31T23:59:58Z", "2026-01-31T23:59:58.000123Z", "2026-01-31")
    assert clock.iso(clock.parse_iso("2026-01-31T23:59:58Z")) == "2026-01-31T23:59:58Z"
    assert clock.precise(clock.parse_precise("2026-01-31T23:59:58.000123Z")) == "2026-01-31T23:59:58.000123Z"
    berlin = at.astimezone(timezone(timedelta(hours=1)))  # another zone is written in UTC
    assert (clock.iso(berlin), clock.precise(berlin)) == ("2026-01-31T23:59:58Z", "2026-01-31T23:59:58.000123Z")
    assert clock.day_of(date(2026, 1, 31)) == "2026-01-31"


def test_a_naive_datetime_is_refused():
    naive = datetime(2026, 1, 31)
    for write in (clock.iso, clock.precise, clock.day_of):
        with pytest.raises(ValueError, match="naive"):
            write(naive)
