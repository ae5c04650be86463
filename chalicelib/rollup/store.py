"""Aggregate items in DynamoDB: apply folded deltas exactly once, read days of a scope or of a kind.

Exactly once: each item keeps `hw|<lane>`, the last stream sequence number applied from each
lane: one stream (by its label) and one call-log partition, within which records arrive in order. An update adds its counters only if
every lane's mark is below the batch's first record for that lane; when the condition fails (a
redelivery), the item's marks are read and only the newer records are folded again.

A record DynamoDB refuses for what it holds (ValidationException: a number it cannot store, an item
grown past 400 KB; or a request that cannot even be serialized) fails the same way every time: the
batch is split, in stream order, until that record stands alone, and it is handed back as rejected
while the rest folds. Anything else (throttling, an outage) stops the batch there, so Lambda retries.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib import aws
from chalicelib.errors import InvalidRequest
from chalicelib.rollup.fold import AggregateKey, Delta, Fact, fold
from chalicelib.rollup.layout import LANE_PREFIX, SCOPE_KINDS, Scope, scope_id_of_day_id, watermark
from chalicelib.rollup.table import Aggregate

EXPRESSION_BYTES = 4096  # DynamoDB's limit on each expression string of a request
REFUSED_CODES = ("ValidationException",)  # DynamoDB's answer about the request's content, not its state


@lru_cache(maxsize=1)
def _deserializer() -> Any:
    """boto3's, imported on first read: boto3 costs ~40 ms of cold start the proxy never needs."""
    from boto3.dynamodb.types import TypeDeserializer

    return TypeDeserializer()


def _deserialize(value: dict[str, Any]) -> Any:
    return _deserializer().deserialize(value)


def _table() -> str:
    return Aggregate.Meta.table_name


def _number(value: Any) -> dict[str, str]:
    return {"N": format(value, "f") if isinstance(value, Decimal) else str(value)}


def update_request(key: AggregateKey, delta: Delta) -> dict[str, Any]:
    """The UpdateItem that adds `delta` to `key` unless its lanes already hold these records."""
    names = {"#kind": "kind", "#day_id": "day_id"}
    values: dict[str, Any] = {":kind": {"S": key.kind}, ":day_id": {"S": key.scope.day_id(key.day)}}
    adds, sets, conditions = [], ["#kind = :kind", "#day_id = :day_id"], []
    for i, (name, value) in enumerate(sorted(delta.nonzero().items())):
        names[f"#{i}"], values[f":{i}"] = name, _number(value)
        adds.append(f"#{i} :{i}")
    if delta.dims:
        names["#dims"], values[":dims"] = "dims", {"SS": sorted(delta.dims)}
        adds.append("#dims :dims")
    for j, lane in enumerate(sorted(delta.last_seq)):
        names[f"#h{j}"] = watermark(lane)
        values[f":f{j}"], values[f":l{j}"] = _number(delta.first_seq[lane]), _number(delta.last_seq[lane])
        conditions.append(f"(attribute_not_exists(#h{j}) OR #h{j} < :f{j})")
        sets.append(f"#h{j} = :l{j}")
    expression = (f"ADD {', '.join(adds)} " if adds else "") + f"SET {', '.join(sets)}"
    request = {"TableName": _table(), "Key": {"pk": {"S": key.pk}, "day": {"S": key.day}},
               "UpdateExpression": expression, "ExpressionAttributeNames": names,
               "ExpressionAttributeValues": values}
    if conditions:
        request["ConditionExpression"] = " AND ".join(conditions)
    return request


def too_large(deltas: dict[AggregateKey, Delta]) -> bool:
    """Whether some item's update would pass DynamoDB's expression limit (many counters, or many lanes)."""
    for key, delta in deltas.items():
        request = update_request(key, delta)
        if any(len(request.get(part, "").encode()) > EXPRESSION_BYTES
               for part in ("UpdateExpression", "ConditionExpression")):
            return True
    return False


def lanes(key: AggregateKey) -> dict[str, int]:
    """The stream high-water marks an item holds, per lane."""
    item = aws.client("dynamodb").get_item(TableName=_table(), Key={"pk": {"S": key.pk}, "day": {"S": key.day}},
                                           ConsistentRead=True).get("Item", {})
    return {name[len(LANE_PREFIX):]: int(value["N"]) for name, value in item.items()
            if name.startswith(LANE_PREFIX)}


def write(key: AggregateKey, delta: Delta, facts: list[Fact]) -> None:
    """Apply one item's delta once; on a redelivery, fold again only the records the item lacks."""
    for _ in range(3):
        try:
            aws.client("dynamodb").update_item(**update_request(key, delta))
            return
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ConditionalCheckFailedException":
                raise
        marks = lanes(key)
        newer = [f for f in facts if f.seq > marks.get(f.lane, -1)]
        delta = fold(newer).get(key)
        if delta is None:
            return
    raise RuntimeError(f"aggregate {key} kept changing under a redelivery")


