"""Seven adjustments so moto copes with aggregate items of thousands of attributes, and with tiny costs, as DynamoDB
does, and three so a long-running local stack keeps what AWS keeps, not everything (the last section).

- moto parses an update expression into a tree as deep as its ADD list (DynamoDB itself only limits
  each expression to 4 KB, which `aggstore.too_large` respects): its parser needs a deeper stack.
- moto checks the 400 KB item limit by summing the whole item on every attribute it sets, so building
  an item of n attributes costs n² size computations (seconds for one aggregate item). Here the sum is
  kept as it grows (an overwrite counts twice, so it only errs high) and recomputed exactly before
  anything is refused, so items are refused exactly where moto refuses them.
- moto projects an item by converting the whole item to JSON and back once per projected name; for top-level
  names (all Tollgate projects) the projected values are copied as they are.
- moto compares two values by converting both whole (a map of thousands of counters to a dict, each number to
  a Decimal), and sorts and compares items that way millions of times in a long run: strings, numbers and
  maps compare here without the conversion, with the same result.
- moto fills a 1 MB page of an index Query with whole items; DynamoDB with index entries, which hold
  only the projected attributes (a few hundred bytes of a 100 KB aggregate item in `by_kind`).
- moto answers every Query by sorting the whole table (every partition, by rich comparisons of its key
  types) and then keeping one partition or one index key: seconds a report once a table holds thousands of
  items. Here a table Query reads only its partition, an index Query filters before the index's own sort,
  and a Scan sorts by the keys' plain values, in the same order.
- moto parses an update expression twice per request and checks its shape with three passes over the tree, one
  of them n² in the expression's actions: ~22 ms of a 40-counter rollup UpdateItem. Here a text is parsed once and
  its shape checked once (every check that reads the values or the item still runs on every request).
- moto adds numbers with `int()` unless they hold a dot, and writes the sum as Python prints it: $0.0000001 +
  $0.0000001 became `2E-7`, which its next ADD could not parse (ValueError: the rollup stalled on a shared
  shard). DynamoDB adds exactly to 38 significant digits and writes a number plainly (no exponent, no trailing
  zero, no `-0`); here every number moto stores is written that way, and sums are exact, or refused past 38 digits.

Atomicity (tests/integration/test_moto_atomicity.py shows moto without it admitting two conflicting writes):
- moto checks a write's condition and applies the write as two steps, and its server runs each request in a
  thread, so two conditional writes on one item can both pass their checks; DynamoDB applies each write (and
  each transaction) atomically. One lock here runs moto's DynamoDB writes one at a time.
- moto's TransactWriteItems deep-copies every table it touches before writing, to roll back a cancelled
  transaction: the whole call log, once per call a hard budget settles. Here every condition is checked
  first, nothing is written if one fails, and a write that fails while applying restores only the items
  written before it.

Memory (moto shares the local stack's process):
- moto lists every model object it ever builds (`BaseModel.__new__` appends it to its class's `instances_tracked`,
  for moto's own dashboard, emptied only when a mock stops): every copy of an item a Query or Scan answers, every
  stream record and shard iterator. An inline export of n calls kept n items (+5.5 MB an export of 1,000 calls),
  and nothing moto forgot (below) was freed. Here moto builds its objects untracked. The list was hard to find:
  `coldstart_gc.loaded()` freezes it with the imported modules, where `gc.get_referrers` does not look.
- moto keeps every shard iterator it ever handed out (one per GetRecords: the stream pump's two a
  second, ~2 KB each); AWS lets an iterator expire after 15 minutes. The newest ITERATORS_KEPT stay.
- moto keeps every stream record (a copy of the item's old and new image) for the life of the process;
  AWS for 24 hours. `trim_stream` forgets the records the stream pump has applied.
- moto's Flask apps run in debug mode, where each request builds a class of its own (Flask's
  `attach_enctype_error_multidict`): garbage that only a full collection frees, and with moto's millions
  of objects one runs rarely. Debug mode is off here.
"""
from __future__ import annotations

