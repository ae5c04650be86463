"""Aggregate items in DynamoDB: apply folded deltas exactly once; read a scope's days back as day views.

A day view (what reports read) is stored as several small items (chalicelib/rollup/layout.py): a read
Queries one family of them (days, hours, one breakdown) per request and sums them back per day.

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

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, Iterable

from botocore.exceptions import ClientError, ParamValidationError

from chalicelib import aws
from chalicelib.errors import InvalidRequest
from chalicelib.rollup.fold import AggregateKey, Delta, Fact, fold
from chalicelib.rollup.layout import (
    END,
    FIVE_MINUTE_ITEM,
    HOUR_ITEM,
    LANE_PREFIX,
    SCOPE_KINDS,
    TIERS,
    Scope,
    day_of_sort_key,
    day_views,
    families,
    is_counter,
    scope_id_of_day_id,
    session_account,
    sort_key_range,
    split_view_name,
    tier_of,
    time_bound,
    unsharded_day_id,
    watermark,
)
from chalicelib.rollup.models import Aggregate

EXPRESSION_BYTES = 4096  # DynamoDB's limit on each expression string of a request
REFUSED_CODES = ("ValidationException",)  # DynamoDB's answer about the request's content, not its state
# concurrent UpdateItems per batch (one boto3 client is thread-safe; chalicelib/aws.py pools as many connections):
# a batch of a few thousand records writes tens of thousands of items
WRITERS = 32


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


def _value(value: Any) -> dict[str, str]:
    return {"S": value} if isinstance(value, str) else _number(value)


def _key(key: AggregateKey) -> dict[str, Any]:
    return {"pk": {"S": key.pk}, "day": {"S": key.sort_key}}


def update_request(key: AggregateKey, delta: Delta) -> dict[str, Any]:
    """The UpdateItem that adds `delta` to `key` unless its lanes already hold these records."""
    names: dict[str, str] = {}
    values: dict[str, Any] = {}
    adds, sets, conditions = [], [], []
    if key.is_day_item:  # the keys of the sparse by_kind index
        names |= {"#kind": "kind", "#day_id": "day_id"}
        values |= {":kind": {"S": key.kind}, ":day_id": {"S": key.scope.day_id(key.day, key.shard)}}
        sets += ["#kind = :kind", "#day_id = :day_id"]
    for i, (name, value) in enumerate(sorted(delta.nonzero().items())):
        names[f"#{i}"], values[f":{i}"] = name, _number(value)
        adds.append(f"#{i} :{i}")
    for k, (name, value) in enumerate(sorted(delta.latest.items())):
        names[f"#s{k}"], values[f":s{k}"] = name, _value(value)
        sets.append(f"#s{k} = :s{k}")
    for k, (name, value) in enumerate(sorted(delta.earliest.items())):
        names[f"#e{k}"], values[f":e{k}"] = name, _value(value)
        sets.append(f"#e{k} = if_not_exists(#e{k}, :e{k})")
    for j, lane in enumerate(sorted(delta.last_seq)):
        names[f"#h{j}"] = watermark(lane)
        values[f":f{j}"], values[f":l{j}"] = _number(delta.first_seq[lane]), _number(delta.last_seq[lane])
        conditions.append(f"(attribute_not_exists(#h{j}) OR #h{j} < :f{j})")
        sets.append(f"#h{j} = :l{j}")
    expression = (f"ADD {', '.join(adds)} " if adds else "") + f"SET {', '.join(sets)}"
    request = {"TableName": _table(), "Key": _key(key), "UpdateExpression": expression,
               "ExpressionAttributeNames": names, "ExpressionAttributeValues": values}
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


def marks(key: AggregateKey, client: Any = None) -> dict[str, int]:
    """The stream high-water marks an item holds, by their attribute names (`watermark(lane)`)."""
    item = (client or aws.client("dynamodb")).get_item(TableName=_table(), Key=_key(key), ConsistentRead=True).get("Item", {})
    return {name: int(value["N"]) for name, value in item.items() if name.startswith(LANE_PREFIX)}


def write(key: AggregateKey, delta: Delta, facts: list[Fact], client: Any = None) -> dict[str, Any] | None:
    """Apply one item's delta once; on a redelivery, fold again only the records the item lacks. A session's
    item answers its new totals (what the session-cost rule reads), others nothing."""
    client = client or aws.client("dynamodb")
    for _ in range(3):
        request = update_request(key, delta)
        if key.kind == "session":
            request["ReturnValues"] = "ALL_NEW"
        answer: dict[str, Any] = {}
        if aws.conditional(lambda: answer.update(client.update_item(**request))):
            return {n: _deserialize(v) for n, v in answer.get("Attributes", {}).items()} or None
        held = marks(key, client)
        newer = [f for f in facts if f.seq > held.get(watermark(f.lane), -1)]
        delta = fold(newer).get(key)
        if delta is None:
            return None
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


@dataclass(frozen=True)
class SessionTotal:
    """A session's running totals, as a batch's write left its item (what the session-cost rule reads)."""

    account: str
    session: str
    user: str | None
    cost_usd: Decimal

    @classmethod
    def of_item(cls, item: dict[str, Any]) -> SessionTotal:
        return cls(session_account(item["day"]), Scope.of_pk(item["pk"]).scope_id, item.get("user") or None,
                   Decimal(item.get("cost", 0)))


@dataclass
class Applied:
    """What `apply` did: where Lambda must resend from (None: all durable), and the facts DynamoDB refused."""

    retry_from: int | None = None
    rejected: list[tuple[Fact, str]] = field(default_factory=list)
    sessions: list[SessionTotal] = field(default_factory=list)  # the sessions written, with their new totals


def apply(facts: list[Fact], tiers: tuple[str, ...] = TIERS) -> Applied:
    """Apply facts (one batch, in stream order) to the items of `tiers` (layout.py: the summary's, the detail's),
    setting aside the ones DynamoDB refuses."""
    applied = Applied()
    _apply(facts, applied, tiers)
    return applied


def _apply(facts: list[Fact], applied: Applied, tiers: tuple[str, ...]) -> bool:
    """Apply a run of consecutive facts; False once something must be retried (nothing after it is tried).

    Halves are applied left before right, so each lane's records still reach every item in order:
    a part whose items were partly written is skipped there by their marks when applied again.
    """
    if not facts:
        return True
    deltas = {key: delta for key, delta in fold(facts).items() if tier_of(key.kind) in tiers}
    if too_large(deltas) and len(facts) > 1:
        return _halves(facts, applied, tiers)
    failed: list[int] = []
    refused: str | None = None
    for (key, delta), (exc, written) in zip(deltas.items(), _write_all(deltas, facts)):
        if written is not None:
            applied.sessions.append(SessionTotal.of_item(written))
        if exc is None:
            continue
        reason = refusal(exc)
        if reason is None and not isinstance(exc, ClientError):
            raise exc
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
    return _halves(facts, applied, tiers)


def _write_all(deltas: dict[AggregateKey, Delta], facts: list[Fact],
               ) -> list[tuple[BaseException | None, dict[str, Any] | None]]:
    """Write every item's delta, WRITERS at a time (items are independent: each holds its own marks), so a
    batch's few hundred small writes take the time of a few; what each raised or answered, in order."""
    client = aws.client("dynamodb")  # one for the batch: creating clients is neither cheap nor thread-safe

    def attempt(entry: tuple[AggregateKey, Delta]) -> tuple[BaseException | None, dict[str, Any] | None]:
        try:
            return None, write(*entry, facts, client)
        except Exception as exc:
            return exc, None
    if len(deltas) == 1:
        return [attempt(next(iter(deltas.items())))]
    with ThreadPoolExecutor(max_workers=WRITERS) as pool:
        return list(pool.map(attempt, deltas.items()))


