"""The call-log stream handler: new, re-priced and erased calls become aggregate deltas; TTL expiry is archived.

Each record is read once, into a `Fact`. A record that cannot be folded (its image does not parse, its
numbers are beyond what a call can add, or DynamoDB refuses its update) is quarantined with the reason
and the rest of the batch folds: one bad record never stalls the stream. Anything that may pass
(throttling, an outage) still makes Lambda resend from the first record not applied.

The batch's facts then go to the listeners the wiring registers (app.py: expensive calls, costly
sessions, budgets), so nothing downstream reads a stream record again.

Two functions read the stream where the stage deploys them (layout.py's tiers): `rollup_calls` folds the
summary's items from short batches, `rollup_details` the detail's from batches of minutes; each runs the
listeners of its tier. Locally and in tests one function folds both (`tiers_of_rollup_calls`).
"""
from __future__ import annotations

from dataclasses import dataclass
import time
from datetime import datetime, timedelta
from typing import Any, Callable, Iterable, Mapping

from chalicelib import clock
from chalicelib.ledger import archive
from chalicelib.ledger import call_view
from chalicelib.ledger import CallRecord
from chalicelib.observability import MetricUnit, flush_metrics, logger, metrics
from chalicelib.rollup import merge, quarantine, store
from chalicelib.rollup.fold import Fact
from chalicelib.rollup.layout import DETAIL, SUMMARY, TIERS
from chalicelib.rollup.quarantine import Quarantined
from chalicelib.rollup.store import SessionTotal
from chalicelib.settings import get_settings

TTL_PRINCIPAL = "dynamodb.amazonaws.com"


@dataclass(frozen=True)
class Batch:
    """One stream batch as the rollup read and folded it: what each listener gets, instead of the records."""

    facts: tuple[Fact, ...]  # every call change read: logged (+1), erased (-1), re-priced (+1 with `was`)
    folded: frozenset[int]  # the sequence numbers of those folded (the rest were quarantined)
    sessions: tuple[SessionTotal, ...]  # the sessions the batch wrote to, with their running totals
    at: datetime

    @property
    def added(self) -> list[Fact]:
        """Calls whose spend went into the aggregates (logged or re-priced): what budgets follow."""
        return [f for f in self.facts if f.sign > 0 and f.seq in self.folded]

    @property
    def logged(self) -> list[Fact]:
        """Calls new in the call log, folded or quarantined: each is one call an alert may be about."""
        return [f for f in self.facts if f.sign > 0 and f.was is None]


Listener = Callable[[Batch], Any]


def tiers_of_rollup_calls() -> tuple[str, ...]:
    """What the call-log stream's first function folds: every tier, or only the summary's where the stage folds
    the detail apart (its own function and stream mapping, infra/resources.json's RollupDetails)."""
    return (SUMMARY,) if get_settings().rollup_detail_apart else TIERS


def _listeners_of(listeners: Mapping[str, Iterable[Listener]] | Iterable[Listener],
                  tiers: tuple[str, ...]) -> list[Listener]:
    """The listeners by tier (each runs once, after the tier whose items it reads), or one list for any tier."""
    if isinstance(listeners, Mapping):
        return [listener for tier in TIERS if tier in tiers for listener in listeners.get(tier, ())]
    return list(listeners)


def is_ttl_expiry(record: Any) -> bool:
    identity = record.to_dict().get("userIdentity") or {}
    return identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL


def stream_label(record: Any) -> str:
    """The stream's label (its creation time): a recreated table or a restarted local stack gets a new one."""
    return record.event_source_arn.rsplit("/stream/", 1)[-1]


def _set_aside(record: Any, reason: str) -> Quarantined:
    return Quarantined(stream_label(record), record.sequence_number, record.event_name,
                       record.new_image or record.old_image, reason)


def handle_records(records: Iterable[Any], listeners: Mapping[str, Iterable[Listener]] | Iterable[Listener] = (),
                   tiers: tuple[str, ...] = TIERS) -> dict[str, list[dict[str, str]]]:
    """Lambda's partial-batch answer: empty, or the first record whose effects are not all durable. Folds the
    items of `tiers`; the summary's tier also archives what TTL expired (once, whichever functions run).

    INSERT adds a call, REMOVE by a person (erasure) subtracts it, REMOVE by TTL only archives it:
    expiry must not change the totals. MODIFY (a re-priced call) adds the new image and subtracts the
    old one as one fact, so the difference folds exactly once like any other record.
    """
    read: list[Fact] = []  # every call change, foldable or not
    facts: list[Fact] = []  # the foldable ones
    expired: list[tuple[str, dict[str, Any]]] = []
    rejected: list[Quarantined] = []
    record_of: dict[int, Any] = {}  # by sequence number: one batch is one shard, numbered in order
    for record in records:
        try:
            fact, expiry = _read(record)
        except Exception as exc:  # reading an image is pure: what fails once fails every time
            rejected.append(_set_aside(record, f"unreadable record: {type(exc).__name__}: {exc}"))
            continue
        if expiry is not None:
            expired.append(expiry)
        elif fact is not None:
            read.append(fact)
            if problem := fact.unfoldable():
                rejected.append(_set_aside(record, problem))
            else:
                facts.append(fact)
                record_of[fact.seq] = record
    if expired and SUMMARY in tiers:
        archive.archive_expired(expired)
    if DETAIL in tiers and merge.minutes():  # the detail's items are written by merge_group, minutes later
        merge.stage(facts, clock.now())
        tiers = tuple(t for t in tiers if t != DETAIL)
    retry_from = _fold(read, facts, rejected, lambda fact, reason: _set_aside(record_of[fact.seq], reason),
                       listeners, tiers)
    if retry_from is None:
        return {"batchItemFailures": []}
    logger.warning("rollup batch partly applied; asking for a retry", extra={"from_sequence": retry_from})
    return {"batchItemFailures": [{"itemIdentifier": str(retry_from)}]}


