"""What the evaluator needs that no aggregate holds, read back: refused authentications, expensive calls and
costly sessions. The ledger writes them (chalicelib/ledger/signals.py), noting calls and sessions when the
rollup's listeners say so (listeners.py); here are the readers.

- 401s: counted by each proxy container per minute; read over the rule's window, older counts deleted.
- Expensive calls and costly sessions: noted from the facts the rollup publishes as it reads the call-log
  stream (chalicelib/rollup/handler.py), so none is missed however many calls there are or however late a
  long call is written. The evaluator takes the notes up, leaving a marker (kept two days, past the
  stream's 24 h, for a call) so a redelivered record is not noted a second time.
"""
from __future__ import annotations

import calendar
from collections import Counter
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from chalicelib import aws
from chalicelib.alerting.rules import AuthFailures, CostlySession, ExpensiveCall
from chalicelib.ledger.signals import (
    AUTH_PK,
    EXPENSIVE_PK,
    SESSIONS_PK,
    TAKEN,
    TAKEN_PK,
    table,
)
from chalicelib.settings import get_settings

TAKEN_KEPT = timedelta(days=2)
PRUNE_PER_RUN = 25
NOTES_PER_RUN = 500


def auth_failures(now: datetime, minutes: int) -> AuthFailures:
    """401s counted in the last `minutes` (by whole minutes); older counts are deleted as they age out."""
    first = (now - timedelta(minutes=minutes - 1)).strftime("%Y-%m-%dT%H:%M")
    client = aws.client("dynamodb")
    request: dict[str, Any] = {
        "TableName": table(), "KeyConditionExpression": "pk = :pk AND #day BETWEEN :a AND :b",
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
    stale = client.query(TableName=table(), KeyConditionExpression="pk = :pk AND #day < :a", Limit=PRUNE_PER_RUN,
                         ExpressionAttributeNames={"#day": "day"}, ProjectionExpression="pk, #day",
                         ExpressionAttributeValues={":pk": {"S": pk}, ":a": {"S": before}})["Items"]
    for key in stale:
        client.delete_item(TableName=table(), Key=key)


def costly_sessions() -> tuple[list[CostlySession], list[dict[str, Any]]]:
    """The noted sessions not yet taken up, and their keys to forget them by."""
    response = aws.client("dynamodb").query(
        TableName=table(), KeyConditionExpression="pk = :pk", Limit=NOTES_PER_RUN,
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
        TableName=table(), KeyConditionExpression="pk = :pk", Limit=NOTES_PER_RUN,
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
        client.put_item(TableName=table(), Item={"pk": {"S": TAKEN[pk]}, "day": key["day"],
                                                  "expires_at": {"N": str(expires)}})
        client.delete_item(TableName=table(), Key=key)
    _prune(TAKEN_PK, (now - TAKEN_KEPT).strftime("%Y-%m-%dT%H:%M:%S"))