import bisect
import copy
import functools
import hashlib
import json
import re
import sys
import threading
from dataclasses import dataclass
from decimal import Context, Decimal, InvalidOperation
from typing import Any

RECURSION_LIMIT = 20_000
ITERATORS_KEPT = 1000
ITEM_LIMIT = 405_000  # moto's own figure: DynamoDB refuses items between 409 and 410 KB


def _size(value: Any) -> int:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    return value.size() if type(value) is DynamoType else bytesize(str(value))


def _setitem(self: dict, key: str, value: Any) -> None:
    from moto.dynamodb.exceptions import ItemSizeTooLarge
    from moto.dynamodb.models.utilities import bytesize

    added = bytesize(key) + _size(value)
    running = self.__dict__.get("_running_size")
    if running is None or running + added > ITEM_LIMIT:
        running = sum(_size(k) + _size(v) for k, v in self.items())
        if running + added > ITEM_LIMIT:
            raise ItemSizeTooLarge
    self.__dict__["_running_size"] = running + added
    dict.__setitem__(self, key, value)


def _project_once(original):
    def project(self: Any, projection_expressions: list[list[str]]) -> Any:
        from moto.dynamodb.models.dynamo_type import Item

        if any(len(path) != 1 or "[" in path[0] for path in projection_expressions):
            return original(self, projection_expressions)  # nested paths: moto's own way
        kept = Item(hash_key=self.hash_key, range_key=self.range_key, attrs={})
        for path in projection_expressions:
            if path[0] in self.attrs and path[0] not in kept.attrs:
                kept.attrs[path[0]] = copy.deepcopy(self.attrs[path[0]])
        return kept

    project.tuned = True  # type: ignore[attr-defined]
    return project


_querying = threading.local()  # the table and partition a Query on this thread reads, and its projected index


def _entry_size(original):
    def size(self: Any) -> int:
        index = getattr(_querying, "index", None)
        if index is None:
            return original(self)
        _querying.index = None  # projecting builds items; their sizes are plain
        try:
            return original(index.project(self))
        finally:
            _querying.index = index

    return size


def _pages_of_entries(original):
    """moto's `Table.query`, telling `_all_items_keyed` which partition (or index key) and key range it reads, and
    `_entry_size` which projected index it pages through, if any."""
    def query(self: Any, hash_key: Any, *args: Any, **kwargs: Any) -> Any:
        name = args[6] if len(args) > 6 else kwargs.get("index_name")
        comparison = args[0] if args else kwargs.get("range_comparison")
        values = args[1] if len(args) > 1 else kwargs.get("range_objs")
        index = self.get_index(name) if name else None
        projected = index is not None and (index.projection or {}).get("ProjectionType", "ALL") != "ALL"
        _querying.table = _Asked(self, hash_key, index, _bounds(comparison, values or []))
        _querying.index = index if projected else None
        try:
            return original(self, hash_key, *args, **kwargs)
        finally:
            _querying.table = _querying.index = None

    return query


@dataclass(frozen=True)
class _Asked:
    table: Any
    hash_key: Any
    index: Any  # None: the table itself
    bounds: tuple[Any, Any] | None  # inclusive plain bounds of the range condition (None inside: open), if known


def _plain_key(value: Any) -> Any:
    """A key attribute's value as Python orders it, in DynamoDB's order (strings and bytes bytewise by UTF-8)."""
    return Decimal(value.value) if value.type == "N" else value.value.encode() if value.type == "S" else value.value


_BEYOND = b"\xff"  # follows every UTF-8 string that starts with a prefix (UTF-8 never holds the byte 0xff)


