"""DynamoDB tables as pynamodb models: the call log, the keys, budgets, alerts, deliveries, credits, the audit trail,
and the signals the alerts read (kept in the aggregates table). Key design serves the queries named."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from pynamodb.attributes import (
    Attribute,
    BooleanAttribute,
    ListAttribute,
    MapAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.constants import NUMBER, STREAM_NEW_AND_OLD_IMAGE
from pynamodb.indexes import AllProjection, GlobalSecondaryIndex
from pynamodb.models import Model

from chalicelib.settings import get_settings

table_settings = get_settings()


class DecimalAttribute(Attribute[Decimal]):
    """An exact DynamoDB Number: pynamodb's NumberAttribute goes through float/json and loses cents."""

    attr_type = NUMBER

    def serialize(self, value: Decimal) -> str:
        return format(Decimal(value), "f")

    def deserialize(self, value: str) -> Decimal:
        return Decimal(value)


class TableMeta:
    region = table_settings.region
    host = table_settings.aws_endpoint
    billing_mode = "PAY_PER_REQUEST"
    max_retry_attempts = 2  # the call log spills after these; never wait long on the hot path
    connect_timeout_seconds = 2
    read_timeout_seconds = 5


class CallsByDay(GlobalSecondaryIndex):
    """`day_shard` (`<day>#<nn>`) → one of a UTC day's shards, time-ordered. A day is spread over shards
    because one index partition takes at most 1,000 writes/s; read a whole day with `calllog.calls_of_day`."""

    class Meta:
        index_name = "by_day"
        projection = AllProjection()

    day_shard = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class CallsByUser(GlobalSecondaryIndex):
    """`user` → every call attributed to an end user (sparse): export and erasure on request."""

    class Meta:
        index_name = "by_user"
        projection = AllProjection()

    user = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)


class Attempt(MapAttribute):
    """One try of a call at one provider (fallbacks, CONTRACT §2): what it answered and how long it took."""

    provider = UnicodeAttribute()
    model = UnicodeAttribute(null=True)
    status = NumberAttribute(null=True)  # the HTTP status it answered; null when none came (timeout, unreachable)
    error_type = UnicodeAttribute(null=True)
    latency_ms = NumberAttribute(default=0)


class CallRecord(Model):
    """One proxied call, success or failure.

    Key: `account` + `sk` (`<ts>#<call_id>`) → "newest calls of an account" is one Query with
    ScanIndexForward=False. GSI `by_day` → "all calls of a day", in DAY_SHARDS shards (`day_shard`). Streams carry new and old images:
    rollups read the new one, TTL expiry (REMOVE) carries the old one for archiving, and a re-priced
    call (MODIFY) carries both, so the rollup folds the difference.
    """

    class Meta(TableMeta):
        table_name = table_settings.calls_table
        stream_view_type = STREAM_NEW_AND_OLD_IMAGE

    account = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    day = UnicodeAttribute()
    day_shard = UnicodeAttribute(null=True)  # `<day>#<nn>`: the by_day index's key (calllog.day_shard)
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
    input_audio_tokens = NumberAttribute(null=True)  # the part of the input that was audio (absent: none)
    output_audio_tokens = NumberAttribute(null=True)  # the part of output_tokens that was audio (absent: none)
    web_searches = NumberAttribute(null=True)  # server-side web searches billed per call (absent: none)
    input_image_tokens = NumberAttribute(null=True)  # the part of the input that was image (absent: none)
    output_image_tokens = NumberAttribute(null=True)  # the part of output_tokens that was image (absent: none)
    images = NumberAttribute(null=True)  # images generated (absent: none); DALL-E bills per image
    image_variant = UnicodeAttribute(null=True)  # "<size>/<quality>" a per-image price was read at
    service_tier = UnicodeAttribute(null=True)  # the tier the answer says served it (OpenAI "flex", "priority")
    speed = UnicodeAttribute(null=True)  # Anthropic's stated speed ("fast")
    usage_reported = BooleanAttribute(default=False)
    cost_usd = DecimalAttribute(null=True)  # null when the model has no known price
    priced = BooleanAttribute(default=False)
    price_source = UnicodeAttribute(null=True)  # override | genai-prices | provider
    price_version = UnicodeAttribute(null=True)  # overrides@<file hash> | the genai-prices version | provider
    repriced_at = UnicodeAttribute(null=True)  # when the reprice job last changed the price (UTC ISO-8601)
    provider_cost_usd = DecimalAttribute(null=True)  # what the provider says it charged (OpenRouter)
    estimated_cost_usd = DecimalAttribute(null=True)  # ours, beside a stated cost that is the price
    price_drift = BooleanAttribute(null=True)  # stated and estimated cost differ past the tolerance (pricing.drifts)
    latency_ms = NumberAttribute()
    upstream_latency_ms = NumberAttribute(null=True)
    ttft_ms = NumberAttribute(null=True)  # to the first body byte; for streams, to the first content event
    output_tokens_per_s = NumberAttribute(null=True)  # streams: (output + reasoning) / (latency - ttft)
    attempts = ListAttribute(of=Attempt, null=True)  # every try, in order, the last the one recorded above (fallbacks)
    expires_at = TTLAttribute(null=True)

    by_day = CallsByDay()
    by_user = CallsByUser()


