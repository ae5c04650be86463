"""The signals the alerting reads that no aggregate holds: refused authentications (counted by the proxy) and
expensive calls and costly sessions (noted as the rollup folds). The ledger owns these items (their models:
AuthFailureCount and SignalNote in chalicelib/ledger/models.py): the writers, and the reads the evaluator makes,
which return plain values (the alerting builds its own types from them).

- 401s: the proxy logs no call for an unknown caller (there is no account), so each container counts
  them in memory by the key prefix presented and adds the counts, at most every FLUSH_SECONDS, to one
  small item per minute and container: an attacker's burst costs one write per container every few seconds.
  Read over a window; older counts are deleted as they age out.
- Notes: put unless the evaluator has taken the same one up already (its marker under `…_taken`), so a
  redelivered stream record, or a session's next call, is not noted a second time. The evaluator takes the
  notes up: a marker is left (kept two days, past the stream's 24 h, for a call; as long as its calls, for a
  session) and the note deleted.

They live in the aggregates table under their own partitions (`signal#…`), as the quarantine does; they
have no `kind`, so reports and the by_kind index never see them.
"""
from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from anyio.to_thread import run_sync
from pynamodb.exceptions import PynamoDBException
from pynamodb.expressions.operand import Path
from pynamodb.transactions import TransactWrite

from chalicelib import aws, clock
from chalicelib.ledger.auth import bearer_or_api_key
from chalicelib.ledger.models import AuthFailureCount, SignalNote
from chalicelib.observability import logger
from chalicelib.settings import get_settings

AUTH_PK = "signal#auth_failures"
EXPENSIVE_PK = "signal#expensive_calls"
TAKEN_PK = "signal#expensive_calls_taken"
SESSIONS_PK = "signal#costly_sessions"
SESSIONS_TAKEN_PK = "signal#costly_sessions_taken"
TAKEN = {EXPENSIVE_PK: TAKEN_PK, SESSIONS_PK: SESSIONS_TAKEN_PK}  # where a note is marked as taken up
TAKEN_KEPT = timedelta(days=2)  # an expensive call's marker: past the stream's redeliveries (24 h)
PRUNE_PER_RUN = 25
NOTES_PER_RUN = 500
FLUSH_SECONDS = 5.0
PREFIXES_PER_FLUSH = 5  # the most frequent; the rest count as "(other)": an item stays small whatever is sent
CONTAINER = uuid.uuid4().hex[:12]
_NOT_KEY_CHARS = re.compile(r"[^A-Za-z0-9-]")


def key_prefix(secret: str | None) -> str:
    """What a refused caller presented, safe to keep: a Tollgate key's public id, else its first characters."""
    if not secret:
        return "(none)"
    for kind in ("tgd-", "tg-"):
        if secret.startswith(kind):
            return kind + _NOT_KEY_CHARS.sub("", secret[len(kind):].partition("_")[0])[:16]
    return _NOT_KEY_CHARS.sub("", secret[:4]) + "…"


class FailureCounter:
    """This container's 401s by key prefix since its last flush, and whether a flush is due."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()
        self._since: datetime | None = None
        self._flushed = float("-inf")

    def add(self, prefix: str, now: datetime) -> tuple[datetime, Counter[str]] | None:
        """Count one; returns the batch to flush when FLUSH_SECONDS have passed since the last flush."""
        with self._lock:
            self._counts[prefix] += 1
            self._since = self._since or now
            if time.monotonic() - self._flushed < FLUSH_SECONDS:
                return None
            self._flushed = time.monotonic()
            batch, self._counts, self._since = (self._since, self._counts), Counter(), None
            return batch

    def clear(self) -> None:
        """Forget what was counted and when it was last written (tests: a fresh container)."""
        with self._lock:
            self._counts, self._since, self._flushed = Counter(), None, float("-inf")

    def put_back(self, batch: tuple[datetime, Counter[str]]) -> None:
        with self._lock:
            self._counts.update(batch[1])
            self._since = min(self._since or batch[0], batch[0])


failures = FailureCounter()


async def auth_failed(status: int, headers: dict[str, str]) -> None:
    """The proxy's hook where it refuses an unknown caller: count a 401, flushing now and then."""
    if status != 401:
        return
    batch = failures.add(key_prefix(bearer_or_api_key(headers)), clock.now())
    if batch is not None:
        await run_sync(_flush, batch)