def _bounds(comparison: str | None, values: list[Any]) -> tuple[Any, Any] | None:
    """The inclusive plain bounds a range key condition keeps keys within (None for an open end), or None when
    there is no condition or it is not one of these: then the whole partition is read, as moto reads it."""
    if not comparison or not values or len({v.type for v in values}) != 1 or values[0].type not in ("S", "N"):
        return None
    plain, op = [_plain_key(v) for v in values], comparison.upper()
    if op == "BETWEEN" and len(plain) == 2:
        return plain[0], plain[1]
    if op in ("=", "EQ"):
        return plain[0], plain[0]
    if op in ("<", "<=", "LT", "LE"):
        return None, plain[0]
    if op in (">", ">=", "GT", "GE"):
        return plain[0], None
    if op == "BEGINS_WITH" and values[0].type == "S":
        return plain[0], plain[0] + _BEYOND
    return None


_version = 0  # moves on every write to any table: what the index groups below were built from


def _wrote() -> None:
    global _version
    _version += 1


class _Partition(dict):
    """A partition of a table with a range key (moto's dict by range key) that keeps its keys sorted between
    inserts, so a Query finds its key range by bisection and reads only that, as DynamoDB does."""

    _changes, _sorted = 0, (-1, [])

    def _changed(self) -> None:
        self._changes += 1
        _wrote()

    def __setitem__(self, key: Any, value: Any) -> None:
        if key not in self:
            self._changed()
        dict.__setitem__(self, key, value)

    def __delitem__(self, key: Any) -> None:
        self._changed()
        dict.__delitem__(self, key)

    def pop(self, *args: Any) -> Any:
        self._changed()
        return dict.pop(self, *args)

    def popitem(self) -> Any:
        self._changed()
        return dict.popitem(self)

    def clear(self) -> None:
        self._changed()
        dict.clear(self)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        if key not in self:
            self._changed()
        return dict.setdefault(self, key, default)

    def update(self, *args: Any, **kwargs: Any) -> None:
        self._changed()
        dict.update(self, *args, **kwargs)

    def keys_in(self, bounds: tuple[Any, Any] | None) -> list[Any]:
        """The range keys within `bounds` (all if None), in order."""
        changes, keys = self._sorted
        if changes != self._changes:  # counted before sorting: an insert meanwhile sorts again next time
            changes = self._changes
            keys = sorted(self, key=_plain_key)
            self._sorted = (changes, keys)
        return _within(keys, bounds, _plain_key)


def _within(ordered: list[Any], bounds: tuple[Any, Any] | None, key: Any) -> list[Any]:
    """The part of `ordered` (sorted by `key`) within the inclusive `bounds`; all of it without bounds, or where a
    value of another type than the condition's is met (moto's own comparisons then decide)."""
    if bounds is None:
        return ordered
    low, high = bounds
    try:
        first = 0 if low is None else bisect.bisect_left(ordered, low, key=key)
        last = len(ordered) if high is None else bisect.bisect_right(ordered, high, key=key)
    except TypeError:
        return ordered
    return ordered[first:last]


def _in_range(partition: Any, bounds: tuple[Any, Any] | None) -> list[Any]:
    if type(partition) is not _Partition:  # built before tune_moto
        return list(partition.values())
    return [partition[key] for key in partition.keys_in(bounds)]


def _index_entries(table: Any, index: Any, hash_key: Any, bounds: tuple[Any, Any] | None) -> list[Any] | None:
    """The items under one key of a single-key index within `bounds`, from groups kept until the next write to any
    table (DynamoDB reads only these); None for an index of several key attributes (moto's own filter then)."""
    hashes = [key["AttributeName"] for key in index.schema if key["KeyType"] == "HASH"]
    ranges = [key["AttributeName"] for key in index.schema if key["KeyType"] == "RANGE"]
    if len(hashes) != 1 or len(ranges) > 1 or hash_key is None:
        return None
    version = _version
    groups = table.__dict__.get("_tuned_index_groups")
    if groups is None or groups[0] != version:
        groups = table.__dict__["_tuned_index_groups"] = (version, {})
    found = groups[1].get((index.name, hash_key.type, hash_key.value))
    if found is None:
        items = [item for item in _stored(table, table.items.values())
                 if (value := item.attrs.get(hashes[0])) is not None and value == hash_key
                 and (not ranges or ranges[0] in item.attrs)]
        range_key = None
        if ranges:
            try:
                items.sort(key=lambda item: _plain_key(item.attrs[ranges[0]]))
                range_key = ranges[0]
            except TypeError:  # mixed types under the index's range key: unfiltered, moto decides
                pass
        found = groups[1][(index.name, hash_key.type, hash_key.value)] = (items, range_key)
    items, range_key = found
    if range_key is None:
        return items
    return _within(items, bounds, lambda item: _plain_key(item.attrs[range_key]))