class ApiKey(Model):
    """A gateway key (`tg-…`, proxy access) or a dashboard key (`tgd-…`, read-only `/api`).

    Key: `key_id`, the public part of the secret (`tg-<key_id>_<secret>`), so authentication is one
    GetItem followed by a constant-time compare of the SHA-256 of the whole secret. Listing is a Scan:
    an admin-only, small table.
    """

    class Meta(TableMeta):
        table_name = table_settings.keys_table

    key_id = UnicodeAttribute(hash_key=True)
    kind = UnicodeAttribute(default="gateway")  # gateway | dashboard
    key_hash = UnicodeAttribute()
    name = UnicodeAttribute(null=True)
    account = UnicodeAttribute(null=True)  # null on a dashboard key that sees all accounts
    team = UnicodeAttribute(null=True)
    user = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    revoked_at = UnicodeAttribute(null=True)
    rpm = NumberAttribute(null=True)  # requests per minute (a gateway key's limit; absent: none)
    tpm = NumberAttribute(null=True)  # tokens per minute, input plus worst-case output (absent: none)



class Budget(Model):
    """A spending or token limit on a scope for a period, with the state the evaluator last found.

    Key: `budget_id` (chosen by the admin). Read whole (Scan, cached a few seconds) by the proxy to
    enforce hard limits without a read per request; written by the evaluator and the rollup.
    """

    class Meta(TableMeta):
        table_name = table_settings.budgets_table

    budget_id = UnicodeAttribute(hash_key=True)
    scope = UnicodeAttribute()  # global | account | team | key | provider | model
    scope_id = UnicodeAttribute()
    period = UnicodeAttribute()  # daily | weekly | monthly | window
    window_minutes = NumberAttribute(null=True)
    timezone = UnicodeAttribute(default="UTC")
    limit_usd = DecimalAttribute(null=True)
    limit_tokens = NumberAttribute(null=True)
    thresholds = ListAttribute(of=DecimalAttribute)
    mode = UnicodeAttribute(default="soft")  # soft: alert only; hard: block
    channels = ListAttribute(of=UnicodeAttribute)
    account = UnicodeAttribute(null=True)  # the account whose dashboard sees it (account scope)
    created_at = UnicodeAttribute()
    # what the last evaluation found
    spent_usd = DecimalAttribute(null=True)
    spent_tokens = NumberAttribute(null=True)
    period_start = UnicodeAttribute(null=True)
    period_end = UnicodeAttribute(null=True)
    blocked_until = UnicodeAttribute(null=True)
    evaluated_at = UnicodeAttribute(null=True)


class AlertsByState(GlobalSecondaryIndex):
    """`state` + `opened_at` → open (or acknowledged, resolved) alerts, newest first."""

    class Meta:
        index_name = "by_state"
        projection = AllProjection()

    state = UnicodeAttribute(hash_key=True)
    opened_at = UnicodeAttribute(range_key=True)


