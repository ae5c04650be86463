"""What the evaluator needs that no aggregate holds: refused authentications and expensive calls.

- 401s: the proxy logs no call for an unknown caller (there is no account), so each container counts
  them in memory by the key prefix presented and adds the counts, at most every FLUSH_SECONDS, to one
  small item per minute and container: an attacker's burst costs one write per container every few seconds.
- Expensive calls and costly sessions: noted from the facts the rollup publishes as it reads the call-log
  stream (chalicelib/rollup/handler.py), so none is missed however many calls there are or however late a
  long call is written. The evaluator takes the notes up, leaving a marker (kept two days, past the
  stream's 24 h, for a call) so a redelivered record is not noted a second time.

Both live in the aggregates table under their own partitions (`signal#…`), as the quarantine does; they
have no `kind`, so reports and the by_kind index never see them.
"""
from __future__ import annotations

import calendar
import re
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from anyio.to_thread import run_sync
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.alerting.rules import AuthFailures, CostlySession, ExpensiveCall, current_rules
from chalicelib.clock import precise, utc_now
from chalicelib.ledger.auth import bearer_or_api_key
from chalicelib.observability import logger
from chalicelib.rollup.table import Aggregate
from chalicelib.settings import get_settings

if TYPE_CHECKING:
    from chalicelib.rollup.handler import Batch

AUTH_PK = "signal#auth_failures"
EXPENSIVE_PK = "signal#expensive_calls"
TAKEN_PK = "signal#expensive_calls_taken"
SESSIONS_PK = "signal#costly_sessions"
SESSIONS_TAKEN_PK = "signal#costly_sessions_taken"
TAKEN = {EXPENSIVE_PK: TAKEN_PK, SESSIONS_PK: SESSIONS_TAKEN_PK}  # where a note is marked as taken up
TAKEN_KEPT = timedelta(days=2)
FLUSH_SECONDS = 5.0
PREFIXES_PER_FLUSH = 5  # the most frequent; the rest count as "(other)": an item stays small whatever is sent
PRUNE_PER_RUN = 25
NOTES_PER_RUN = 500
CONTAINER = uuid.uuid4().hex[:12]
_NOT_KEY_CHARS = re.compile(r"[^A-Za-z0-9-]")


def _table() -> str:
    return Aggregate.Meta.table_name


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
    batch = failures.add(key_prefix(bearer_or_api_key(headers)), utc_now())
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
            TableName=_table(),
            Key={"pk": {"S": AUTH_PK}, "day": {"S": f"{since.strftime('%Y-%m-%dT%H:%M')}#{CONTAINER}"}},
            UpdateExpression="ADD " + ", ".join(f"#n{i} :v{i}" for i in range(len(added))),
            ExpressionAttributeNames={f"#n{i}": name for i, (name, _) in enumerate(added)},
            ExpressionAttributeValues={f":v{i}": {"N": str(count)} for i, (_, count) in enumerate(added)})
    except (ClientError, BotoCoreError) as exc:  # the 401 answer goes out regardless; the counts wait for next time
        failures.put_back(batch)
        logger.warning("could not record failed authentications", extra={"error": str(exc)})


def auth_failures(now: datetime, minutes: int) -> AuthFailures:
    """401s counted in the last `minutes` (by whole minutes); older counts are deleted as they age out."""
    first = (now - timedelta(minutes=minutes - 1)).strftime("%Y-%m-%dT%H:%M")
    client = aws.client("dynamodb")
    request: dict[str, Any] = {
        "TableName": _table(), "KeyConditionExpression": "pk = :pk AND #day BETWEEN :a AND :b",
        "ExpressionAttributeNames": {"#day": "day"},
        "ExpressionAttributeValues": {":pk": {"S": AUTH_PK}, ":a": {"S": first},
                                      ":b": {"S": now.strftime("%Y-%m-%dT%H:%M") + "#\uffff"}}}
    total, by_prefix = 0, Counter()
    while True:
        response = client.query(**request)
        for item in response["Items"]:
            total += int(item.get("failures", {}).get("N", 0))
            for name, value in item.items():
                if name.startswith("k|"):
                    by_prefix[name[2:]] += int(value["N"])
        if "LastEvaluatedKey" not in response:
            break
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    _prune(AUTH_PK, first)
    return AuthFailures(minutes, total, dict(by_prefix))


def _prune(pk: str, before: str) -> None:
    client = aws.client("dynamodb")
    stale = client.query(TableName=_table(), KeyConditionExpression="pk = :pk AND #day < :a", Limit=PRUNE_PER_RUN,
                         ExpressionAttributeNames={"#day": "day"}, ProjectionExpression="pk, #day",
                         ExpressionAttributeValues={":pk": {"S": pk}, ":a": {"S": before}})["Items"]
    for key in stale:
        client.delete_item(TableName=_table(), Key=key)


# --- expensive calls ---------------------------------------------------------------------------------