def _stored(table: Any, partitions: Any) -> list[Any]:
    """The items of `partitions` (moto keeps a partition as a dict by range key, or as its one item)."""
    return [item for part in partitions for item in part.values()] if table.range_key_attr else list(partitions)


def _all_items_keyed(self: Any) -> list[Any]:
    """moto's `Table.all_items`: for a Query, only its partition's (or index key's) items in its key range (moto's
    own filters still run after); a Scan sorted by the keys' plain values."""
    asked = getattr(_querying, "table", None)
    if asked is not None and asked.table is self:
        if asked.index is not None:
            entries = _index_entries(self, asked.index, asked.hash_key, asked.bounds)
            return _stored(self, self.items.values()) if entries is None else entries
        part = self.items.get(asked.hash_key)
        if part is None:
            return []
        return _in_range(part, asked.bounds) if self.range_key_attr else [part]
    if self.range_key_attr:
        return sorted(_stored(self, self.items.values()),
                      key=lambda x: (_plain_key(x.hash_key), _plain_key(x.range_key)))
    return sorted(self.items.values(), key=lambda x: _plain_key(x.hash_key))


_WRITTEN_AS_JSON = ("Query", "Scan")  # answers of DynamoDB JSON only, unless they hold binary values


def _answers_written_once(execute_result):
    """moto writes an answer by walking botocore's shape of every attribute value (most of a report's Query time in
    moto); a Query's or Scan's answer is the DynamoDB JSON it already holds, written here in the shape's member
    order with json's own separators, byte for byte what moto's serializer writes. Binary values, and every other
    operation, still go through moto's serializer."""
    def execute(self: Any, context: Any) -> Any:
        result = self.result
        operation = context.operation_model
        if (operation.name not in _WRITTEN_AS_JSON or context.serializer_class.__name__ != "JSONSerializer"
                or not isinstance(result, dict) or any(value is None for value in result.values())):
            return execute_result(self, context)
        members = operation.output_shape.members
        if not set(result) <= set(members):
            return execute_result(self, context)
        try:
            body = json.dumps({name: result[name] for name in members if name in result})
        except TypeError:  # bytes: moto's serializer encodes them in base64
            return execute_result(self, context)
        from moto.core.responses import ActionResult

        status, headers, _ = execute_result(ActionResult({}), context)  # moto's headers and status
        return status, headers, body

    execute.tuned = True  # type: ignore[attr-defined]
    return execute


_AS_WRITTEN = ("S", "B", "BOOL")  # types whose stored value compares as it is


def _compare_without_converting() -> None:
    from decimal import Decimal

    from moto.dynamodb.models.dynamo_type import DynamoType

    equal, less = DynamoType.__eq__, DynamoType.__lt__

    def eq(self: Any, other: Any) -> bool:
        if self.type != other.type:
            return False
        if self.type in _AS_WRITTEN:
            return self.value == other.value
        if self.type == "N":
            return Decimal(self.value) == Decimal(other.value)
        if self.type == "M":
            return self.value.keys() == other.value.keys() and all(v == other.value[k] for k, v in self.value.items())
        return equal(self, other)

    def lt(self: Any, other: Any) -> bool:
        if self.type == other.type == "S":
            return self.value < other.value
        if self.type == other.type == "N":
            return Decimal(self.value) < Decimal(other.value)
        return less(self, other)

    eq.tuned = True  # type: ignore[attr-defined]
    DynamoType.__eq__, DynamoType.__ne__, DynamoType.__lt__ = eq, lambda self, other: not eq(self, other), lt


