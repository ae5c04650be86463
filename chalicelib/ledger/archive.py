"""Call records that DynamoDB's TTL expired, kept as JSON lines in S3 (the aggregates keep their totals).

Keys: `calls/day=<day>/user=<user digest>/<first>-<last>.jsonl` for calls attributed to an end user,
`calls/day=<day>/<first>-<last>.jsonl` for the rest (first and last stream sequence numbers). A user's
records are under their own prefix, so erasing them deletes whole objects (every version: the bucket is
versioned) and reads nothing; the digest keeps the user's name itself out of object keys and logs. The
bucket's lifecycle expires them after the stage's retention (infra/template.py); aggregates stay.
"""
from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Iterator

from chalicelib import aws
from chalicelib.settings import get_settings

PREFIX = "calls/"
LIST_WORKERS = 8  # days listed at once when erasing: a year of archive in a few seconds
DELETE_BATCH = 1000  # DeleteObjects takes at most this many keys


def user_digest(user: str) -> str:
    return hashlib.sha256(user.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _folder(day: str, user: str | None) -> str:
    return f"{PREFIX}day={day}/" + (f"user={user_digest(user)}/" if user else "")


def archive_expired(records: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """Write (sequence number, call record as plain JSON) pairs, one object per day and user; returns the keys.

    Keys are named by the first and last sequence number they hold, so a redelivered batch overwrites
    its own objects (a new version of each) instead of adding others.
    """
    groups: dict[tuple[str, str | None], list[tuple[str, dict[str, Any]]]] = defaultdict(list)
    for seq, call in records:
        groups[call.get("day") or "unknown", call.get("user") or None].append((seq, call))
    keys = []
    for (day, user), entries in sorted(groups.items(), key=lambda group: (group[0][0], group[0][1] or "")):
        key = f"{_folder(day, user)}{entries[0][0]}-{entries[-1][0]}.jsonl"
        body = "".join(json.dumps(call, sort_keys=True, default=str) + "\n" for _, call in entries)
        aws.client("s3").put_object(Bucket=get_settings().archive_bucket, Key=key, Body=body.encode(),
                                    ContentType="application/x-ndjson")
        keys.append(key)
    return keys


def _days() -> Iterator[str]:
    """Every `calls/day=<day>/` folder in the archive."""
    pages = aws.client("s3").get_paginator("list_objects_v2").paginate(
        Bucket=get_settings().archive_bucket, Prefix=PREFIX, Delimiter="/")
    for page in pages:
        for folder in page.get("CommonPrefixes", []):
            yield folder["Prefix"][len(PREFIX) + len("day="):-1]


def _versions(prefix: str) -> list[dict[str, str]]:
    """Every version and delete marker under a prefix, as DeleteObjects takes them."""
    found = []
    pages = aws.client("s3").get_paginator("list_object_versions").paginate(
        Bucket=get_settings().archive_bucket, Prefix=prefix)
    for page in pages:
        for entry in page.get("Versions", []) + page.get("DeleteMarkers", []):
            found.append({"Key": entry["Key"], "VersionId": entry["VersionId"]})
    return found


def erase_user(user: str) -> int:
    """Delete every version of every archived record of `user`; returns how many versions went.

    Deleting a version (not the object) removes it for good: no delete marker is left to undo, and the
    lifecycle's grace period for noncurrent versions does not apply.
    """
    prefixes = [_folder(day, user) for day in _days()]
    with ThreadPoolExecutor(max_workers=LIST_WORKERS) as pool:
        versions = [v for found in pool.map(_versions, prefixes) for v in found]
    s3, bucket = aws.client("s3"), get_settings().archive_bucket
    for start in range(0, len(versions), DELETE_BATCH):
        answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": versions[start:start + DELETE_BATCH],
                                                          "Quiet": True})
        if answer.get("Errors"):
            failed = answer["Errors"][0]
            raise RuntimeError(f"archive erasure incomplete: {len(answer['Errors'])} versions not deleted "
                               f"({failed.get('Code')}: {failed.get('Message')})")
    return len(versions)