def _halves(facts: list[Fact], applied: Applied, tiers: tuple[str, ...]) -> bool:
    half = len(facts) // 2
    return _apply(facts[:half], applied, tiers) and _apply(facts[half:], applied, tiers)


def _items(response: dict[str, Any]) -> list[dict[str, Any]]:
    return [{name: _deserialize(value) for name, value in item.items()} for item in response.get("Items", [])]


class _Budget:
    """How many requests one read may still send: a report's reads share its budget."""

    def __init__(self, requests: int) -> None:
        self.left = requests

    def spend(self) -> None:
        if self.left <= 0:
            raise InvalidRequest("this range holds more data than one answer reads: ask for fewer days")
        self.left -= 1


def query_days(scope: Scope, first_day: str, last_day: str, names: Iterable[str] | None = None,
               max_requests: int = 3, parts: Iterable[str] | None = None,
               since: datetime | None = None, five_minutes_until: datetime | None = None) -> list[dict[str, Any]]:
    """A scope's day views for a range of days: the counters `names` (each family of items read once, projected),
    plus the families in `parts` whole (by default, with no names: days and hours). `since` starts the time
    families (hours, 5-minute buckets) at the bucket holding it rather than at `first_day`'s midnight;
    `five_minutes_until` ends the 5-minute buckets at the one holding it (a range's part-hour edge)."""
    budget = _Budget(max_requests)
    by_family: dict[str, set[str] | None] = {}
    for name in names or ():
        family, stored = split_view_name(name)
        by_family.setdefault(family, set()).add(stored)  # type: ignore[union-attr]
    for family in parts or (() if names is not None else ("day", HOUR_ITEM)):
        by_family[family] = None
    items: list[dict[str, Any]] = []
    for family, projected in sorted(by_family.items()):
        low, high = sort_key_range(family, first_day, last_day)
        if since is not None and family in (HOUR_ITEM, FIVE_MINUTE_ITEM):
            low = time_bound(family, since)
        if five_minutes_until is not None and family == FIVE_MINUTE_ITEM:
            high = time_bound(family, five_minutes_until) + END
        items += _query_range(scope, low, high, sorted(projected) if projected is not None else None, budget)
    return day_views(items)