_PLAIN = re.compile(r"(?!-0$)-?(?:0|[1-9][0-9]*)(?:\.[0-9]*[1-9])?")  # how DynamoDB writes a number
DIGITS_MAX = 38
_EXACT = Context(prec=400)  # wider than the 256 digits between 1E-130 and 1E+126: a sum is never rounded


def dynamodb_number(value: Decimal) -> str:
    """`value` written as DynamoDB writes it ("0.0000002", "105", "0"), or refused as DynamoDB refuses it."""
    from moto.dynamodb.exceptions import MockValidationException

    if value.is_zero():
        return "0"
    value = value.normalize(_EXACT)
    if len(value.as_tuple().digits) > DIGITS_MAX:
        raise MockValidationException("Attempting to store more than 38 significant digits in a Number")
    if value.adjusted() > 125:
        raise MockValidationException("Number overflow. Attempting to store a number with magnitude larger than "
                                      "supported range")
    if value.adjusted() < -130:
        raise MockValidationException("Number underflow. Attempting to store a number with magnitude smaller than "
                                      "supported range")
    return format(value, "f")


def _plain_numbers() -> None:
    """Numbers are written plainly as they enter moto, and added and subtracted exactly."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    init, add, sub = DynamoType.__init__, DynamoType.__add__, DynamoType.__sub__

    def plain(self: Any, type_as_dict: Any) -> None:
        init(self, type_as_dict)
        value = self.value
        if self.type != "N" or type(value) is not str or (value.isdigit() and (value[0] != "0" or value == "0")):
            return  # most numbers are counters, already plain: no regex for them
        if not _PLAIN.fullmatch(value):
            try:
                self.value = dynamodb_number(Decimal(value))
            except Exception:  # not a number DynamoDB takes: left for moto's own validation to refuse
                pass

    def arithmetic(original: Any, operation: Any) -> Any:
        def apply(self: Any, other: Any) -> Any:
            if self.type != "N" or other.type != "N":
                return original(self, other)  # moto's own errors
            try:
                left, right = Decimal(self.value), Decimal(other.value)
            except InvalidOperation:
                return original(self, other)
            return DynamoType({"N": dynamodb_number(operation(left, right))})
        return apply

    plain.tuned = True  # type: ignore[attr-defined]
    DynamoType.__init__ = plain
    DynamoType.__add__ = arithmetic(add, _EXACT.add)
    DynamoType.__sub__ = arithmetic(sub, _EXACT.subtract)


class _NewestIterators(dict):
    """moto's register of shard iterators, keeping only the newest ITERATORS_KEPT."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()

    def __setitem__(self, key: str, value: Any) -> None:
        with self._lock:
            dict.__setitem__(self, key, value)
            while len(self) > ITERATORS_KEPT:
                del self[next(iter(self))]


_stream_lock = threading.Lock()  # a record's sequence number comes from the shard's length and start


def _numbering_locked(add):
    def locked(self: Any, *args: Any) -> None:
        with _stream_lock:
            add(self, *args)

    locked.tuned = True  # type: ignore[attr-defined]
    return locked


