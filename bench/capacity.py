"""Capacity model: a traffic shape replayed through the real rollup, sized against DynamoDB's limits, without AWS.

Calls are generated for a shape (calls/s, accounts, models with a skewed popularity, providers, teams, keys,
operations, users), logged by account into the call-log table, whose partitions are the stream's shards:
each account hashes to one shard, and Lambda reads each shard in order, 100 consecutive records a batch.
Each batch goes through the real `fold` (chalicelib/rollup/fold.py), and each delta it returns becomes the
real UpdateItem (`store.update_request`), which is applied to a running copy of the item: its attributes and
their values, so every write is sized as DynamoDB sizes it (before and after), with no AWS call.

The replay covers a few seconds of traffic; rates are per second of it. Sizes are the items' at the end of
their period (a day, an hour, a 5-minute bucket), their largest: counters scaled to the whole period, every
counter name that an item of the same family gained in the replay, and the lanes (call-log partitions) whose
stream marks a full period would gather, expected from the shape.

`python -m bench.capacity` prints the tables (and the cost model, which takes its write units from here).
"""
from __future__ import annotations

import hashlib
import heapq
import math
import multiprocessing
import os
import random
import re
import sys
import time
from bisect import bisect
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from decimal import Context, Decimal
from functools import lru_cache
from types import SimpleNamespace
from typing import Any

from bench import sized

PARTITION_WCU = 1000  # a partition's write limit, in write units per second
ITEM_BYTES_MAX = 400 * 1024  # DynamoDB's item size limit
SHARE = 0.5  # the target: at most half of each limit
ITEM_WCU_TARGET = PARTITION_WCU * SHARE
ITEM_BYTES_TARGET = 64 * 1024  # the issue's own target for an aggregate item
TABLE_WCU_QUOTA = 40_000  # on-demand table-level default quota (write request units/s, adjustable)
DAY_SHARDS = 32  # the call log's `by_day` index key: chalicelib/ledger/calllog.py's DAY_SHARDS
SPLIT_FOR_HEAT = ("https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/"
                  "burst-adaptive-capacity.html#isolate-frequent-access-items")
SHAPES = (1_000, 10_000)  # calls/s of the table's shapes
STREAM = "stream"  # the stream label in lanes: `stream|<account>`
START = datetime(2026, 11, 26, 7, 0, 0)  # at a 5-minute boundary: a replay of ≤ 300 s stays in one bucket
DAY_S, HOUR_S, FIVE_MINUTES_S = 86_400, 3_600, 300
NUMBERS = Context(prec=38)  # DynamoDB Numbers hold 38 digits
PROVIDERS = ("openai", "anthropic", "openrouter")
KNOWN_MODELS = (  # the most popular first: (name, provider, $ per 1M input tokens, per 1M output)
    ("gpt-4o-mini", "openai", "0.15", "0.60"), ("claude-haiku-4-5", "anthropic", "1", "5"),
    ("google/gemini-2.5-flash", "openrouter", "0.30", "2.50"), ("gpt-4.1-mini", "openai", "0.40", "1.60"),
    ("claude-sonnet-4-5", "anthropic", "3", "15"), ("meta-llama/llama-3.3-70b-instruct", "openrouter", "0.13", "0.40"),
    ("gpt-4o", "openai", "2.50", "10"), ("claude-opus-4-1", "anthropic", "15", "75"),
)
ERROR_TYPES = (("rate_limit_error", 40), ("upstream_500", 25), ("timeout", 15), ("overloaded_error", 15),
               ("invalid_request_error", 5))


# ---- DynamoDB's size rules ------------------------------------------------------------------------------------

def number_bytes(value: Any) -> int:
    """A Number's size: 1 byte per two significant digits (leading and trailing zeros trimmed), plus 1."""
    digits = (value if isinstance(value, Decimal) else Decimal(value)).as_tuple().digits  # no leading zeros
    n = len(digits)
    while n > 1 and digits[n - 1] == 0:
        n -= 1
    return (n + 1) // 2 + 1


def value_bytes(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode())
    if value is None or isinstance(value, bool):
        return 1
    return number_bytes(value)


def attribute_bytes(name: str, value: Any) -> int:
    return len(name.encode()) + value_bytes(value)


def item_bytes(item: dict[str, Any]) -> int:
    """An item's size: for each attribute, its name's UTF-8 bytes plus its value's size."""
    return sum(attribute_bytes(name, value) for name, value in item.items())


def typed_bytes(value: dict[str, Any]) -> int:
    """The size of a DynamoDB AttributeValue (`{"S": …}`, `{"N": …}`, `{"M": {…}}`, …)."""
    (kind, inner), = value.items()
    if kind == "S":
        return len(inner.encode())
    if kind == "N":
        return number_bytes(inner)
    if kind == "B":
        return len(inner)
    if kind in ("BOOL", "NULL"):
        return 1
    if kind == "M":
        return 3 + sum(len(k.encode()) + typed_bytes(v) + 1 for k, v in inner.items())
    if kind == "L":
        return 3 + sum(typed_bytes(v) + 1 for v in inner)
    if kind == "SS":
        return sum(len(s.encode()) for s in inner)
    if kind == "NS":
        return sum(number_bytes(n) for n in inner)
    raise ValueError(f"unknown attribute type {kind}")


def typed_item_bytes(item: dict[str, dict[str, Any]]) -> int:
    """An item in DynamoDB's wire form (as pynamodb's `serialize()` gives it)."""
    return sum(len(name.encode()) + typed_bytes(value) for name, value in item.items())


def write_units(before: int, after: int) -> int:
    """The write units of an UpdateItem: the larger of the item's sizes before and after, per started KB."""
    return max(1, math.ceil(max(before, after) / 1024))


# ---- one item as DynamoDB holds it --------------------------------------------------------------------------

class Item:
    """An item's attributes (numbers as Decimal, strings as str) and its size, kept as updates apply."""

    __slots__ = ("attrs", "sizes", "size", "writes", "units", "max_size")

    def __init__(self, attrs: dict[str, Any] | None = None) -> None:
        self.attrs: dict[str, Any] = {}
        self.sizes: dict[str, int] = {}  # each attribute's bytes
        self.size = self.writes = self.units = self.max_size = 0
        for name, value in (attrs or {}).items():
            self.put(name, value)

    def put(self, name: str, value: Any) -> None:
        size = attribute_bytes(name, value)
        self.size += size - self.sizes.get(name, 0)
        self.attrs[name], self.sizes[name] = value, size

    def remove(self, name: str) -> None:
        if name in self.attrs:
            del self.attrs[name]
            self.size -= self.sizes.pop(name)


def _plain(value: dict[str, Any]) -> Any:
    (kind, inner), = value.items()
    if kind == "N":
        return Decimal(inner)
    if kind == "S":
        return inner
    raise ValueError(f"the capacity model holds strings and numbers, not {kind}")


_CLAUSE = re.compile(r"\b(ADD|SET|REMOVE|DELETE) ")