def query_items(scope: Scope, low: str, high: str, max_requests: int = 3) -> list[dict[str, Any]]:
    """A scope's stored items whose sort keys are in [low, high], as they are (sessions: not day views)."""
    return _query_range(scope, low, high, None, _Budget(max_requests))


def _query_range(scope: Scope, low: str, high: str, names: list[str] | None, budget: _Budget) -> list[dict[str, Any]]:
    request: dict[str, Any] = {
        "TableName": _table(), "KeyConditionExpression": "pk = :pk AND #day BETWEEN :a AND :b",
        "ExpressionAttributeNames": {"#day": "day"},
        "ExpressionAttributeValues": {":pk": {"S": scope.pk}, ":a": {"S": low}, ":b": {"S": high}},
    }
    if names is not None:
        request["ExpressionAttributeNames"] |= {f"#p{i}": n for i, n in enumerate(names)}
        request["ProjectionExpression"] = ", ".join(["#day", *(f"#p{i}" for i in range(len(names)))])
    return _paged(request, budget)


def query_kind(kind: str, first_day: str, last_day: str, max_requests: int = 3) -> list[dict[str, Any]]:
    """Every scope of a kind over a range of days, day counters only (the by_kind index), one entry per
    (day, scope): a sharded scope's shards summed. Each entry's `day_id` is `<day>#<stored scope id>`."""
    request = {
        "TableName": _table(), "IndexName": "by_kind",
        "KeyConditionExpression": "kind = :kind AND day_id BETWEEN :a AND :b",
        "ExpressionAttributeValues": {":kind": {"S": kind}, ":a": {"S": first_day},
                                      ":b": {"S": f"{last_day}#\uffff"}},
    }
    entries: dict[str, dict[str, Any]] = {}
    for item in _paged(request, _Budget(max_requests)):
        day_id = unsharded_day_id(kind, item["day_id"])
        entry = entries.setdefault(day_id, {"day": day_of_sort_key(item["day"]), "day_id": day_id})
        for name, value in item.items():
            if is_counter(name) and isinstance(value, (int, Decimal)):
                entry[name] = entry.get(name, 0) + value
    return [entries[day_id] for day_id in sorted(entries)]


def _paged(request: dict[str, Any], budget: _Budget) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    while True:
        budget.spend()
        response = aws.client("dynamodb").query(**request)
        items += _items(response)
        if "LastEvaluatedKey" not in response:
            return items
        request["ExclusiveStartKey"] = response["LastEvaluatedKey"]


def replace_day(day: str, deltas: dict[AggregateKey, Delta]) -> int:
    """Recalculation: delete every aggregate item of `day` (each scope's day, hours and breakdowns, every shard),
    then write the rebuilt ones. A session's totals span days: they stay as the stream wrote them, and expire
    with their calls. Returns items written."""
    client = aws.client("dynamodb")
    for kind in SCOPE_KINDS:
        for entry in query_kind(kind, day, day, max_requests=1000):
            scope = Scope(kind, scope_id_of_day_id(entry["day_id"]))
            for family in families(kind):
                for item in _query_range(scope, *sort_key_range(family, day, day), ["pk"], _Budget(1000)):
                    client.delete_item(TableName=_table(), Key={"pk": {"S": scope.pk}, "day": {"S": item["day"]}})
    rebuilt = {key: delta for key, delta in deltas.items() if key.day}  # sessions are not rebuilt: they expire
    for key, delta in rebuilt.items():
        client.put_item(TableName=_table(), Item=full_item(key, delta))
    return len(rebuilt)


def full_item(key: AggregateKey, delta: Delta) -> dict[str, Any]:
    """A whole aggregate item (no expression-size limit, unlike an update): for rebuilt days."""
    item: dict[str, Any] = _key(key)
    if key.is_day_item:
        item |= {"kind": {"S": key.kind}, "day_id": {"S": key.scope.day_id(key.day, key.shard)}}
    item.update({name: _number(value) for name, value in delta.nonzero().items()})
    item.update({name: _value(value) for name, value in (delta.earliest | delta.latest).items()})
    return item
