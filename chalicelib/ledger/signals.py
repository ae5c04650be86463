"""The signals the alerting reads that no aggregate holds, as their writers leave them: refused authentications
(counted by the proxy) and expensive calls and costly sessions (noted as the rollup folds). Writers only: the
evaluator, a stage above, reads them and takes them up (its own signals.py).

- 401s: the proxy logs no call for an unknown caller (there is no account), so each container counts
  them in memory by the key prefix presented and adds the counts, at most every FLUSH_SECONDS, to one
  small item per minute and container: an attacker's burst costs one write per container every few seconds.
- Notes: put unless the evaluator has taken the same one up already (its marker under `…_taken`), so a
  redelivered stream record, or a session's next call, is not noted a second time.

They live in the aggregates table under their own partitions (`signal#…`), as the quarantine does; they
have no `kind`, so reports and the by_kind index never see them.
"""
from __future__ import annotations

import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime
from decimal import Decimal
from typing import Any

from anyio.to_thread import run_sync
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws, clock
from chalicelib.ledger.auth import bearer_or_api_key
from chalicelib.ledger.models import _settings
from chalicelib.observability import logger

AUTH_PK = "signal#auth_failures"
EXPENSIVE_PK = "signal#expensive_calls"
TAKEN_PK = "signal#expensive_calls_taken"
SESSIONS_PK = "signal#costly_sessions"
SESSIONS_TAKEN_PK = "signal#costly_sessions_taken"
TAKEN = {EXPENSIVE_PK: TAKEN_PK, SESSIONS_PK: SESSIONS_TAKEN_PK}  # where a note is marked as taken up
FLUSH_SECONDS = 5.0
PREFIXES_PER_FLUSH = 5  # the most frequent; the rest count as "(other)": an item stays small whatever is sent
CONTAINER = uuid.uuid4().hex[:12]
_NOT_KEY_CHARS = re.compile(r"[^A-Za-z0-9-]")


def table() -> str:
    """The aggregates table (chalicelib/rollup/table.py's model), named as the models name it."""
    return _settings.aggregates_table


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
    since, counts = batch
    top = counts.most_common(PREFIXES_PER_FLUSH)
    rest = sum(counts.values()) - sum(count for _, count in top)
    added = [("failures", sum(counts.values())), *((f"k|{prefix}", count) for prefix, count in top)]
    if rest:
        added.append(("k|(other)", rest))
    try:
        aws.client("dynamodb").update_item(
            TableName=table(),
            Key={"pk": {"S": AUTH_PK}, "day": {"S": f"{since.strftime('%Y-%m-%dT%H:%M')}#{CONTAINER}"}},
            UpdateExpression="ADD " + ", ".join(f"#n{i} :v{i}" for i in range(len(added))),
            ExpressionAttributeNames={f"#n{i}": name for i, (name, _) in enumerate(added)},
            ExpressionAttributeValues={f":v{i}": {"N": str(count)} for i, (_, count) in enumerate(added)})
    except (ClientError, BotoCoreError) as exc:  # the 401 answer goes out regardless; the counts wait for next time
        failures.put_back(batch)
        logger.warning("could not record failed authentications", extra={"error": str(exc)})


# --- notes for the evaluator ------------------------------------------------------------------------

def note_expensive_call(call_id: str, ts: str, account: str, key_id: str | None, provider: str | None,
                        model: str | None, cost_usd: Decimal) -> int:
    """Note a call that cost more than the expensive-call rule allows (1 if noted now)."""
    text = {"call_id": call_id, "ts": ts, "account": account, "key_id": key_id, "provider": provider, "model": model}
    fields = {name: {"S": value} for name, value in text.items() if value is not None}
    return _note(EXPENSIVE_PK, {"S": f"{ts}#{call_id}"}, {"cost_usd": {"N": format(cost_usd, "f")}, **fields})


def note_costly_session(account: str, session: str, user: str | None, cost_usd: Decimal) -> int:
    """Note a session whose running total passed the session-cost rule's threshold (1 if noted now)."""
    fields = {"account": {"S": account}, "session": {"S": session}, "cost_usd": {"N": format(cost_usd, "f")}}
    if user:
        fields["user"] = {"S": user}
    return _note(SESSIONS_PK, {"S": f"{account}|{session}"}, fields)


def _note(pk: str, sort_key: dict[str, str], fields: dict[str, Any]) -> int:
    """Put a note unless the evaluator has taken up the same one already (1 if noted)."""
    return int(aws.conditional(lambda: aws.client("dynamodb").transact_write_items(TransactItems=[
        {"ConditionCheck": {"TableName": table(), "Key": {"pk": {"S": TAKEN[pk]}, "day": sort_key},
                            "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"TableName": table(), "Item": {"pk": {"S": pk}, "day": sort_key, **fields}}}])))