def apply_update(item: Item, request: dict[str, Any]) -> None:
    """Apply an UpdateItem request (its key, then `ADD #n :v`, `SET #n = :v`, `REMOVE #n`) to `item`."""
    names = request.get("ExpressionAttributeNames", {})
    values = request.get("ExpressionAttributeValues", {})
    for name, value in request["Key"].items():
        if name not in item.attrs:
            item.put(name, _plain(value))
    parts = _CLAUSE.split(request["UpdateExpression"])
    for action, body in zip(parts[1::2], parts[2::2]):
        for clause in body.split(","):
            tokens = clause.split()
            if action == "ADD" and len(tokens) == 2:
                name = names.get(tokens[0], tokens[0])
                item.put(name, NUMBERS.add(item.attrs.get(name, Decimal(0)), _plain(values[tokens[1]])))
            elif action == "SET" and len(tokens) == 3 and tokens[1] == "=":
                item.put(names.get(tokens[0], tokens[0]), _plain(values[tokens[2]]))
            elif action == "REMOVE" and len(tokens) == 1:
                item.remove(names.get(tokens[0], tokens[0]))
            else:
                raise ValueError(f"the capacity model cannot apply `{action} {clause.strip()}`")


@dataclass(frozen=True)
class Index:
    """A global secondary index: its key attributes and the attributes it projects."""

    name: str
    hash_key: str
    range_key: str
    projected: tuple[str, ...]

    def entry(self, item: dict[str, Any], table_keys: tuple[str, ...]) -> dict[str, Any] | None:
        """The item's entry in the index (None: the item is not in this sparse index)."""
        if self.hash_key not in item or self.range_key not in item:
            return None
        return {name: item[name] for name in (*table_keys, self.hash_key, self.range_key, *self.projected)
                if name in item}


def by_kind_index() -> Index:
    """The aggregates table's `by_kind` index, read from its pynamodb definition (chalicelib/rollup/models.py)."""
    from pynamodb.attributes import Attribute

    from chalicelib.rollup.models import AggregatesByKind

    keys = [a for a in vars(AggregatesByKind).values() if isinstance(a, Attribute)]
    return Index(AggregatesByKind.Meta.index_name, next(a.attr_name for a in keys if a.is_hash_key),
                 next(a.attr_name for a in keys if a.is_range_key),
                 tuple(AggregatesByKind.Meta.projection.non_key_attributes or ()))


# ---- the stream mapping, as deployed ----------------------------------------------------------------------

FRESHNESS_TARGET_S = 60  # a call's log to its presence in /api/summary, p99 (issue #30)
STREAM_DELAY_S = 1  # DynamoDB Streams shows a write within about a second, and Lambda polls each shard 4 times a second
PAYLOAD_BYTES = 6 * 1024 * 1024  # Lambda's invocation payload limit: a batch is cut at it whatever BatchSize says
ROLLUP_WRITERS = 32  # chalicelib/rollup/store.py WRITERS: a batch's UpdateItems in flight at once
UPDATE_MS_P99 = 25  # an UpdateItem's p99 in AWS (single-digit ms typical; this leaves room for retries)
# The rollup handler's CPU per UpdateItem on a full vCPU (fold, request, botocore's signing and parsing, the
# batch's listeners): `make bench`'s rollup table measures it (2.8-5.1 ms on a loaded shared x86 core, 2026-12-07).
ROLLUP_CPU_MS_PER_UPDATE = 3.0


def stage_merge_minutes() -> int:
    """The dev stage's `TOLLGATE_ROLLUP_MERGE_MINUTES` (.chalice/config.json): 0, the detail tier writes each batch."""
    from infra import stages

    return int(stages.load("dev").chalice.get("environment_variables", {}).get("TOLLGATE_ROLLUP_MERGE_MINUTES", 0))


def rollup_memory_mb() -> int:
    """The rollup function's memory in the dev stage (`lambda_memory_size` of rollup_calls)."""
    from infra import stages

    return int(stages.load("dev").function_config("rollup_calls")["lambda_memory_size"])


@dataclass(frozen=True)
class StreamMapping:
    """The rollup's event source mapping: its BatchSize and MaximumBatchingWindowInSeconds (infra/resources.json),
    and how many call-log stream records fit in one invocation's payload."""

    batch_size: int
    window_s: float
    record_bytes: int
    parallelization: int = 1  # ParallelizationFactor: batches of one shard in flight at once, split by partition key

    @property
    def payload_records(self) -> int:
        return PAYLOAD_BYTES // self.record_bytes


MAPPING_OF_TIER = {None: "RollupCalls", "summary": "RollupCalls", "detail": "RollupDetails"}  # layout.py's tiers


@lru_cache(maxsize=3)
def stream_mapping(tier: str | None = None) -> StreamMapping:
    """The mapping of the function that folds `tier`'s items (None: rollup_calls', every item where it folds them)."""
    import json
    from pathlib import Path

    from chalicelib.rollup.store import WRITERS

    assert WRITERS == ROLLUP_WRITERS, "chalicelib/rollup/store.py changed its writers: change ROLLUP_WRITERS"
    resources = json.loads((Path(__file__).resolve().parent.parent / "infra" / "resources.json").read_text())
    events = resources["Resources"][MAPPING_OF_TIER[tier]]["Properties"]["Events"]
    mapping = next(e["Properties"] for e in events.values() if "Stream" in e["Properties"])
    return StreamMapping(int(mapping["BatchSize"]), float(mapping.get("MaximumBatchingWindowInSeconds", 0)),
                         stream_record_bytes(), int(mapping.get("ParallelizationFactor", 1)))


def stream_record_bytes() -> int:
    """The JSON bytes of one call's stream record in the rollup's event (new image, keys, metadata), for a call
    as the gateway logs it (chalicelib/ledger/calllog.py's `new_record`, every field a routed call fills)."""
    import json

    from chalicelib.ledger import calllog

    call = calllog.new_record(
        "call_" + "0" * 26, START.replace(tzinfo=timezone.utc), "account-0000", provider="openrouter",
        endpoint="chat/completions", model="meta-llama/llama-3.3-70b-instruct", key_id="f" * 16, team="team-000",
        user="user000@account-0000.example.com",
        operation="operation-00", status=200, input_tokens=1234, cache_read_tokens=617, output_tokens=345,
        reasoning_tokens=512, cost_usd=Decimal("0.000123456789"), priced=True, latency_ms=1834, stream=True,
        ttft_ms=412, session="session-0123456789")
    image = call.serialize()
    keys = {name: image[name] for name in ("account", "sk") if name in image}
    record = {"eventID": "0" * 32, "eventName": "INSERT", "eventVersion": "1.1", "eventSource": "aws:dynamodb",
              "awsRegion": "us-east-1", "dynamodb": {"ApproximateCreationDateTime": 1764140401, "Keys": keys,
              "NewImage": image, "SequenceNumber": "1" * 21, "SizeBytes": typed_item_bytes(image) + 100,
              "StreamViewType": "NEW_AND_OLD_IMAGES"},
              "eventSourceARN": "arn:aws:dynamodb:us-east-1:123456789012:table/tollgate-prod-calls/stream/"
                                "2026-11-26T07:00:00.000"}
    return len(json.dumps(record)) + 2  # and its separator in the Records list


