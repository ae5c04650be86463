"""The detail tier, merged: its stream batches staged in S3, then folded into its items a few minutes at a time.

Why (issue #30): a detail batch holds minutes of calls from many accounts, so most items it touches get one or two
calls, and each write is billed by the item's whole size: ~3.4 UpdateItems and 5.9 write units a call at 1,000
calls/s, twice the call log's own. Staged, the batches of `rollup_merge_minutes` fold together, so an item is
written once per merge however many batches touched it (bench/capacity.py measures the difference).

Exactly once, with the marks the items already keep (store.py):
- rollup_details stages each batch's foldable facts, split into GROUPS by lane (an account's records all land in
  one group), as objects named by the invocation's start: `rollup/pending/<ms>-g<group>-<facts>-<digest>`. Names
  sort by time, and a shard's next batch starts only after this one returned, so a lane's facts are staged in
  stream order.
- merge_details (every minute) lists what is staged past the groups' marks once, and invokes merge_group for each
  group with a chunk due; a group with nothing staged has its mark moved past what the others staged, so the
  listing starts near now. Nothing staged: one LIST and one Query a minute.
- merge_group folds a group's objects in name order, a chunk of `rollup_merge_minutes` of staged time at once,
  once no object can still join it: every invocation that could add one started GRACE (the detail function's
  timeout and a minute) ago. store.apply writes the chunk; an item's marks skip what it already holds, so a chunk
  merged twice or a batch staged twice (Lambda retried it) still counts once. The group's mark (`after`, the last
  object merged) then moves on, never back.
- Objects expire by the archive bucket's lifecycle (infra/template.py): merging never deletes them.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import re
import zlib
from dataclasses import MISSING, fields
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Iterable

from chalicelib import aws, clock
from chalicelib.observability import logger
from chalicelib.rollup.fold import Fact
from chalicelib.rollup.models import Aggregate
from chalicelib.settings import get_settings

GROUPS = 16  # merge_group invocations per tick: each folds the lanes that hash to it, in parallel with the others
PREFIX = "rollup/pending/"
GRACE = timedelta(minutes=3)  # rollup_details' timeout (120 s, .chalice/config.json) and a minute
FACTS_PER_CHUNK_MAX = 100_000  # what one fold holds in memory (~1 KB a fact): ~160 s of a group at 10,000 calls/s
STATE_PK = "config#rollup_merge"
LEASE = timedelta(minutes=15)  # merge_group's timeout: a run that died holds its group no longer
_FACT_FIELDS = tuple((f.name, f.default) for f in fields(Fact))  # MISSING: a field every fact names


def minutes() -> int:
    """Minutes of staged batches folded at once; 0: the detail tier writes its items from each batch directly."""
    return get_settings().rollup_merge_minutes


def lag() -> timedelta:
    """How much later a call reaches the detail's items when merging: a chunk's span, the grace, the next tick."""
    return timedelta(minutes=minutes()) + GRACE + timedelta(minutes=1) if minutes() else timedelta(0)


def group_of(lane: str) -> int:
    return zlib.crc32(lane.encode()) % GROUPS


# ---- facts as bytes ------------------------------------------------------------------------------------------

def _plain(fact: Fact) -> dict[str, Any]:
    """A fact as JSON values, defaults left out (they are most of a call's fields)."""
    out: dict[str, Any] = {}
    for name, default in _FACT_FIELDS:
        value = getattr(fact, name)
        if default is not MISSING and value == default:
            continue
        if name == "ts":
            value = clock.precise(value)
        elif name == "cost_usd" and value is not None:
            value = str(value)
        elif name == "was":
            value = _plain(value)
        out[name] = value
    return out


def _fact(plain: dict[str, Any]) -> Fact:
    values = dict(plain)
    values["ts"] = clock.parse_precise(values["ts"])
    values["tokens"] = tuple(values["tokens"])
    if values["cost_usd"] is not None:
        values["cost_usd"] = Decimal(values["cost_usd"])
    if "failed_attempts" in values:
        values["failed_attempts"] = tuple(tuple(a) for a in values["failed_attempts"])
    if "was" in values:
        values["was"] = _fact(values["was"])
    return Fact(**values)


def encode(facts: Iterable[Fact]) -> bytes:
    """JSON lines, gzipped: a batch of a few thousand calls is a few hundred KB."""
    lines = (json.dumps(_plain(f), ensure_ascii=True, separators=(",", ":")) for f in facts)
    return gzip.compress("\n".join(lines).encode(), compresslevel=5)


def decode(data: bytes) -> list[Fact]:
    return [_fact(json.loads(line)) for line in gzip.decompress(data).decode().splitlines() if line]


# ---- names and chunks (pure) ---------------------------------------------------------------------------------

def object_key(group: int, started: datetime, facts: list[Fact]) -> str:
    """Sorted by when the staging invocation started; the digest of its records keeps two batches apart."""
    digest = hashlib.sha256(repr(sorted((f.lane, f.seq) for f in facts)).encode()).hexdigest()[:16]
    ms = int(started.timestamp() * 1000)
    return f"{PREFIX}{ms:013d}-g{group:02d}-{len(facts):07d}-{digest}"


_NAME = re.compile(re.escape(PREFIX) + r"\d{13}-g(\d{2})-\d{7}-[0-9a-f]{16}")


def is_staged(key: str) -> bool:
    """Whether `key` is a name object_key writes: anything else put under the prefix is left alone, never read."""
    named = _NAME.fullmatch(key)
    return named is not None and int(named.group(1)) < GROUPS


def _parts(key: str) -> list[str]:
    return key[len(PREFIX):].split("-")


def _started_ms(key: str) -> int:
    return int(_parts(key)[0])


def group_of_key(key: str) -> int:
    return int(_parts(key)[1][1:])


def _count(key: str) -> int:
    return int(_parts(key)[2])


def settled(key: str, now: datetime) -> bool:
    """Whether every object named before `key` is there: whatever could stage one started GRACE ago."""
    return _started_ms(key) + GRACE.total_seconds() * 1000 <= now.timestamp() * 1000


def due_chunks(keys: list[str], now: datetime, span: timedelta, max_facts: int = FACTS_PER_CHUNK_MAX,
               ) -> list[list[str]]:
    """The sorted object `keys` cut into chunks that can be merged now: each spans `span` of staging time from its
    first object (or `max_facts`), and is due once no invocation still running can stage into it."""
    now_ms, span_ms, grace_ms = (int(now.timestamp() * 1000), int(span.total_seconds() * 1000),
                                 int(GRACE.total_seconds() * 1000))
    chunks: list[list[str]] = []
    i = 0
    while i < len(keys):
        first = _started_ms(keys[i])
        if first + span_ms + grace_ms > now_ms:
            break
        chunk, held = [keys[i]], _count(keys[i])
        i += 1
        while i < len(keys) and _started_ms(keys[i]) < first + span_ms and held + _count(keys[i]) <= max_facts:
            held += _count(keys[i])
            chunk.append(keys[i])
            i += 1
        chunks.append(chunk)
    return chunks


def in_order(facts: Iterable[Fact]) -> list[Fact]:
    """Each (lane, sequence number) once, in stream order: a batch Lambda retried may have been staged twice."""
    unique = {(f.lane, f.seq): f for f in facts}
    return sorted(unique.values(), key=lambda f: (f.seq, f.lane))


# ---- S3 and the group's mark -----------------------------------------------------------------------------------

def stage(facts: list[Fact], started: datetime) -> int:
    """Put a batch's facts where merge_group will find them, one object per lane group; returns objects written."""
    by_group: dict[int, list[Fact]] = {}
    for fact in facts:
        by_group.setdefault(group_of(fact.lane), []).append(fact)
    s3, bucket = aws.client("s3"), get_settings().archive_bucket
    for group, staged in sorted(by_group.items()):
        s3.put_object(Bucket=bucket, Key=object_key(group, started, staged), Body=encode(staged),
                      ContentType="application/x-ndjson", ContentEncoding="gzip")
    return len(by_group)


def _state_key(group: int) -> dict[str, Any]:
    return {"pk": {"S": STATE_PK}, "day": {"S": f"g{group:02d}"}}


def merged_after(group: int) -> str | None:
    """The last object merged for `group`, or None before its first merge."""
    item = aws.client("dynamodb").get_item(TableName=Aggregate.Meta.table_name, Key=_state_key(group),
                                           ConsistentRead=True).get("Item", {})
    return item.get("after", {}).get("S")


def marks() -> dict[int, str]:
    """Every group's mark, in one Query."""
    answer = aws.client("dynamodb").query(
        TableName=Aggregate.Meta.table_name, KeyConditionExpression="#pk = :pk", ExpressionAttributeNames={"#pk": "pk"},
        ExpressionAttributeValues={":pk": {"S": STATE_PK}}, ConsistentRead=True)
    return {int(item["day"]["S"][1:]): item["after"]["S"] for item in answer.get("Items", []) if "after" in item}


def mark_merged(group: int, key: str, now: datetime) -> None:
    """Move the group's mark to `key`; a slower run that merged less never moves it back."""
    aws.conditional(lambda: aws.client("dynamodb").update_item(
        TableName=Aggregate.Meta.table_name, Key=_state_key(group),
        UpdateExpression="SET #after = :key, #at = :at", ConditionExpression="attribute_not_exists(#after) OR #after < :key",
        ExpressionAttributeNames={"#after": "after", "#at": "at"},
        ExpressionAttributeValues={":key": {"S": key}, ":at": {"S": clock.iso(now)}}))


def take(group: int, now: datetime) -> bool:
    """Whether this run may merge `group`: runs overlap when a tick comes before the last one ended, and two runs
    of one chunk would both pay for its writes (the second's are refused by the marks, still billed)."""
    until = clock.iso(now + LEASE)
    return aws.conditional(lambda: aws.client("dynamodb").update_item(
        TableName=Aggregate.Meta.table_name, Key=_state_key(group), UpdateExpression="SET #lease = :until",
        ConditionExpression="attribute_not_exists(#lease) OR #lease < :now", ExpressionAttributeNames={"#lease": "lease"},
        ExpressionAttributeValues={":until": {"S": until}, ":now": {"S": clock.iso(now)}}))


def release(group: int) -> None:
    aws.client("dynamodb").update_item(TableName=Aggregate.Meta.table_name, Key=_state_key(group),
                                       UpdateExpression="REMOVE #lease", ExpressionAttributeNames={"#lease": "lease"})


def staged_after(after: str | None, limit: int = 100_000) -> list[str]:
    """Every group's object names after `after`, in order (ListObjectsV2 returns keys sorted), up to `limit`."""
    s3, bucket = aws.client("s3"), get_settings().archive_bucket
    request: dict[str, Any] = {"Bucket": bucket, "Prefix": PREFIX, "StartAfter": after or PREFIX}
    keys: list[str] = []
    while len(keys) < limit:
        page, strays = s3.list_objects_v2(**request), []
        for entry in page.get("Contents", []):
            (keys if is_staged(entry["Key"]) else strays).append(entry["Key"])
        if strays:  # a stray object must not stop every group's merge
            logger.warning("objects under the staging prefix that merging leaves alone", extra={"keys": strays[:10]})
        if not page.get("IsTruncated"):
            break
        request["ContinuationToken"] = page["NextContinuationToken"]
    return keys[:limit]


def _unmerged(key: str, held: dict[int, str]) -> bool:
    """Whether `key` is past its own group's mark in `held`."""
    return key > (held.get(group_of_key(key)) or "")


def _staged_past_marks(held: dict[int, str], limit: int = 100_000) -> list[str]:
    """One listing for every group: the objects after the lowest of the groups' marks."""
    return staged_after(min((held.get(g) or PREFIX) for g in range(GROUPS)), limit)


def oldest_pending(keys: list[str], held: dict[int, str]) -> str | None:
    """The first of the sorted `keys` past its own group's mark: the oldest staged batch not merged yet."""
    return next((key for key in keys if _unmerged(key, held)), None)


def waited_seconds(key: str | None, now: datetime) -> float:
    return 0.0 if key is None else max(0.0, now.timestamp() - _started_ms(key) / 1000)


def lag_bound() -> timedelta:
    """How long a batch may wait on a healthy stage: the lag (its chunk, the grace, the tick) and 9 minutes of
    merging."""
    return lag() + timedelta(minutes=9)


def health(now: datetime) -> dict[str, Any]:
    """`/health`'s line for the merge: how long the oldest batch not merged yet has waited (a Query and a LIST)."""
    held = marks()
    keys = _staged_past_marks(held, limit=1000)  # one page
    waited, bound = waited_seconds(oldest_pending(keys, held), now), lag_bound().total_seconds()
    return {"status": "ok" if waited <= bound else "lagging", "oldest_unmerged_seconds": int(waited),
            "bound_seconds": int(bound)}


def due_groups(now: datetime) -> list[int]:
    """The groups with a chunk to merge now; a group with nothing staged gets its mark moved past the others'
    settled objects, so that the next listing starts near now."""
    held = marks()
    keys = _staged_past_marks(held)
    span = timedelta(minutes=minutes())
    due, idle_until = [], None
    for key in keys:
        if settled(key, now):
            idle_until = key
    for group in range(GROUPS):
        own = [k for k in keys if group_of_key(k) == group and _unmerged(k, held)]
        if due_chunks(own, now, span):
            due.append(group)
        elif not own and idle_until is not None and idle_until > (held.get(group) or ""):
            mark_merged(group, idle_until, now)
    return due


def invoke(groups: list[int]) -> None:
    """Each group merged by its own invocation of merge_group (asynchronous: they run side by side)."""
    function = get_settings().merge_function
    for group in groups:
        aws.client("lambda").invoke(FunctionName=function, InvocationType="Event",
                                    Payload=json.dumps({"group": group}).encode())


def read(chunk: list[str]) -> list[Fact]:
    """A chunk's facts, each record once, in stream order."""
    s3, bucket = aws.client("s3"), get_settings().archive_bucket
    return in_order(f for key in chunk for f in decode(s3.get_object(Bucket=bucket, Key=key)["Body"].read()))


def image(fact: Fact) -> dict[str, Any]:
    """What the quarantine keeps of a staged fact DynamoDB refused (its stream record is long gone)."""
    return _plain(fact)