def note_expensive_calls(batch: Batch) -> int:
    """The rollup's listener: note each call the batch logged that cost more than the rule's threshold.
    Idempotent: a redelivered record overwrites its own note, or finds it taken up."""
    threshold, noted = Decimal(current_rules().expensive_call_usd), 0
    for call in batch.logged:
        cost = call.cost_usd
        if cost is None or not cost.is_finite() or cost <= threshold or not call.call_id:
            continue
        ts = precise(call.ts)
        text = {"call_id": call.call_id, "ts": ts, "account": call.account, "key_id": call.key_id,
                "provider": call.provider, "model": call.model}
        fields = {name: {"S": value} for name, value in text.items() if value is not None}
        noted += _note(EXPENSIVE_PK, {"S": f"{ts}#{call.call_id}"}, {"cost_usd": {"N": format(cost, "f")}, **fields})
    return noted


def _note(pk: str, sort_key: dict[str, str], fields: dict[str, Any]) -> int:
    """Put a note unless the evaluator has taken up the same one already (1 if noted)."""
    return int(aws.conditional(lambda: aws.client("dynamodb").transact_write_items(TransactItems=[
        {"ConditionCheck": {"TableName": _table(), "Key": {"pk": {"S": TAKEN[pk]}, "day": sort_key},
                            "ConditionExpression": "attribute_not_exists(pk)"}},
        {"Put": {"TableName": _table(), "Item": {"pk": {"S": pk}, "day": sort_key, **fields}}}])))


# --- costly sessions ----------------------------------------------------------------------------------

def note_costly_sessions(batch: Batch) -> int:
    """The rollup's listener: sessions whose running total (as the batch just wrote it) passed the rule's
    threshold, noted once each, so a session alerts once, however many calls it goes on to make."""
    threshold, noted = Decimal(current_rules().session_cost_usd), 0
    for total in batch.sessions:
        if total.cost_usd > threshold:
            fields = {"account": {"S": total.account}, "session": {"S": total.session},
                      "cost_usd": {"N": format(total.cost_usd, "f")}}
            if total.user:
                fields["user"] = {"S": total.user}
            noted += _note(SESSIONS_PK, {"S": f"{total.account}|{total.session}"}, fields)
    return noted


def costly_sessions() -> tuple[list[CostlySession], list[dict[str, Any]]]:
    """The noted sessions not yet taken up, and their keys to forget them by."""
    response = aws.client("dynamodb").query(
        TableName=_table(), KeyConditionExpression="pk = :pk", Limit=NOTES_PER_RUN,
        ExpressionAttributeValues={":pk": {"S": SESSIONS_PK}})
    found = [CostlySession(item["account"]["S"], item["session"]["S"], item.get("user", {}).get("S"),
                           Decimal(item["cost_usd"]["N"])) for item in response["Items"]]
    return found, [{"pk": item["pk"], "day": item["day"]} for item in response["Items"]]


def _marker_kept(pk: str) -> timedelta:
    """How long a taken-up marker must last: a call is noted by its own stream record only, so past its
    redeliveries (TAKEN_KEPT); a session is noted again by each of its calls past the threshold, so as long as
    its calls (and with them its session items) are kept."""
    return timedelta(days=get_settings().call_ttl_days) if pk == SESSIONS_PK else TAKEN_KEPT


def expensive_calls() -> tuple[list[ExpensiveCall], list[dict[str, Any]]]:
    """The noted calls not yet taken up (at most NOTES_PER_RUN, oldest first), and their keys to forget them by."""
    response = aws.client("dynamodb").query(
        TableName=_table(), KeyConditionExpression="pk = :pk", Limit=NOTES_PER_RUN,
        ExpressionAttributeValues={":pk": {"S": EXPENSIVE_PK}})
    calls, keys = [], []
    for item in response["Items"]:
        text = {name: value.get("S") for name, value in item.items() if isinstance(value, dict)}
        calls.append(ExpensiveCall(text.get("call_id") or "", text.get("ts") or "", text.get("account") or "",
                                   text.get("key_id") or "", text.get("provider") or "", text.get("model"),
                                   Decimal(item["cost_usd"]["N"])))
        keys.append({"pk": item["pk"], "day": item["day"]})
    return calls, keys


def forget(keys: list[dict[str, Any]], now: datetime) -> None:
    """Notes the evaluator has applied: marked as taken up, then deleted. Expensive calls' markers are keyed by
    time and pruned past TAKEN_KEPT; every marker also expires (TTL) once it can no longer be needed."""
    client = aws.client("dynamodb")
    for key in keys:
        pk = key["pk"]["S"]
        expires = calendar.timegm((now + _marker_kept(pk)).timetuple())
        client.put_item(TableName=_table(), Item={"pk": {"S": TAKEN[pk]}, "day": key["day"],
                                                  "expires_at": {"N": str(expires)}})
        client.delete_item(TableName=_table(), Key=key)
    _prune(TAKEN_PK, (now - TAKEN_KEPT).strftime("%Y-%m-%dT%H:%M:%S"))