# ---- the traffic shape --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Shape:
    calls_per_s: int
    accounts: int = 1_000
    models: int = 50
    top_model_share: float = 0.30  # Zipf popularity, its exponent chosen so the first model takes this share
    users: int = 100_000  # spread evenly over accounts, Zipf within each
    user_share: float = 0.7  # calls naming an end user (X-Tollgate-User)
    teams_per_account: int = 3  # a key's team; team names recur across accounts (free text per key)
    team_names: int = 100
    keys_per_account: int = 6
    operations: int = 20  # shared names (X-Tollgate-Operation), Zipf popularity
    operation_share: float = 0.8
    error_rate: float = 0.02
    unpriced_rate: float = 0.01
    batch: int | None = None  # records a batch; None: what the stream mapping reads at this rate (`records_per_batch`)
    stream_shards: int | None = None  # None: max(4, calls/s / 500), see `shards`
    seed: int = 1
    tier: str | None = None  # the items of one rollup tier (layout.py), batched by its function's mapping; None: all
    merge_s: float = 0  # the detail tier merged (chalicelib/rollup/merge.py): chunks of this many seconds per lane group

    @property
    def mapping(self) -> StreamMapping:
        return stream_mapping(self.tier)

    @property
    def records_per_batch(self) -> int:
        """What Lambda hands the rollup from one busy shard: the stream mapping's BatchSize, or what arrives in its
        batching window, or what fits in a 6 MB invocation payload, whichever is fewest."""
        if self.batch is not None:
            return self.batch
        if self.merge_s:
            from chalicelib.rollup.merge import FACTS_PER_CHUNK_MAX, GROUPS

            return max(1, min(FACTS_PER_CHUNK_MAX, math.floor(self.calls_per_s / GROUPS * self.merge_s)))
        mapping = self.mapping
        return max(1, min(mapping.batch_size, math.floor(self.calls_per_s / self.streams * mapping.window_s),
                          mapping.payload_records))

    @property
    def batch_fill_s(self) -> float:
        """Seconds a shard takes to gather one batch: how long a call waits before the rollup reads it (merged: a
        chunk's span, after the stream mapping's own batch staged it)."""
        gathered = self.records_per_batch / (self.calls_per_s / self.streams)
        if self.merge_s:
            return replace(self, merge_s=0).batch_fill_s + min(self.merge_s, gathered)
        return min(self.mapping.window_s, gathered)

    @property
    def streams(self) -> int:
        """What Lambda reads in order, one batch at a time: each stream shard split ParallelizationFactor ways by
        partition key (an account's records stay in one, in order). With `batch` given: the shards alone. Merged: the
        lane groups, each folded on its own."""
        if self.merge_s:
            from chalicelib.rollup.merge import GROUPS

            return GROUPS
        return self.shards * (1 if self.batch is not None else self.mapping.parallelization)

    @property
    def shards(self) -> int:
        """Call-log partitions, hence stream shards: an on-demand table starts with 4 and splits as writes grow;
        a call-log write is 1-2 write units, so ~500 calls/s keep a partition at half its 1,000 WCU/s."""
        return self.stream_shards or max(4, math.ceil(self.calls_per_s / 500))

    def label(self) -> str:
        return (f"{self.calls_per_s:,} calls/s: {self.accounts:,} accounts, {self.models} models (top "
                f"{self.top_model_share:.0%}), {len(PROVIDERS)} providers, {self.users:,} users, batches of "
                f"{self.records_per_batch:,}, "
                f"{self.shards} stream shards" + (f", {self.tier} tier" if self.tier else "")
                + (f" merged every {self.merge_s / 60:g} minutes per lane group" if self.merge_s else ""))


def zipf(n: int, s: float) -> list[float]:
    weights = [1 / (k ** s) for k in range(1, n + 1)]
    total = sum(weights)
    return [w / total for w in weights]


def zipf_with_top(n: int, top: float) -> list[float]:
    """Zipf weights over n values whose first takes `top` of the total (by bisection on the exponent)."""
    if n == 1:
        return [1.0]
    low, high = 0.0, 8.0
    for _ in range(60):
        mid = (low + high) / 2
        low, high = (mid, high) if zipf(n, mid)[0] < top else (low, mid)
    return zipf(n, (low + high) / 2)


def _cumulative(weights: list[float]) -> list[float]:
    out, running = [], 0.0
    for w in weights:
        running += w
        out.append(running)
    out[-1] = float("inf")  # rounding never picks past the end
    return out


@dataclass
class Account:
    name: str
    lane: str
    shard: int  # its call-log partition (stream shard)
    rate: float  # calls/s
    keys: list[tuple[str, str]]  # (key_id, team)
    users: list[str]  # end users as calls name them, in popularity order
    user_cum: list[float]
    key_share: dict[str, float] = field(default_factory=dict)
    team_share: dict[str, float] = field(default_factory=dict)
    team_of_key: dict[str, str] = field(default_factory=dict)
    user_share: dict[str, float] = field(default_factory=dict)