class Alert(Model):
    """One alert per identity (rule, scope, scope_id, period): `alert_id` is a hash of those, so opening is a
    conditional put that only one evaluator can win. `period` is the budget period or UTC day of an alert
    about a period, null for a condition, so one incident is one alert however long it lasts.

    States: open → acknowledged → resolved (the alerting stage's lifecycle.py). `level` is the escalation step
    reached; each step notifies once. When an identity fires again after it was resolved, the resolved episode is
    kept as `<alert_id>@<opened_at>` (`episode_of` names the alert) and the alert reopens under its own id.
    """

    class Meta(TableMeta):
        table_name = table_settings.alerts_table

    alert_id = UnicodeAttribute(hash_key=True)
    rule = UnicodeAttribute()
    scope = UnicodeAttribute()
    scope_id = UnicodeAttribute()
    period = UnicodeAttribute(null=True)
    threshold = UnicodeAttribute(null=True)
    severity = UnicodeAttribute()  # info | medium | high | critical
    state = UnicodeAttribute()
    title = UnicodeAttribute()
    message = UnicodeAttribute()
    account = UnicodeAttribute(null=True)
    provider = UnicodeAttribute(null=True)
    channels = ListAttribute(of=UnicodeAttribute)
    opened_at = UnicodeAttribute()
    acknowledged_at = UnicodeAttribute(null=True)
    acknowledged_by = UnicodeAttribute(null=True)
    resolved_at = UnicodeAttribute(null=True)
    resolution = UnicodeAttribute(null=True)
    # the lifecycle (null on alerts opened before it existed)
    kind = UnicodeAttribute(null=True)  # condition | period | event
    level = NumberAttribute(null=True)
    hold_minutes = NumberAttribute(null=True)
    recovery = UnicodeAttribute(null=True)  # the resolution when it ends by itself
    recovery_quiet = BooleanAttribute(null=True)
    clear_since = UnicodeAttribute(null=True)  # a condition clear since then: the hold runs
    last_seen_at = UnicodeAttribute(null=True)  # the last run (or event) that found it firing
    escalated_at = UnicodeAttribute(null=True)
    occurrences = NumberAttribute(null=True)  # event alerts: the events grouped in it
    resolved_by = UnicodeAttribute(null=True)  # a person who resolved it (or acknowledged an event alert)
    episode_of = UnicodeAttribute(null=True)  # on a kept episode: the alert it was

    by_state = AlertsByState()


class DeliveriesByStatus(GlobalSecondaryIndex):
    """`status` + `created_at` → what is still to be sent."""

    class Meta:
        index_name = "by_status"
        projection = AllProjection()

    status = UnicodeAttribute(hash_key=True)
    created_at = UnicodeAttribute(range_key=True)


class Delivery(Model):
    """An outbox entry: one message to one channel (`<alert_id>#<event>#<channel>`), sent at least once,
    retried on later runs until it succeeds or runs out of attempts; never dropped silently."""

    class Meta(TableMeta):
        table_name = table_settings.deliveries_table

    delivery_id = UnicodeAttribute(hash_key=True)
    channel = UnicodeAttribute()  # slack | webhook | sns
    event = UnicodeAttribute()  # opened | escalated | resolved | digest | report | test
    payload = UnicodeAttribute()  # JSON of the message facts (rendered per channel when sent)
    status = UnicodeAttribute()  # pending | sending | sent | failed
    attempts = NumberAttribute(default=0)
    last_error = UnicodeAttribute(null=True)
    created_at = UnicodeAttribute()
    sent_at = UnicodeAttribute(null=True)
    lease_until = UnicodeAttribute(null=True)

    by_status = DeliveriesByStatus()


class CreditEntry(Model):
    """An account's credit ledger: `balance` (allocated so far) and one item per top-up (`txn#<ts>#<id>`),
    written together in a transaction."""

    class Meta(TableMeta):
        table_name = table_settings.credits_table

    account = UnicodeAttribute(hash_key=True)
    entry = UnicodeAttribute(range_key=True)
    amount_usd = DecimalAttribute()
    note = UnicodeAttribute(null=True)
    since = UnicodeAttribute(null=True)  # on the balance: the day credits started counting usage
    created_at = UnicodeAttribute()