def refusal(exc: BaseException) -> str | None:
    """Why a write can never succeed as it is (DynamoDB refuses what it holds, or it cannot be sent),
    or None when trying again may (throttling, an outage, a missing permission)."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message', '')}" if error.get("Code") in REFUSED_CODES else None
    if isinstance(exc, (ParamValidationError, UnicodeError, ArithmeticError)):
        return f"{type(exc).__name__}: {exc}"
    return None


@dataclass
class Applied:
    """What `apply` did: where Lambda must resend from (None: all durable), and the facts DynamoDB refused."""

    retry_from: int | None = None
    rejected: list[tuple[Fact, str]] = field(default_factory=list)


def apply(facts: list[Fact]) -> Applied:
    """Apply facts (one batch, in stream order), setting aside the ones DynamoDB refuses."""
    applied = Applied()
    _apply(facts, applied)
    return applied


def _apply(facts: list[Fact], applied: Applied) -> bool:
    """Apply a run of consecutive facts; False once something must be retried (nothing after it is tried).

    Halves are applied left before right, so each lane's records still reach every item in order:
    a part whose items were partly written is skipped there by their marks when applied again.
    """
    if not facts:
        return True
    deltas = fold(facts)
    if too_large(deltas) and len(facts) > 1:
        return _halves(facts, applied)
    failed: list[int] = []
    refused: str | None = None
    for key, delta in deltas.items():
        try:
            write(key, delta, facts)
        except Exception as exc:
            reason = refusal(exc)
            if reason is None and not isinstance(exc, ClientError):
                raise
            if reason is None:
                failed.append(min(delta.first_seq.values()))
            else:
                refused = refused or reason
    if failed:
        applied.retry_from = min(failed)
        return False
    if refused is None:
        return True
    if len(facts) == 1:
        applied.rejected.append((facts[0], refused))
        return True
    return _halves(facts, applied)


def _halves(facts: list[Fact], applied: Applied) -> bool:
    half = len(facts) // 2
    return _apply(facts[:half], applied) and _apply(facts[half:], applied)


def _items(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [{name: _deserialize(value) for name, value in item.items()} for item in response.get("Items", [])]



def query_days(scope: Scope, first_day: str, last_day: str, names: Iterable[str] | None = None,
               max_requests: int = 3) -> list[dict[str, Any]]:
    """A scope's items for a range of days, whole or projected to `names` (plus keys)."""
    request: dict[str, Any] = {
        "TableName": _table(), "KeyConditionExpression": "pk = :pk AND #day BETWEEN :a AND :b",
        "ExpressionAttributeNames": {"#day": "day"},
        "ExpressionAttributeValues": {":pk": {"S": scope.pk}, ":a": {"S": first_day}, ":b": {"S": last_day}},
    }
    if names is not None:
        wanted = ["day", *sorted(set(names))]
        request["ExpressionAttributeNames"] = {f"#p{i}": n for i, n in enumerate(wanted)}
        request["ExpressionAttributeNames"]["#day"] = "day"
        request["ProjectionExpression"] = ", ".join(f"#p{i}" for i in range(len(wanted)))
    return _paged(request, max_requests)


def query_kind(kind: str, first_day: str, last_day: str, max_requests: int = 3) -> list[dict[str, Any]]:
    """Every scope of a kind over a range of days, day counters only (the by_kind index)."""
    request = {
        "TableName": _table(), "IndexName": "by_kind",
        "KeyConditionExpression": "kind = :kind AND day_id BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":kind": {"S": kind}, ":a": {"S": first_day},
                                      ":b": {"S": f"{last_day}#\uffff"}},
    }
    return _paged(request, max_requests)


def _paged(request: dict[str, Any], max_requests: int) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for _ in range(max_requests):
        response = aws.client("dynamodb").query(**request)
        items += _items(response)
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]
    raise InvalidRequest("this range holds more data than one answer reads: ask for fewer days")


def replace_day(day: str, deltas: dict[AggregateKey, Delta]) -> int:
    """Recalculation: delete every aggregate item of `day`, then write the rebuilt ones. Returns items written."""
    client = aws.client("dynamodb")
    for kind in SCOPE_KINDS:
        stale = query_kind(kind, day, day, max_requests=1000)
        for item in stale:
            client.delete_item(TableName=_table(), Key={"pk": {"S": Scope(kind, scope_id_of_day_id(item["day_id"])).pk},
                                                        "day": {"S": day}})
    for key, delta in deltas.items():
        client.put_item(TableName=_table(), Item=full_item(key, delta))
    return len(deltas)


def full_item(key: AggregateKey, delta: Delta) -> dict[str, Any]:
    """A whole aggregate item (no expression-size limit, unlike an update): for rebuilt days."""
    item: dict[str, Any] = {"pk": {"S": key.pk}, "day": {"S": key.day}, "kind": {"S": key.kind},
                            "day_id": {"S": key.scope.day_id(key.day)}}
    item.update({name: _number(value) for name, value in delta.nonzero().items()})
    if delta.dims:
        item["dims"] = {"SS": sorted(delta.dims)}
    return item


def get_days(scope: Scope, days: list[str], max_requests: int = 3) -> list[dict[str, Any]]:
    """Whole items of a few days of one scope, in one BatchGetItem (more only for keys DynamoDB left unprocessed)."""
    if not days:
        return []
    request = {_table(): {"Keys": [{"pk": {"S": scope.pk}, "day": {"S": day}} for day in days]}}
    items: list[dict[str, Any]] = []
    for _ in range(max_requests):
        response = aws.client("dynamodb").batch_get_item(RequestItems=request)
        items += response["Responses"].get(_table(), [])
        request = response.get("UnprocessedKeys") or {}
        if not request:
            return _items({"Items": items})
    raise RuntimeError("DynamoDB left keys unprocessed: try again")
