"""DynamoDB tables as pynamodb models: the call log and the keys. Key design serves the queries named."""
from __future__ import annotations

from decimal import Decimal

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.constants import NUMBER, STREAM_NEW_AND_OLD_IMAGE
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from .rollup import INDEXED_COUNTERS
from .settings import get_settings

_settings = get_settings()


class DecimalAttribute(Attribute[Decimal]):
    """An exact DynamoDB Number: pynamodb's NumberAttribute goes through float/json and loses cents."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return format(Decimal(value), "f")

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class _Meta:
    region = _settings.region
    host = _settings.aws_endpoint
    billing_mode = "PAY_PER_REQUEST"
    max_retry_attempts = 2  # the call log spills after these; never wait long on the hot path
    connect_timeout_seconds = 2
    read_timeout_seconds = 5


class CallsByDay(GlobalSecondaryIndex):
    """`day` → every call of a UTC day, time-ordered: exports, rebuilds, the all-accounts call list."""

    class Meta:
        index_name = "by_day"
        projection = AllProjection()

    day = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class CallsByUser(GlobalSecondaryIndex):
    """`user` → every call attributed to an end user (sparse): export and erasure on request."""

    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class CallRecord(Model):
    """One proxied call, success or failure.

    Key: `account` + `sk` (`<ts>#<call_id>`) → "newest calls of an account" is one Query with
    ScanIndexForward=False. GSI `by_day` → "all calls of a day". Streams carry new and old images:
    rollups read the new one, TTL expiry (REMOVE) carries the old one for archiving.
    """

    class Meta(_Meta):
        table_name = _settings.calls_table
        stream_view_type = STREAM_NEW_AND_OLD_IMAGE

    account = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    day = UnicodeAttribute()
    call_id = UnicodeAttribute()
    ts = UnicodeAttribute()  # UTC ISO-8601 with microseconds, sortable
    provider = UnicodeAttribute()
    endpoint = UnicodeAttribute()  # e.g. chat/completions, messages
    model = UnicodeAttribute(null=True)
    operation = UnicodeAttribute(null=True)
    team = UnicodeAttribute(null=True)
    key_id = UnicodeAttribute()
    user = UnicodeAttribute(null=True)
    session = UnicodeAttribute(null=True)
    tags = MapAttribute(null=True)
    status = NumberAttribute()
    error_type = UnicodeAttribute(null=True)
    upstream_reached = BooleanAttribute(default=False)
    stream = BooleanAttribute(default=False)
    input_tokens = NumberAttribute(default=0)
    cache_read_tokens = NumberAttribute(default=0)
    cache_write_tokens = NumberAttribute(default=0)
    cache_write_1h_tokens = NumberAttribute(default=0)  # the part of cache_write held for 1 h
    output_tokens = NumberAttribute(default=0)
    reasoning_tokens = NumberAttribute(default=0)
    usage_reported = BooleanAttribute(default=False)
    cost_usd = DecimalAttribute(null=True)  # null when the model has no known price
    priced = BooleanAttribute(default=False)
    price_source = UnicodeAttribute(null=True)  # genai-prices | override
    provider_cost_usd = DecimalAttribute(null=True)  # what the provider says it charged (OpenRouter)
    latency_ms = NumberAttribute()
    upstream_latency_ms = NumberAttribute(null=True)
    expires_at = TTLAttribute(null=True)

    by_day = CallsByDay()
    by_user = CallsByUser()


class ApiKey(Model):
    """A gateway key (`tg-…`, proxy access) or a dashboard key (`tgd-…`, read-only `/api`).

    Key: `key_id`, the public part of the secret (`tg-<key_id>_<secret>`), so authentication is one
    GetItem followed by a constant-time compare of the SHA-256 of the whole secret. Listing is a Scan:
    an admin-only, small table.
    """

    class Meta(_Meta):
        table_name = _settings.keys_table

    key_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default="gateway")  # gateway | dashboard
    key_hash = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    account = UnicodeAttribute(null=True)  # null on a dashboard key that sees all accounts
    team = UnicodeAttribute(null=True)
    user = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    revoked_at = UnicodeAttribute(null=True)


class AggregatesByKind(GlobalSecondaryIndex):
    """`kind` + `day_id` → every scope of one kind over a range of days, day counters only (group_by)."""

    class Meta:
        index_name = "by_kind"
        projection = IncludeProjection(list(INDEXED_COUNTERS))

    kind = UnicodeAttribute(hash_key=True)
    day_id = UnicodeAttribute(range_key=True)


class Aggregate(Model):
    """One scope's counters for one UTC day, written by the stream rollup (see chalicelib/rollup.py).

    Key: `pk` = `<kind>#<scope id>` (e.g. `model#gpt-4o`, `global#all`) + `day`: a scope's days are one
    Query. Counters are sparse attributes with computed names, so they are read and written through
    aggstore with the low-level client; this model fixes the keys and the index. `hw|<lane>` holds the
    last stream sequence number applied per call-log partition (exactly-once). No TTL: kept forever.
    """

    class Meta(_Meta):
        table_name = _settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    day_id = UnicodeAttribute()

    by_kind = AggregatesByKind()


ALL_MODELS = (CallRecord, ApiKey, Aggregate)


def create_tables() -> None:
    """Create missing tables (local stack and tests; in AWS the tables come from infra/)."""
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True)