class AuditEntry(Model):
    """Every request to /admin: who (key kind, actor header, source), what (method, path, fields, status), when.

    Key: `month` + `sk` (`<ts>#<id>`): the newest entries are one Query per month. Kept forever.
    """

    class Meta(TableMeta):
        table_name = table_settings.audit_table

    month = UnicodeAttribute(hash_key=True)
    sk = UnicodeAttribute(range_key=True)
    ts = UnicodeAttribute()
    principal = UnicodeAttribute()  # admin | dashboard <key id> (alert decisions) | refused
    actor = UnicodeAttribute(null=True)  # X-Tollgate-Actor: the person, as they name themselves
    source_ip = UnicodeAttribute(null=True)
    user_agent = UnicodeAttribute(null=True)
    method = UnicodeAttribute()
    path = UnicodeAttribute()
    status = NumberAttribute()
    details = MapAttribute(null=True)


class AuthFailureCount(Model):
    """Refused authentications (401) one proxy container counted in one minute (chalicelib/ledger/signals.py).

    Key: `pk` = `signal#auth_failures` + `day` = `<UTC minute>#<container>`: a window is one Query, and each
    container adds to its own item. `failures` counts them all; one `k|<key prefix>` counter per prefix presented
    (computed names, so no attribute here: written with `Path([name]).add(n)`, read back as `by_prefix`). Lives
    in the aggregates table with no `kind`, so the reports never see it.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    failures = NumberAttribute(default=0)

    by_prefix: dict[str, int]  # the `k|<prefix>` counters of the item as read

    @classmethod
    def from_raw_data(cls, data: dict[str, Any]) -> AuthFailureCount:
        """The item, with its computed-name counters kept in `by_prefix` (a model reads only its attributes)."""
        item = super().from_raw_data(data)
        item.by_prefix = {name[2:]: int(value["N"]) for name, value in data.items() if name.startswith("k|")}
        return item


class SignalNote(Model):
    """An expensive call or a costly session noted for the evaluator, or its marker once taken up
    (chalicelib/ledger/signals.py).

    Key: `pk` = `signal#expensive_calls` (`day` = `<ts>#<call_id>`) or `signal#costly_sessions` (`day` =
    `<account>|<session>`); a marker keeps the note's `day` under `<pk>_taken`, with no other field than
    `expires_at`. Lives in the aggregates table with no `kind`, so the reports never see it.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    cost_usd = DecimalAttribute(null=True)
    account = UnicodeAttribute(null=True)
    # an expensive call
    call_id = UnicodeAttribute(null=True)
    ts = UnicodeAttribute(null=True)
    key_id = UnicodeAttribute(null=True)
    provider = UnicodeAttribute(null=True)
    model = UnicodeAttribute(null=True)
    # a costly session
    session = UnicodeAttribute(null=True)
    user = UnicodeAttribute(null=True)
    # a marker: when it can no longer be needed (TTL)
    expires_at = TTLAttribute(null=True)


class FallbackTarget(MapAttribute):
    provider = UnicodeAttribute()
    model = UnicodeAttribute()


class FallbackRuleItem(Model):
    """A fallback rule (`PUT /admin/fallbacks/{name}`): a provider and model, and the targets tried next.

    Key: `pk` = `config#fallbacks` + `day` = the rule's name: every rule is one Query, which the gateway caches
    (chalicelib/ledger/fallback_rules.py). Lives in the aggregates table with no `kind`, so the reports never see it.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    match_provider = UnicodeAttribute()
    match_model = UnicodeAttribute()
    targets = ListAttribute(of=FallbackTarget)
    on = ListAttribute(of=UnicodeAttribute)  # statuses as digits ("429") and faults ("timeout", "unreachable")
    created_at = UnicodeAttribute()


class ProviderBalance(Model):
    """A provider's prepaid balance: set by an admin (`source` admin, decremented by the metered spend since
    `set_at`), or OpenRouter's remaining credit as its API last said (`source` api, cached by the evaluator).

    Key: `pk` = `config#provider_balances` + `day` = the provider: every balance is one Query. Lives in the
    aggregates table with no `kind`, so the reports never see it.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    source = UnicodeAttribute(default="admin")  # admin | api
    balance_usd = DecimalAttribute()
    low_usd = DecimalAttribute(null=True)
    set_at = UnicodeAttribute()  # when the balance was recorded (or read from the provider's API)
    total_credits_usd = DecimalAttribute(null=True)  # api: what the provider says was bought
    total_usage_usd = DecimalAttribute(null=True)  # api: and used