def _flush(batch: tuple[datetime, Counter[str]]) -> None:
    """One UpdateItem adding the batch to this minute's and container's item. The `k|<prefix>` counters have
    computed names, which the model cannot declare: each is an ADD on a `Path` of its name (a one-name list, so a
    dot in a prefix is no document path)."""
    since, counts = batch
    top = counts.most_common(PREFIXES_PER_FLUSH)
    rest = sum(counts.values()) - sum(count for _, count in top)
    added = [*((f"k|{prefix}", count) for prefix, count in top), *([("k|(other)", rest)] if rest else [])]
    item = AuthFailureCount(AUTH_PK, f"{since.strftime('%Y-%m-%dT%H:%M')}#{CONTAINER}")
    try:
        item.update(actions=[AuthFailureCount.failures.add(sum(counts.values())),
                             *(Path([name]).add(count) for name, count in added)])
    except PynamoDBException as exc:  # the 401 answer goes out regardless; the counts wait for next time
        failures.put_back(batch)
        logger.warning("could not record failed authentications", extra={"error": str(exc)})


def auth_failures(now: datetime, minutes: int) -> tuple[int, dict[str, int]]:
    """401s counted in the last `minutes` (by whole minutes), in all and by key prefix; older counts are deleted
    as they age out."""
    first = (now - timedelta(minutes=minutes - 1)).strftime("%Y-%m-%dT%H:%M")
    last = now.strftime("%Y-%m-%dT%H:%M") + "#\uffff"
    total, by_prefix = 0, Counter[str]()
    for item in AuthFailureCount.query(AUTH_PK, AuthFailureCount.day.between(first, last)):
        total += item.failures
        by_prefix.update(item.by_prefix)
    _prune(AuthFailureCount, AUTH_PK, first)
    return total, dict(by_prefix)


def _prune(model: type[AuthFailureCount] | type[SignalNote], pk: str, before: str) -> None:
    """Delete a few of a partition's items older than `before` (keys only are read)."""
    for stale in model.query(pk, model.day < before, limit=PRUNE_PER_RUN, attributes_to_get=["pk", "day"]):
        stale.delete()


# --- notes for the evaluator ------------------------------------------------------------------------

def note_expensive_call(call_id: str, ts: str, account: str, key_id: str | None, provider: str | None,
                        model: str | None, cost_usd: Decimal, user: str | None = None,
                        session: str | None = None) -> int:
    """Note a call that cost more than the expensive-call rule allows (1 if noted now), with who made it."""
    return _note(EXPENSIVE_PK, f"{ts}#{call_id}", call_id=call_id, ts=ts, account=account, key_id=key_id,
                 provider=provider, model=model, cost_usd=cost_usd, user=user or None, session=session or None)


def note_costly_session(account: str, session: str, user: str | None, cost_usd: Decimal) -> int:
    """Note a session whose running total passed the session-cost rule's threshold (1 if noted now)."""
    return _note(SESSIONS_PK, f"{account}|{session}", account=account, session=session, user=user or None,
                 cost_usd=cost_usd)


def _note(pk: str, day: str, **fields: object) -> int:
    """Put a note unless the evaluator has taken up the same one already (1 if noted)."""
    def write() -> None:
        with TransactWrite(connection=aws.transactions()) as transaction:
            transaction.condition_check(SignalNote, TAKEN[pk], day, condition=SignalNote.pk.does_not_exist())
            transaction.save(SignalNote(pk, day, **fields))

    return int(aws.conditional(write))


# --- the evaluator's reads ----------------------------------------------------------------------------

def expensive_calls() -> list[SignalNote]:
    """The noted calls not yet taken up (at most NOTES_PER_RUN, oldest first)."""
    return list(SignalNote.query(EXPENSIVE_PK, limit=NOTES_PER_RUN))


def costly_sessions() -> list[SignalNote]:
    """The noted sessions not yet taken up (at most NOTES_PER_RUN)."""
    return list(SignalNote.query(SESSIONS_PK, limit=NOTES_PER_RUN))


def _marker_kept(pk: str) -> timedelta:
    """How long a taken-up marker must last: a call is noted by its own stream record only, so past its
    redeliveries (TAKEN_KEPT); a session is noted again by each of its calls past the threshold, so as long as
    its calls (and with them its session items) are kept."""
    return timedelta(days=get_settings().call_ttl_days) if pk == SESSIONS_PK else TAKEN_KEPT


def forget(notes: list[SignalNote], now: datetime) -> None:
    """Notes the evaluator has applied: marked as taken up, then deleted. Expensive calls' markers are keyed by
    time and pruned past TAKEN_KEPT; every marker also expires (TTL) once it can no longer be needed."""
    for note in notes:
        expires = now + _marker_kept(note.pk)
        SignalNote(TAKEN[note.pk], note.day, expires_at=expires if expires.tzinfo else expires.replace(
            tzinfo=timezone.utc)).save()
        note.delete()
    _prune(SignalNote, TAKEN_PK, (now - TAKEN_KEPT).strftime("%Y-%m-%dT%H:%M:%S"))
