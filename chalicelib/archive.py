"""Call records that DynamoDB's TTL expired, kept as JSON lines in S3 (the aggregates keep their totals)."""
from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

from . import aws
from .settings import get_settings


def archive_expired(records: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Write (sequence number, call record as plain JSON) pairs, one object per day; returns the keys.

    Keys are named by the first and last sequence number they hold, so a redelivered batch overwrites
    its own object instead of adding one.
    """
    by_day: dict[str, list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for seq, call in records:
        by_day[call.get("day", "unknown")].append((seq, call))
    keys = []
    for day, entries in sorted(by_day.items()):
        key = f"calls/day={day}/{entries[0][0]}-{entries[-1][0]}.jsonl"
        body = "".join(json.dumps(call, sort_keys=True, default=str) + "\n" for _, call in entries)
        aws.client("s3").put_object(Bucket=get_settings().archive_bucket, Key=key, Body=body.encode(),
                                    ContentType="application/x-ndjson")
        keys.append(key)
    return keys