class Traffic:
    """A shape's accounts, names and popularities: generates calls, and says how likely a lane writes an item."""

    def __init__(self, shape: Shape) -> None:
        from chalicelib.rollup import layout

        self.shape, self.layout = shape, layout
        rng = random.Random(shape.seed)
        self.model_share: dict[str, float] = {}
        self.provider_of: dict[str, str] = {}
        self.prices: dict[str, tuple[Decimal, Decimal]] = {}
        for i, share in enumerate(zipf_with_top(shape.models, shape.top_model_share)):
            name, provider, p_in, p_out = KNOWN_MODELS[i] if i < len(KNOWN_MODELS) else (
                f"vendor-{i:02d}/model-{i:02d}-2025-06", PROVIDERS[i % len(PROVIDERS)], "0.50", "1.50")
            self.model_share[name], self.provider_of[name] = share, provider
            self.prices[name] = (Decimal(p_in), Decimal(p_out))
        self.models = list(self.model_share)
        self.model_cum = _cumulative(list(self.model_share.values()))
        self.provider_share: dict[str, float] = defaultdict(float)
        for name, share in self.model_share.items():
            self.provider_share[self.provider_of[name]] += share
        op_weights = zipf(shape.operations, 1.0)
        self.operations = [f"operation-{i:02d}" for i in range(shape.operations)]
        self.op_share = {op: w * shape.operation_share for op, w in zip(self.operations, op_weights)}
        self.op_cum = _cumulative(op_weights)
        self.error_names = [name for name, _ in ERROR_TYPES]
        self.error_cum = _cumulative([w for _, w in ERROR_TYPES])
        teams = [f"team-{i:03d}" for i in range(shape.team_names)]
        users_each = max(1, shape.users // shape.accounts)
        user_weights = zipf(users_each, 1.0)
        user_cum = _cumulative(user_weights)
        self.accounts: list[Account] = []
        self.owner: dict[tuple[str, str], Account] = {}  # (kind, stored scope id) → the one account that writes it
        for i in range(shape.accounts):
            name = f"account-{i:04d}"
            lane = layout.lane_of(STREAM, name)
            shard = int.from_bytes(hashlib.sha256(name.encode()).digest()[:4], "big") % shape.streams
            own_teams = rng.sample(teams, min(shape.teams_per_account, len(teams)))
            keys = [(f"{rng.getrandbits(64):016x}", own_teams[k % len(own_teams)])
                    for k in range(shape.keys_per_account)]
            users = [f"user{j:03d}@{name}.example.com" for j in range(users_each)]  # each account's own people
            scope_ids = [layout.stored_name(user) for user in users]
            account = Account(name, lane, shard, shape.calls_per_s / shape.accounts, keys, users, user_cum)
            for key_id, team in keys:
                account.key_share[key_id] = 1 / len(keys)
                account.team_share[team] = account.team_share.get(team, 0) + 1 / len(keys)
                account.team_of_key[key_id] = team
                self.owner[("key", layout.stored_name(key_id))] = account
            account.user_share = {u: w * shape.user_share for u, w in zip(scope_ids, user_weights)}
            for scope_id in scope_ids:
                self.owner[("user", scope_id)] = account
            self.owner[("account", layout.stored_name(name))] = account
            self.accounts.append(account)
        self.teams_of: dict[str, list[Account]] = defaultdict(list)
        for account in self.accounts:
            for team in account.team_share:
                self.teams_of[team].append(account)
        self._by_write_shard: dict[str, dict[int | None, list[Account]]] = {}

    # -- calls, in stream order -------------------------------------------------------------------------------

    def call(self, rng: random.Random, account: Account, at: datetime) -> SimpleNamespace:
        """One call record (the attributes the rollup reads from a CallRecord)."""
        model = self.models[bisect(self.model_cum, rng.random())]
        key_id, team = account.keys[int(rng.random() * len(account.keys))]
        user = None
        if rng.random() < self.shape.user_share:
            user = account.users[bisect(account.user_cum, rng.random())]
        operation = None
        if rng.random() < self.shape.operation_share:
            operation = self.operations[bisect(self.op_cum, rng.random())]
        error = rng.random() < self.shape.error_rate
        error_type = self.error_names[bisect(self.error_cum, rng.random())] if error else None
        input_tokens = int(rng.lognormvariate(math.log(1000), 0.8)) if not error else 0
        cache_read = int(input_tokens * 0.5) if rng.random() < 0.3 else 0
        cache_write = int(input_tokens * 0.3) if rng.random() < 0.05 else 0
        output = int(rng.lognormvariate(math.log(300), 0.8)) if not error else 0
        reasoning = int(rng.lognormvariate(math.log(500), 1.0)) if not error and rng.random() < 0.1 else 0
        p_in, p_out = self.prices[model]
        cost = None if rng.random() < self.shape.unpriced_rate else (
            (input_tokens * p_in + cache_read * p_in / 10 + cache_write * p_in * Decimal("1.25")
             + (output + reasoning) * p_out) / 10**6)
        latency = int(rng.lognormvariate(math.log(300 if error else 1800), 0.7))
        return SimpleNamespace(
            account=account.name, ts=at.strftime("%Y-%m-%dT%H:%M:%S.%fZ"), key_id=key_id,
            provider=self.provider_of[model], model=model, operation=operation, team=team, user=user,
            status=500 if error else 200, error_type=error_type,
            input_tokens=input_tokens, cache_read_tokens=cache_read, cache_write_tokens=cache_write,
            output_tokens=output, reasoning_tokens=reasoning, cost_usd=cost, latency_ms=latency)

    def batches(self, seconds: float, shards: int | None = None) -> Iterator[tuple[float, list[Any]]]:
        """(time of its last record, facts) of every batch Lambda reads over `seconds`, all shards merged by time.

        Each shard's records arrive as a Poisson stream (uniform times, sorted) from the accounts it holds; a
        batch is `batch` consecutive records of one shard, sequence numbers increasing (21 digits). Whole batches
        only, as Lambda reads a busy shard: a shard's count is rounded to a multiple of the batch size. `shards`: only
        the first that many stream shards (each holds an even share of the accounts)."""
        from chalicelib.rollup.fold import Fact

        shape = self.shape
        rng = random.Random(shape.seed + 1)
        by_shard: dict[int, list[Account]] = defaultdict(list)
        for account in self.accounts:
            by_shard[account.shard].append(account)

        def shard_batches(shard: int, accounts: list[Account]) -> Iterator[tuple[float, list[Any]]]:
            rate = sum(a.rate for a in accounts)
            batch = shape.records_per_batch
            count = batch * max(1, round(rate * seconds / batch))
            times = sorted(rng.uniform(0, seconds) for _ in range(count))
            seq = rng.randrange(10**20, 5 * 10**20)
            for start in range(0, len(times), batch):
                facts = []
                for t in times[start:start + batch]:
                    account = accounts[int(rng.random() * len(accounts))]
                    seq += rng.randrange(1, 200)
                    call = self.call(rng, account, START + timedelta(seconds=t))
                    facts.append(Fact.from_call(call, 1, seq, STREAM))
                yield times[min(start + batch, len(times)) - 1], facts

        replayed = sorted(by_shard.items())[:shards]
        yield from heapq.merge(*(shard_batches(s, a) for s, a in replayed), key=lambda b: b[0])

    # -- which lanes write an item over its period ------------------------------------------------------------

    def _scope_share(self, account: Account, kind: str, scope: str) -> float:
        if kind == "global":
            return 1.0
        if kind in ("account", "key", "user"):
            owner = self.owner.get((kind, scope))
            if owner is not account:
                return 0.0
            return 1.0 if kind == "account" else (account.key_share if kind == "key" else account.user_share)[scope]
        shares = {"team": account.team_share, "provider": self.provider_share, "model": self.model_share,
                  "operation": self.op_share}.get(kind)
        return 1.0 if shares is None else shares.get(scope, 0.0)  # an unknown kind: every call (an upper bound)

    def _dim_share(self, account: Account, kind: str, scope: str, dim: str, value: str) -> float:
        """The share of `scope`'s calls (from `account`) whose `dim` is `value`; independent dims but for
        model → provider and key → team."""
        if dim == kind:
            return 1.0 if value == scope else 0.0
        if dim == "model":
            if kind == "provider":
                in_scope = self.provider_of.get(value) == scope
                return self.model_share.get(value, 0) / self.provider_share[scope] if in_scope else 0.0
            return self.model_share.get(value, 0.0)
        if dim == "provider":
            if kind == "model":
                return 1.0 if self.provider_of.get(scope) == value else 0.0
            return self.provider_share.get(value, 0.0)
        if dim == "key":
            if kind == "team":
                in_scope = account.team_of_key.get(value) == scope
                return account.key_share.get(value, 0) / account.team_share[scope] if in_scope else 0.0
            return account.key_share.get(value, 0.0)
        if dim == "team":
            if kind == "key":
                return 1.0 if account.team_of_key.get(scope) == value else 0.0
            return account.team_share.get(value, 0.0)
        if dim == "operation":
            return self.op_share.get(value, 0.0)
        if dim == "account":
            return 1.0 if value == account.name else 0.0
        return 1.0

    def _candidates(self, kind: str, scope: str, shard: int | None) -> list[Account]:
        if (kind, scope) in self.owner:
            return [self.owner[(kind, scope)]]
        pool = self.teams_of.get(scope, []) if kind == "team" else self.accounts
        if shard is None:
            return pool
        if kind not in self._by_write_shard:
            groups: dict[int | None, list[Account]] = defaultdict(list)
            for account in self.accounts:
                groups[self.layout.shard_of(kind, account.lane)].append(account)
            self._by_write_shard[kind] = groups
        members = self._by_write_shard[kind].get(shard, [])
        if kind == "team":
            ids = {id(a) for a in pool}
            return [a for a in members if id(a) in ids]
        return members

    def expected_lanes(self, key: Any, period_s: float) -> float:
        """How many lanes write `key` at least once over its period: Σ over the lanes that can reach it
        (its write shard's) of 1 - exp(-calls/s × period × the share of their calls that touch it)."""
        part = key.part
        dim, value = getattr(part, "dim", None), getattr(part, "value", None)
        total = 0.0
        for account in self._candidates(key.kind, key.scope_id, key.shard):
            share = self._scope_share(account, key.kind, key.scope_id)
            if share and dim is not None and value is not None:
                share *= self._dim_share(account, key.kind, key.scope_id, dim, value)
            if share > 0:
                total += 1 - math.exp(-account.rate * period_s * share)
        return total


# ---- the replay -----------------------------------------------------------------------------------------------

def period_of(key: Any) -> int:
    """The seconds an item gathers writes over: a 5-minute bucket's, an hour's, else a day's."""
    part = key.part
    if getattr(part, "minute", None) is not None:
        return FIVE_MINUTES_S
    if getattr(part, "hour", None) is not None:
        return HOUR_S
    return DAY_S


@dataclass
class Load:
    """One item (or one index key) over the replay, sized at the end of its period."""

    table: str  # "aggregates" or the index's name
    pk: str
    sort_key: str
    writes_per_s: float
    units: int  # write units of one write at `size`
    size: int  # bytes at the end of its period
    sim_size: int = 0  # the largest size reached in the replay
    members: int = 1  # items sharing this index key
    shared: bool = False  # written from every stream shard, not from one account's

    @property
    def wcu_per_s(self) -> float:
        return self.writes_per_s * self.units


@dataclass
class KeyLoad:
    table: str
    pk: str
    wcu_per_s: float
    heaviest: Load
    items: int

    @property
    def partitions(self) -> int:
        return max(1, math.ceil(self.wcu_per_s / ITEM_WCU_TARGET))


@dataclass
class Result:
    shape: Shape
    seconds: float  # the replay's calls ÷ the shape's calls/s
    calls: int
    wall_s: float
    items: list[Load]  # table items, heaviest first
    entries: list[Load]  # by_kind index keys, heaviest first
    keys: list[KeyLoad]  # partition keys of the table and the index, heaviest first
    update_items: int
    sim_units: int  # write units at the sizes reached in the replay (table)
    sim_index_units: int
    scale: float = 1.0  # stream shards ÷ those replayed

    @property
    def update_items_per_call(self) -> float:
        return self.update_items / self.calls

    def _per_call(self, loads: list[Load]) -> float:
        """Units a call: the replay's (shared items' rates hold every shard's writes, the replay's calls only
        its own)."""
        return sum(l.wcu_per_s / (self.scale if l.shared else 1) for l in loads) * self.seconds / self.calls

    @property
    def table_wcu_per_call(self) -> float:
        return self._per_call(self.items)

    @property
    def index_wcu_per_call(self) -> float:
        return self._per_call(self.entries)

    @property
    def wcu_per_call(self) -> float:
        return self.table_wcu_per_call + self.index_wcu_per_call

    @property
    def batch_write_s(self) -> float:
        """Seconds one batch's UpdateItems take: ROLLUP_WRITERS in flight at UPDATE_MS_P99 each, or the handler's CPU
        for them at the rollup function's share of a vCPU (its memory ÷ 1,769 MB), whichever is longer."""
        from bench.sizing import share

        updates = self.update_items_per_call * self.shape.records_per_batch
        waiting = updates / ROLLUP_WRITERS * UPDATE_MS_P99 / 1000
        working = updates * ROLLUP_CPU_MS_PER_UPDATE / float(share(rollup_memory_mb())) / 1000
        return max(waiting, working)

    @property
    def largest(self) -> Load:
        return max(self.items, key=lambda i: i.size)

    def over(self) -> list[tuple[Load, str]]:
        """Every item or index key past a target, with why."""
        out = []
        for load in (*self.items, *self.entries):
            if load.wcu_per_s > ITEM_WCU_TARGET:
                shared = f"; {load.members} items share this index key" if load.members > 1 else ""
                units = f"{load.units} unit{'s' if load.units > 1 else ''}"
                why = (f"{load.wcu_per_s:,.0f} WCU/s ({load.writes_per_s:,.0f} writes/s × {units}{shared}) "
                       f"> {ITEM_WCU_TARGET:,.0f}")
                out.append((load, why))
            if load.size > ITEM_BYTES_TARGET:
                out.append((load, f"{load.size / 1024:,.1f} KB > {ITEM_BYTES_TARGET // 1024} KB"))
        return out

    @property
    def met(self) -> bool:
        return not self.over()

    def reason(self) -> str:
        over = self.over()
        if not over:
            return ""
        shown = "; ".join(f"{load.table} `{load.pk}` / `{load.sort_key}`: {why}" for load, why in over[:3])
        return shown + (f" ({len(over)} in all)" if len(over) > 3 else "")


def simulate(shape: Shape, seconds: float | None = None, progress: bool = False) -> Result:
    """Replay `seconds` of the shape's traffic (default: ~20,000 calls, at most 300 s) through fold and
    update_request, and size every item at the end of its period."""
    from chalicelib.rollup import layout, store
    from chalicelib.rollup.fold import fold

    tiers = layout.TIERS if shape.tier is None else (shape.tier,)
    if seconds is None:
        seconds = min(float(FIVE_MINUTES_S), max(1.0, 20_000 / shape.calls_per_s))
    if seconds > FIVE_MINUTES_S:
        raise ValueError("replay at most 300 s: the model scales each item from one 5-minute bucket")
    started = time.perf_counter()
    traffic, index = Traffic(shape), by_kind_index()
    items: dict[Any, Item] = {}
    table_keys: dict[Any, tuple[str, ...]] = {}
    entries: dict[tuple[str, str], list[Any]] = defaultdict(list)  # index key → items in it
    entry_writes: dict[Any, int] = defaultdict(int)
    calls = update_items = sim_index_units = 0
    # Whole batches of some of the stream shards: a batch writes each item it touches once, so the units per call
    # are the same whichever shards are replayed; a scope written from every shard (not one account's) gets the
    # writes of all of them, scaled up below.
    replayed = min(shape.streams, max(1, round(seconds * shape.calls_per_s / shape.records_per_batch)))
    for n, (_, facts) in enumerate(traffic.batches(seconds, replayed)):
        calls += len(facts)
        for key, delta in fold(facts).items():
            if layout.tier_of(key.kind) not in tiers:
                continue  # the other tier's function writes it, from its own batches
            request = store.update_request(key, delta)
            item = items.get(key)
            if item is None:
                item = items[key] = Item()
                table_keys[key] = tuple(request["Key"])
            before, entry_before = item.size, index.entry(item.attrs, table_keys[key])
            apply_update(item, request)
            update_items += 1
            item.writes += 1
            item.units += write_units(before, item.size)
            item.max_size = max(item.max_size, item.size)
            entry_after = index.entry(item.attrs, table_keys[key])
            if entry_after != entry_before:
                if entry_after is not None and entry_before is None:
                    entries[(entry_after[index.hash_key], entry_after[index.range_key])].append(key)
                entry_writes[key] += 1
                sim_index_units += write_units(item_bytes(entry_before or {}), item_bytes(entry_after or {}))
        if progress and n % 100 == 0:
            print(f"  {shape.calls_per_s:,} calls/s: {calls:,} calls replayed", file=sys.stderr, flush=True)
    sizes = end_of_period_sizes(items, table_keys, traffic, seconds, index, layout)
    scale = shape.streams / replayed  # the whole traffic is this many times the replayed shards'
    seconds = calls * scale / shape.calls_per_s  # rates per second of the shape: the replay's calls at their share

    def shared(key: Any) -> bool:
        """Written from every stream shard (not one account's scope): its writes are `scale` times the replay's."""
        return (key.kind, key.scope_id) not in traffic.owner

    loads = [Load("aggregates", key.pk, key.sort_key, item.writes * (scale if shared(key) else 1) / seconds,
                  write_units(sizes[key][0], sizes[key][0]), sizes[key][0], item.max_size, shared=shared(key))
             for key, item in items.items()]
    entry_loads = []
    for (kind, day_id), members in entries.items():
        size = max(sizes[m][1] for m in members)
        common = any(shared(m) for m in members)
        writes = sum(entry_writes[m] for m in members) * (scale if common else 1) / seconds
        entry_loads.append(Load(index.name, kind, day_id, writes, write_units(size, size), size,
                                max(item_bytes(index.entry(items[m].attrs, table_keys[m]) or {}) for m in members),
                                len(members), shared=common))
    loads.sort(key=lambda l: -l.wcu_per_s)
    entry_loads.sort(key=lambda l: -l.wcu_per_s)
    return Result(shape, seconds, calls, time.perf_counter() - started, loads, entry_loads,
                  partition_keys(loads) + partition_keys(entry_loads, scale), update_items,
                  sum(i.units for i in items.values()), sim_index_units, scale)


def partition_keys(loads: list[Load], own_scale: float = 1.0) -> list[KeyLoad]:
    """Loads summed by partition key; `own_scale`: how many times the replayed accounts' items the whole traffic
    puts under a key shared by all accounts (an index's `kind`)."""
    grouped: dict[tuple[str, str], list[Load]] = defaultdict(list)
    for load in loads:
        grouped[(load.table, load.pk)].append(load)
    keys = [KeyLoad(table, pk, sum(l.wcu_per_s * (1 if l.shared else own_scale) for l in group),
                    max(group, key=lambda l: l.wcu_per_s), round(len(group) * (1 if group[0].shared else own_scale)))
            for (table, pk), group in grouped.items()]
    return sorted(keys, key=lambda k: -k.wcu_per_s)


def _scaled_bytes(value: Decimal, factor: float) -> int:
    """The size of a counter once its period is over: the value scaled, at the same decimal places, no trailing
    zero trimmed (an upper bound by at most a byte)."""
    scaled = abs(float(value)) * factor
    if scaled < 1e-30:
        return number_bytes(0)
    digits = math.floor(math.log10(scaled)) + 1 - min(0, value.as_tuple().exponent)
    return (min(38, max(1, digits)) + 1) // 2 + 1


def end_of_period_sizes(items: dict[Any, Item], table_keys: dict[Any, tuple[str, ...]], traffic: Traffic,
                        seconds: float, index: Index, layout: Any) -> dict[Any, tuple[int, int]]:
    """(item bytes, index entry bytes) of every item at the end of its period (its largest).

    Counters are scaled by period / replayed seconds. An item gains every counter name an item of its family
    (scope kind, item kind, breakdown dimension) gained in the replay, at the family's largest size for that
    name: latency buckets and error types it has not seen yet, an upper bound. Lanes: the stream marks it holds,
    or as many as `Traffic.expected_lanes` expects over the period, whichever is more."""
    placeholder = "\0"

    def family(key: Any) -> tuple[Any, ...]:
        return key.kind, key.part.kind, getattr(key.part, "dim", None), key.shard is None

    def normal(key: Any, name: str) -> str:
        value = getattr(key.part, "value", None)
        if not value:
            return name
        return name.replace(f"{layout.SEP}{value}{layout.SEP}", f"{layout.SEP}{placeholder}{layout.SEP}")

    scaled: dict[Any, dict[str, int]] = {}
    names: dict[tuple[Any, ...], dict[str, int]] = defaultdict(dict)
    for key, item in items.items():
        factor = period_of(key) / seconds
        own = {name: _scaled_bytes(value, factor) for name, value in item.attrs.items()
               if layout.is_counter(name) and isinstance(value, Decimal)}
        scaled[key] = own
        known = names[family(key)]
        for name, size in own.items():
            n = normal(key, name)
            known[n] = max(known.get(n, 0), size)
    projected = set(index.projected)
    out: dict[Any, tuple[int, int]] = {}
    for key, item in items.items():
        own, value = scaled[key], getattr(key.part, "value", None)
        fixed = sum(attribute_bytes(name, v) for name, v in item.attrs.items()
                    if not layout.is_counter(name) and not name.startswith(layout.LANE_PREFIX))
        counters = entry = 0
        for n, largest in names[family(key)].items():
            name = n.replace(placeholder, value) if value else n
            size = len(name.encode()) + own.get(name, largest)
            counters += size
            entry += size if name in projected else 0
        marks = [attribute_bytes(name, v) for name, v in item.attrs.items() if name.startswith(layout.LANE_PREFIX)]
        lanes = max(len(marks), round(traffic.expected_lanes(key, period_of(key))))
        mark_bytes = lanes * (sum(marks) / len(marks) if marks else 0)
        index_entry = index.entry(item.attrs, table_keys[key])
        entry_keys = item_bytes({n: v for n, v in (index_entry or {}).items() if n not in projected})
        out[key] = (fixed + counters + math.ceil(mark_bytes), entry_keys + entry if index_entry is not None else 0)
    return out


# ---- the report -----------------------------------------------------------------------------------------------

def _simulate(job: tuple[Shape, float, bool]) -> Result:
    return simulate(*job)


def measure(shapes: tuple[int, ...] = SHAPES, calls: int | None = None, progress: bool = True) -> list[Rollup]:
    """Each shape's tiers (layout.py: the summary's items and the detail's, each batched by its own function's
    stream mapping) replayed for `calls` calls (BENCH_CAPACITY_CALLS, default 20,000), each in a process of its own."""
    from chalicelib.rollup.layout import TIERS

    calls = calls or int(os.environ.get("BENCH_CAPACITY_CALLS", sized("20000", "400")))
    batch = sized(None, 50)  # the quick mode's small batches keep its replay tiny
    merge_s = 60.0 * stage_merge_minutes()
    jobs = [(Shape(rate, batch=batch, tier=tier, merge_s=merge_s if tier == "detail" and batch is None else 0),
             min(float(FIVE_MINUTES_S), max(sized(1.0, 0.0), calls / rate)), progress)
            for rate in shapes for tier in TIERS]
    workers = min(len(jobs), os.cpu_count() or 1)
    if workers <= 1:
        results = [_simulate(job) for job in jobs]
    else:
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            results = list(pool.map(_simulate, jobs))
    return [Rollup([r for r in results if r.shape.calls_per_s == rate]) for rate in shapes]


@dataclass
class Rollup:
    """One rate's rollup: the replay of each tier, whose write units add up (each item is written by one tier)."""

    tiers: list[Result]

    @property
    def shape(self) -> Shape:
        return self.tiers[0].shape

    def _sum(self, per_call: str) -> float:
        return sum(getattr(t, per_call) for t in self.tiers)

    wcu_per_call = property(lambda self: self._sum("wcu_per_call"))
    table_wcu_per_call = property(lambda self: self._sum("table_wcu_per_call"))
    index_wcu_per_call = property(lambda self: self._sum("index_wcu_per_call"))
    update_items_per_call = property(lambda self: self._sum("update_items_per_call"))

    @property
    def met(self) -> bool:
        return all(t.met for t in self.tiers)

    def reason(self) -> str:
        return "; ".join(f"{t.shape.tier or 'rollup'}: {t.reason()}" for t in self.tiers if not t.met)


def _grace_s() -> float:
    """chalicelib/rollup/merge.py's GRACE: a chunk merges once every batch that could join it is staged."""
    from chalicelib.rollup.merge import GRACE

    return GRACE.total_seconds()


def freshness_s(r: Result) -> float:
    """A call's log to its presence in the tier's items, p99: the stream, its batch filling, the batch's writes (merged:
    also the grace before a chunk is settled and the next minute's tick)."""
    merged = (_grace_s() + 60) if r.shape.merge_s else 0
    return r.shape.batch_fill_s + r.batch_write_s + STREAM_DELAY_S + merged


HEADER = ("shape", "row", "table / partition key / sort key", "writes/s", "WCU/s", "size KB",
          "partitions at ≤ 50 %", "target")


def rows(results: list[Rollup | Result], top: int = 5) -> list[tuple[str, ...]]:
    """The table's rows for each shape: per tier its hottest items, index keys and partition keys, largest item,
    units per call and freshness; then the units per call of all tiers, the whole table, the verdict (cells
    markdown-ready)."""
    out: list[tuple[str, ...]] = []
    for rollup in (r if isinstance(r, Rollup) else Rollup([r]) for r in results):
        rate = f"{rollup.shape.calls_per_s:,}/s"
        for r in rollup.tiers:
            out += _tier_rows(r, top)
        by_day = rollup.shape.calls_per_s / DAY_SHARDS  # one write unit a call (a call record is under 1 KB)
        out.append((rate, "call log index", f"calls: `by_day` ({DAY_SHARDS} shards a day, by call id)",
                    f"{by_day:,.1f}", f"{by_day:,.0f}", "-", "-",
                    f"≤ {ITEM_WCU_TARGET:,.0f} WCU/s a shard: {'met' if by_day <= ITEM_WCU_TARGET else 'MISSED'} "
                    "(its sort key only grows, so split for heat cannot help: the shards must)"))
        wcu = rollup.wcu_per_call
        if len(rollup.tiers) > 1:
            out.append((rate, "per call, every tier", f"{rollup.update_items_per_call:.2f} UpdateItems", "-",
                        f"{wcu:.2f} WCU ({rollup.table_wcu_per_call:.2f} table + {rollup.index_wcu_per_call:.2f} "
                        "index)", "-", "-", " + ".join(f"{t.shape.tier} {t.wcu_per_call:.2f}" for t in rollup.tiers)))
        log_units = call_log_units(rollup.shape)
        out.append((rate, "rollup ÷ call log", f"{wcu:.2f} WCU a call ÷ the call log's {log_units:.2f}",
                    "-", "-", "-", "-", f"≤ 1: {'met' if wcu <= log_units else 'MISSED'} ({wcu / log_units:.1f}×)"))
        table_wcu = rollup.table_wcu_per_call * rollup.shape.calls_per_s  # every shard's, not only the replayed ones'
        index_wcu = rollup.index_wcu_per_call * rollup.shape.calls_per_s
        quota = (f"on-demand default quota {TABLE_WCU_QUOTA:,} WCU/s per table (adjustable): "
                 f"{'within' if max(table_wcu, index_wcu) <= TABLE_WCU_QUOTA else 'ABOVE'}")
        index = next((t.entries[0].table for t in rollup.tiers if t.entries), "index")
        out.append((rate, "whole table", f"aggregates + {index}", "-", f"{table_wcu:,.0f} + {index_wcu:,.0f}", "-",
                    f"{math.ceil(table_wcu / ITEM_WCU_TARGET)} + {math.ceil(index_wcu / ITEM_WCU_TARGET)}", quota))
        out.append((rate, "verdict", "; ".join(t.shape.label() for t in rollup.tiers), "-", "-", "-", "-",
                    "met" if rollup.met else f"MISSED: {rollup.reason()}"))
    return [tuple(cell.replace("|", "\\|") for cell in row) for row in out]  # keys hold `|`: escaped in a table


def _tier_rows(r: Result, top: int) -> list[tuple[str, ...]]:
    """One tier's rows: its hottest items, index keys and partition keys, largest item, units a call, freshness."""
    out: list[tuple[str, ...]] = []
    shape = f"{r.shape.calls_per_s:,}/s" + (f" {r.shape.tier}" if r.shape.tier else "")
    for load in r.items[:top]:
        ok = load.wcu_per_s <= ITEM_WCU_TARGET and load.size <= ITEM_BYTES_TARGET
        verdict = "met" if ok else "MISSED"
        target = f"≤ {ITEM_WCU_TARGET:,.0f} WCU/s, ≤ {ITEM_BYTES_TARGET // 1024} KB: {verdict}"
        out.append((shape, "hottest item", f"`{load.pk}` `{load.sort_key}`", f"{load.writes_per_s:,.1f}",
                    f"{load.wcu_per_s:,.0f}", f"{load.size / 1024:.1f}", "-", target))
    for load in r.entries[:top]:
        ok = load.wcu_per_s <= ITEM_WCU_TARGET
        shared = f" ({load.members} items)" if load.members > 1 else ""
        out.append((shape, "hottest index key", f"{load.table}: `{load.pk}` `{load.sort_key}`{shared}",
                    f"{load.writes_per_s:,.1f}", f"{load.wcu_per_s:,.0f}", f"{load.size / 1024:.1f}", "-",
                    f"≤ {ITEM_WCU_TARGET:,.0f} WCU/s: {'met' if ok else 'MISSED'}"))
    table_keys = [k for k in r.keys if k.table == "aggregates"][:top]
    index_keys = [k for k in r.keys if k.table != "aggregates"][:max(1, top // 2)]
    for key in table_keys + index_keys:
        ok = key.heaviest.wcu_per_s <= ITEM_WCU_TARGET
        where = f"`{key.pk}`" if key.table == "aggregates" else f"{key.table}: `{key.pk}`"
        target = (f"heaviest item {key.heaviest.wcu_per_s:,.0f} ≤ {ITEM_WCU_TARGET:,.0f} WCU/s: "
                  f"{'met' if ok else 'MISSED'}")
        out.append((shape, "hottest partition key", f"{where} ({key.items:,} items)", "-",
                    f"{key.wcu_per_s:,.0f}", "-", f"{key.partitions}", target))
    largest = r.largest
    out.append((shape, "largest item", f"`{largest.pk}` `{largest.sort_key}`", "-", "-",
                f"{largest.size / 1024:.1f} (replay {largest.sim_size / 1024:.1f})", "-",
                f"≤ {ITEM_BYTES_TARGET // 1024} KB: {'met' if largest.size <= ITEM_BYTES_TARGET else 'MISSED'}"))
    out.append((shape, "per call", f"{r.update_items_per_call:.2f} UpdateItems", "-",
                f"{r.wcu_per_call:.2f} WCU ({r.table_wcu_per_call:.2f} table + {r.index_wcu_per_call:.2f} index)",
                "-", "-", f"at replay sizes: {(r.sim_units + r.sim_index_units) / r.calls:.2f} WCU"))
    fresh = freshness_s(r)
    # The target is /api/summary's: all traffic's items and its split by provider (the summary tier, or every item).
    target = (f"{fresh:.0f} s ≤ {FRESHNESS_TARGET_S} s: {'met' if fresh <= FRESHNESS_TARGET_S else 'MISSED'}"
              if r.shape.tier != "detail" else f"{fresh:.0f} s (an account's, key's, user's, team's, model's… "
              "items: no target)")
    batch = (f"a chunk of {r.shape.records_per_batch:,} staged records fills in {r.shape.batch_fill_s:.1f} s (its "
             f"batches' window {r.shape.mapping.window_s:g} s, the chunk's {r.shape.merge_s:g} s), settles in "
             f"{_grace_s():g} s and waits up to 60 s for the tick; its " if r.shape.merge_s else
             f"a batch of {r.shape.records_per_batch:,} records fills in "
             f"{r.shape.batch_fill_s:.1f} s (window {r.shape.mapping.window_s:g} s), its ")
    out.append((shape, "freshness p99 (modelled)", batch +
                f"{r.update_items_per_call * r.shape.records_per_batch:,.0f} UpdateItems take {r.batch_write_s:.1f} s "
                f"at {rollup_memory_mb():,} MB", "-", "-", "-", "-", target))
    return out


def note(results: list[Rollup]) -> str:
    shape = results[0].shape
    replay = "; ".join(f"{r.shape.calls_per_s:,} calls/s{f' ({r.shape.tier})' if r.shape.tier else ''}: "
                       f"{r.seconds:.3g} s, {r.calls:,} calls from "
                       f"{round(r.shape.streams / r.scale)} of its {r.shape.streams} streams (stream shards × "
                       f"parallelization) in batches of "
                       f"{r.shape.records_per_batch:,}, in {r.wall_s:.0f} s" for rollup in results for r in rollup.tiers)
    mappings = "; ".join(f"{tier}'s items by {MAPPING_OF_TIER[tier]}: BatchSize {m.batch_size:,}, a {m.window_s:g} s "
                         f"batching window, ParallelizationFactor {m.parallelization}"
                         for tier in ("summary", "detail") for m in [stream_mapping(tier)])
    return (
        "Capacity of the aggregates (`bench/capacity.py`; alone: `python -m bench.capacity`): a traffic shape replayed "
        "through the real `fold` and `store.update_request`, without AWS. Calls come from "
        f"{shape.accounts:,} accounts at even rates ({shape.keys_per_account} keys and {shape.teams_per_account} "
        f"teams each, team names drawn from {shape.team_names} shared by all), {shape.models} models of Zipf "
        f"popularity (the first takes {shape.top_model_share:.0%}) over {len(PROVIDERS)} providers, "
        f"{shape.operations} operations on {shape.operation_share:.0%} of calls, {shape.users:,} users "
        f"({shape.users // shape.accounts} per account, named by {shape.user_share:.0%} of calls); "
        f"{shape.error_rate:.0%} errors, {shape.unpriced_rate:.0%} unpriced. Each account hashes to one call-log "
        "partition, hence one stream shard (max(4, calls/s ÷ 500) of them); Lambda reads a shard in order, "
        "consecutive records a batch, as many as the stream mapping hands the rollup. Two functions read the "
        "stream, each writing its own tier's items (chalicelib/rollup/layout.py; infra/resources.json: "
        f"{mappings}), a batch cut at {stream_mapping().payload_records:,} records of "
        f"{stream_mapping().record_bytes:,} B in Lambda's 6 MB payload; each tier is replayed with its own "
        f"batches, and their units add up. Lanes are `{STREAM}|<account>`. Every UpdateItem is applied to a "
        "running copy of its item and billed max(size before, size after) per started KB (a Number is "
        "(significant digits + 1) ÷ 2 + 1 bytes, a string its UTF-8 bytes, plus each attribute's name); a day "
        "item's update also writes its `by_kind` entry (the table's keys, the index's and the projected "
        "counters), billed the same way. Rates are per second of a short replay, extrapolated linearly ("
        + replay + "). Sizes, and the WCU/s shown, are at each item's end of period (a day, an hour, a 5-minute "
        "bucket), its largest: counters scaled to the whole period, every counter name its family gained in the "
        "replay, and the stream marks of every lane expected to write it over the period; *per call* also gives "
        "the units at the sizes the replay reached. DynamoDB splits a hot partition key by sort-key range "
        f"(\"split for heat\", {SPLIT_FOR_HEAT}; the aggregates table has no LSI, so an item collection may span "
        "partitions) down to a single item; in `by_kind`, entries that share one index key (`kind`, `day_id`) "
        "are taken as one item, since a split falls between sort-key values. So a partition key needs "
        f"ceil(WCU/s ÷ {ITEM_WCU_TARGET:,.0f}) partitions to stay at ≤ 50 % of {PARTITION_WCU:,} WCU/s each, and "
        f"is met when its heaviest item takes at most {ITEM_WCU_TARGET:,.0f} WCU/s. Targets per item: "
        f"≤ {ITEM_WCU_TARGET:,.0f} WCU/s and ≤ {ITEM_BYTES_TARGET // 1024} KB (DynamoDB's limit is "
        f"{ITEM_BYTES_MAX // 1024} KB). *Whole table* compares the table and the index, each, with the on-demand "
        f"default quota of {TABLE_WCU_QUOTA:,} write units/s per table (a quota AWS raises on request, not a "
        "target here)."
    )


def call_log_units(shape: Shape) -> float:
    """The call log's write units a call (bench/cost.py: the table's and its two indexes' copies)."""
    from bench import cost

    return float(cost.call_log_units_per_call(shape.user_share))


def missed_reasons(results: list[Rollup]) -> list[str]:
    out = [f"Capacity at {r.shape.calls_per_s:,} calls/s: {r.reason()}." for r in results if not r.met]
    dear = [r for r in results if r.wcu_per_call > call_log_units(r.shape)]
    if dear:
        detail = dear[0].tiers[-1].shape
        out.append(ROLLUP_UNITS_REASON.format(units=", ".join(
            f"{r.wcu_per_call:.1f} at {r.shape.calls_per_s:,} calls/s" for r in dear),
            log=call_log_units(dear[0].shape), batch=detail.records_per_batch))
    return out


ROLLUP_UNITS_REASON = (
    "Rollup write units a call ({units}) above the call log's {log:.1f}. The summary tier (all traffic's items, "
    "40 s batches) is cheap; the detail tier is not at the slower rate: its items are those of one account's scope "
    "or breakdown value (an account's and a team's hour by model with their latency histograms, ~2.7 KB each; "
    "their day by model, key, team, operation and user; a key's day, hour and 5-minute bucket; a user's day) and "
    "the shared scopes' 16 write shards. A detail batch is cut by Lambda's 6 MB payload at {batch:,} records, so an "
    "account at ~1 call/s has ~155 calls in one, spread over 50 models, 6 keys, 3 teams, 20 operations and 100 "
    "users: those items still take about one UpdateItem for every 3 calls, and no stream mapping gathers more "
    "(ParallelizationFactor 10 is its maximum; a window past the payload does not help). Reaching ~2.7 takes "
    "writing them less often than once per stream batch: each batch's facts appended as one compact item and "
    "merged into them every few minutes (one merger per write shard, exactly once by the same marks), or fewer "
    "items per call (a team's splits, and latency by model for all traffic only), which reports read today."
)


def markdown(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])


def main() -> None:
    from bench import cost

    results = measure()
    print(note(results) + "\n")
    print(markdown(HEADER, rows(results)) + "\n")
    busiest = max(results, key=lambda r: r.wcu_per_call)  # the cost model takes the dearer rollup
    print(cost.note(busiest) + "\n")
    print(markdown(cost.HEADER, cost.rows(busiest)) + "\n")
    reasons = [*missed_reasons(results), *(() if cost.met(busiest) else (f"Cost: {cost.reason(busiest)}",))]
    print("\n".join(f"- {reason}" for reason in reasons) or "Every target met.")


if __name__ == "__main__":
    main()