class BudgetLedger(Model):
    """A hard budget's ledger for one period, the single source of truth of its spend
    (chalicelib/ledger/reservations.py).

    Key: `pk` = `hard#<budget_id>` + `day` = the period's start (UTC ISO-8601): the current period is one GetItem.
    `headroom` is limit − spent − held, kept as one number because a DynamoDB condition cannot add two
    attributes: a hold decrements it under `headroom >= :worst_case`. Money or tokens, as the budget's unit.
    Lives in the aggregates table with no `kind`, so the reports never see it.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    budget_id = UnicodeAttribute()
    unit = UnicodeAttribute()  # usd | tokens
    limit = DecimalAttribute()
    headroom = DecimalAttribute()  # limit − spent − held
    spent = DecimalAttribute()  # baseline + what settled calls cost
    held = DecimalAttribute()  # what calls in flight hold (their worst cases)
    baseline = DecimalAttribute()  # the spend measured in the period before the ledger was opened
    calls = NumberAttribute(default=0)  # calls settled
    period_end = UnicodeAttribute()
    opened_at = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)


class BudgetHold(Model):
    """One call's hold on a hard budget's period: its worst case, until the call is logged or the hold expires.

    Key: `pk` = `hold#<budget_id>` + `day` = `<expires at>#<call_id>`: the evaluator finds expired holds with one
    Query (`day` < now). `state` held → (the call is logged) deleted, or held → expired (released by the
    evaluator) → (the call is logged late) deleted; every move is conditional on the state, so it happens once.
    Lives in the aggregates table with no `kind`, so the reports never see it.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    call_id = UnicodeAttribute()
    budget_id = UnicodeAttribute()
    period = UnicodeAttribute()  # the ledger's `day`
    amount = DecimalAttribute()
    state = UnicodeAttribute()  # held | expired
    expires_at = TTLAttribute(null=True)  # long after the hold's own expiry: only a forgotten item goes


class RateWindow(Model):
    """Requests and tokens one key (or account, or team) used in one UTC minute (chalicelib/ledger/reservations.py).

    Key: `pk` = `rate#<scope>#<id>` + `day` = `<minute>`: each admission adds to the minute's item under a
    condition that it stays within the limits. Lives in the aggregates table with no `kind`.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    requests = NumberAttribute(default=0)
    tokens = NumberAttribute(default=0)
    expires_at = TTLAttribute(null=True)


class ScopeLimit(Model):
    """An account's or a team's requests and tokens per minute (`PUT /admin/limits/{scope}/{scope_id}`; a key's are
    on its ApiKey item).

    Key: `pk` = `config#limits` + `day` = `<scope>#<scope_id>`: every limit is one Query, which the proxy caches as
    it caches budgets (chalicelib/ledger/rate_limits.py). Lives in the aggregates table with no `kind`.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    scope = UnicodeAttribute()  # account | team
    scope_id = UnicodeAttribute()
    rpm = NumberAttribute(null=True)
    tpm = NumberAttribute(null=True)
    set_at = UnicodeAttribute()


class WindowSpend(Model):
    """What a hard window budget's calls cost in one UTC minute (by when they settled), until the minute has left
    the window and the evaluator gives it back to the ledger's headroom (chalicelib/ledger/reservations.py).

    Key: `pk` = `hard#<budget_id>` (beside the budget's `window` ledger) + `day` = `window|<minute>`: the minutes
    that have left the window are one Query. Lives in the aggregates table with no `kind`.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    spent = DecimalAttribute()
    expires_at = TTLAttribute(null=True)  # long after the minute has left the window: only a forgotten item goes