def _fold(read: list[Fact], facts: list[Fact], rejected: list[Quarantined],
          set_aside: Callable[[Fact, str], Quarantined], listeners: Mapping[str, Iterable[Listener]] | Iterable[Listener],
          tiers: tuple[str, ...]) -> int | None:
    """Apply `facts` to the items of `tiers`, quarantine what cannot be folded, tell the tiers' listeners; returns
    the first sequence number to fold again, or None when every write is durable."""
    applied = store.apply(facts, tiers) if tiers else store.Applied()
    refused = {fact.seq for fact, _ in applied.rejected}
    rejected += [set_aside(fact, reason) for fact, reason in applied.rejected]
    now = clock.now()
    quarantine.keep(rejected, now)
    # Folded counts even when some item must be retried: items are written one by one, so spend may have
    # landed for records after the one Lambda resends from. Budgets are measured from what is there.
    batch = Batch(tuple(read), frozenset(f.seq for f in facts if f.seq not in refused), tuple(applied.sessions), now)
    for listener in _listeners_of(listeners, tiers):
        listener(batch)
    metrics.add_metric(name="RollupRecords", unit=MetricUnit.Count, value=len(facts))
    flush_metrics()
    return applied.retry_from


def merge_group(group: int, listeners: Mapping[str, Iterable[Listener]], seconds_left: float | None = None,
                ) -> dict[str, int]:
    """Fold one lane group's staged batches into the detail's items (merge.py), chunk by chunk, as long as time
    allows; a chunk that must be retried stops the run, and the next tick folds it again from the group's mark."""
    now = clock.now()
    if not merge.take(group, now):
        return {"group": group, "chunks": 0, "facts": 0, "busy": 1}
    try:
        return _merge_chunks(group, now, listeners, seconds_left)
    finally:
        merge.release(group)


def _merge_chunks(group: int, now: datetime, listeners: Mapping[str, Iterable[Listener]],
                  seconds_left: float | None) -> dict[str, int]:
    longest = 0.0
    deadline = time.monotonic() + seconds_left if seconds_left is not None else None
    after = merge.merged_after(group)
    own = [key for key in merge.staged_after(after) if merge.group_of_key(key) == group]
    chunks = merge.due_chunks(own, now, timedelta(minutes=merge.minutes()))
    merged = {"group": group, "chunks": 0, "facts": 0}
    for chunk in chunks:
        if merged["chunks"] and deadline is not None and deadline - time.monotonic() < 2 * longest + 10:
            break  # the next tick goes on from the group's mark (a fresh invocation always has time for one)
        began = time.monotonic()
        facts = merge.read(chunk)
        retry_from = _fold(facts, facts, [], _set_staged_aside, listeners, (DETAIL,))
        if retry_from is not None:
            logger.warning("merged chunk partly applied; the next tick folds it again",
                           extra={"group": group, "from_sequence": retry_from})
            break
        merge.mark_merged(group, chunk[-1], now)
        merged["chunks"] += 1
        merged["facts"] += len(facts)
        longest = max(longest, time.monotonic() - began)
    return merged


def group_of_event(event: Any) -> int:
    """merge_group's event names its group (merge_due sends it); anything else is a mistake to stop at."""
    group = event.get("group") if isinstance(event, dict) else None
    if type(group) is not int or not 0 <= group < merge.GROUPS:
        raise ValueError(f"merge_group wants {{\"group\": 0..{merge.GROUPS - 1}}}, not {event!r:.200}")
    return group


def merge_due(listeners: Mapping[str, Iterable[Listener]], seconds_left: float | None = None) -> dict[str, Any]:
    """merge_details' tick: each lane group with a chunk due merged, by its own invocation where the stage deploys
    merge_group (side by side), else here one after the other."""
    if not merge.minutes():
        return {"groups": []}
    groups = merge.due_groups(clock.now())
    if get_settings().merge_function:
        merge.invoke(groups)
        return {"groups": groups, "invoked": True}
    return {"groups": groups, "merged": [merge_group(g, listeners, seconds_left) for g in groups]}


def _set_staged_aside(fact: Fact, reason: str) -> Quarantined:
    return Quarantined(fact.lane, str(fact.seq), "MODIFY" if fact.was else ("INSERT" if fact.sign > 0 else "REMOVE"),
                       merge.image(fact), reason)


def _read(record: Any) -> tuple[Fact | None, tuple[str, dict[str, Any]] | None]:
    """A record's fact (a call added, changed or erased), or its archive entry (TTL expiry), or neither
    (a change to nothing the rollup counts)."""
    seq, stream = int(record.sequence_number), stream_label(record)
    if record.event_name == "INSERT" and record.new_image:
        return Fact.from_call(CallRecord.from_raw_data(record.new_image), +1, seq, stream), None
    if record.event_name == "MODIFY" and record.new_image and record.old_image:
        now = Fact.from_call(CallRecord.from_raw_data(record.new_image), +1, seq, stream)
        return now.changed(Fact.from_call(CallRecord.from_raw_data(record.old_image), -1, seq, stream)), None
    if record.event_name == "REMOVE" and record.old_image:
        call = CallRecord.from_raw_data(record.old_image)
        if is_ttl_expiry(record):
            return None, (record.sequence_number, call_view(call) | {"day": call.day})
        return Fact.from_call(call, -1, seq, stream), None
    return None, None