def trim_stream(table_name: str, applied: int) -> int:
    """Forget the table's stream records up to sequence number `applied`; returns how many were forgotten.
    Sequence numbers stay as they were: the shard's start moves past the forgotten records."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(table_name).stream_shard
    with _stream_lock:
        forget = min(len(shard.items), applied + 1 - shard.starting_sequence_number)
        if forget <= 0:
            return 0
        del shard.items[:forget]
        shard.starting_sequence_number += forget
    return forget


def _without_debug(create):
    def create_backend_app(service: Any) -> Any:
        app = create(service)
        app.debug = False
        return app

    return create_backend_app


_write_lock = threading.RLock()  # DynamoDB applies each write and transaction atomically: here, one at a time
WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def _one_at_a_time(write):
    @functools.wraps(write)
    def locked(*args: Any, **kwargs: Any) -> Any:
        with _write_lock:
            try:
                return write(*args, **kwargs)
            finally:
                _wrote()  # an update changes an item in place: the index groups are rebuilt on their next Query

    locked.tuned = True  # type: ignore[attr-defined]
    return locked


def _transact_write_items(self: Any, transact_items: list[dict[str, Any]]) -> None:
    """TransactWriteItems as DynamoDB runs it: every condition against the items as they were, then all the
    writes or none, without copying the tables."""
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import (
        ConditionalCheckFailed,
        MultipleTransactionsException,
        TooManyTransactionsException,
        TransactionCanceledException,
        TransactWriteSingleOpException,
    )

    if len(transact_items) > 100:
        raise TooManyTransactionsException()
    targets, writes, reasons = set(), [], []
    for item in transact_items:
        if len(item) > 1:
            raise TransactWriteSingleOpException
        op_type, op = next(iter(item.items()))
        table_name = op["TableName"]
        table = self.get_table(table_name)
        if op_type == "Put":
            key = {table.hash_key_attr: op["Item"][table.hash_key_attr]}
            if table.range_key_attr is not None:
                key[table.range_key_attr] = op["Item"][table.range_key_attr]
        else:
            key = op["Key"]
        target = (table_name, str(dict(sorted(key.items()))))
        if target in targets:
            raise MultipleTransactionsException()
        targets.add(target)
        current = self.get_item(table_name, key)
        condition = op.get("ConditionExpression")
        if condition is not None and not get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")).expr(current):
            old = current.to_json()["Attributes"] if current and op.get(
                "ReturnValuesOnConditionCheckFailure") == "ALL_OLD" else None
            reasons.append(("ConditionalCheckFailed", ConditionalCheckFailed().message, old))
            continue
        reasons.append((None, None, None))
        writes.append((op_type, op, table_name, key, current))
    if any(code is not None for code, _, _ in reasons):
        raise TransactionCanceledException(reasons)
    done = []
    try:
        for op_type, op, table_name, key, current in writes:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if op_type == "Put":
                self.put_item(table_name, op["Item"], expression_attribute_names=names,
                              expression_attribute_values=values)
            elif op_type == "Delete":
                self.delete_item(table_name, key, expression_attribute_names=names, expression_attribute_values=values)
            elif op_type == "Update":
                self.update_item(table_name, key, update_expression=op["UpdateExpression"],
                                 expression_attribute_names=names, expression_attribute_values=values)
            done.append((table_name, key, current))
    except Exception:
        for table_name, key, current in reversed(done):  # the items as they were before this transaction
            if current is None:
                self.delete_item(table_name, key)
            else:
                self.put_item(table_name, current.to_json()["Attributes"])
        raise


def _atomic_writes() -> None:
    from moto.dynamodb.models import DynamoDBBackend

    if getattr(DynamoDBBackend.put_item, "tuned", False):
        return
    DynamoDBBackend.transact_write_items = _transact_write_items
    for name in WRITES:
        setattr(DynamoDBBackend, name, _one_at_a_time(getattr(DynamoDBBackend, name)))


def tune_moto() -> None:
    from moto.dynamodb.models.dynamo_type import DynamoType, Item, LimitedSizeDict
    from moto.dynamodb.models.table import Table

    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    LimitedSizeDict.__setitem__ = _setitem
    if not getattr(DynamoType.__eq__, "tuned", False):
        _compare_without_converting()
    if not getattr(DynamoType.__init__, "tuned", False):
        _plain_numbers()
    if not getattr(Item.project, "tuned", False):
        Item.project = _project_once(Item.project)
        Item.size = _entry_size(Item.size)
        Table.query = _pages_of_entries(Table.query)
        Table.all_items = _all_items_keyed
        init = Table.__init__

        def partitioned(self: Any, *args: Any, **kwargs: Any) -> None:
            init(self, *args, **kwargs)
            self.items.default_factory = _Partition

        Table.__init__ = partitioned
    from moto.dynamodb.responses import DynamoResult

    if not getattr(DynamoResult.execute_result, "tuned", False):
        DynamoResult.execute_result = _answers_written_once(DynamoResult.execute_result)
    _update_expressions_checked_once()
    _keep_what_aws_keeps()
    _atomic_writes()


EXPRESSIONS_KEPT = 1024  # update expressions parsed, and their checks passed, remembered by their text
_passed_lock = threading.Lock()


def _update_expressions_checked_once() -> None:
    """moto parses an UpdateExpression twice per request, and checks it with three passes over the tree that depend
    on nothing but the expression, its names and the table's keys; one of them searches the whole tree again at
    each of its nodes (n² in its actions). A rollup UpdateItem of 40 counters took ~22 ms of moto's CPU, and the
    rollup sends the same few expressions thousands of times. Here each text is parsed once (moto only reads the
    tree: its validator works on a deep copy), and those three checks, once passed, are not run again for the same
    text, names and keys. Every other check, which reads the values or the item, runs on every request."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    if getattr(UpdateExpressionParser.make, "tuned", False):
        return
    make = UpdateExpressionParser.__dict__["make"].__func__

    @functools.lru_cache(maxsize=EXPRESSIONS_KEPT)
    def parsed(cls: type, text: str) -> Any:
        tree = make(cls, text)
        tree.tollgate_text = text  # what the checks below are remembered by
        return tree

    parsed.tuned = True
    UpdateExpressionParser.make = classmethod(parsed)
    expression_only = (validators.ActionCountValidator, validators.OverlappingPathsValidator,
                       validators.UpdateHashRangeKeyValidator)
    passed: dict[tuple, None] = {}  # insertion-ordered: the oldest forgotten first
    validator = validators.UpdateExpressionValidator
    init = validator.__init__

    def remembering(self: Any, expression: Any, expression_attribute_names: Any, *args: Any, **kwargs: Any) -> None:
        init(self, expression, expression_attribute_names, *args, **kwargs)
        text, self.tollgate_checks = getattr(expression, "tollgate_text", None), None
        if text is not None:  # the names by their digest: a key stays ~200 bytes
            names = json.dumps(sorted((expression_attribute_names or {}).items())).encode()
            self.tollgate_checks = (text, hashlib.blake2b(names, digest_size=16).digest(),
                                    tuple(self.table.table_key_attrs))

    def validate(self: Any) -> Any:
        known = self.tollgate_checks is not None and self.tollgate_checks in passed
        node = self.node_to_validate
        for processor in self.processors:
            if not (known and isinstance(processor, expression_only)):
                node = processor.traverse(node)
        if self.tollgate_checks is not None and not known:
            with _passed_lock:
                passed[self.tollgate_checks] = None
                while len(passed) > EXPRESSIONS_KEPT:
                    passed.pop(next(iter(passed)))
        return node

    validator.__init__, validator.validate = remembering, validate


def _untracked(cls: type, *args: Any, **kwargs: Any) -> Any:
    """moto's `BaseModel.__new__` without listing the object in `cls.instances_tracked` (kept forever)."""
    return object.__new__(cls)


def _keep_what_aws_keeps() -> None:
    from moto.core.common_models import BaseModel
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend
    from moto.moto_server import threaded_moto_server

    if getattr(StreamShard.add, "tuned", False):
        return
    BaseModel.__new__ = staticmethod(_untracked)
    StreamShard.add = _numbering_locked(StreamShard.add)
    init = DynamoDBStreamsBackend.__init__

    def bounded(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        self.shard_iterators = _NewestIterators()

    DynamoDBStreamsBackend.__init__ = bounded
    threaded_moto_server.create_backend_app = _without_debug(threaded_moto_server.create_backend_app)
