"""AWS list-price cost per million proxied calls (us-east-1), beside the LLM spend of a gpt-4o-mini-sized call.

The proxy function bills Lambda duration for the whole call, a stream included, until its last byte
(up to its 900 s timeout): the duration column is the time the upstream takes to finish the answer.
DynamoDB's write units are measured, not assumed: the call log's from a real call record's size (the table,
then its `by_day` and `by_user` indexes, which project every attribute), the rollup's from the capacity
model (bench/capacity.py) at its busiest shape."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

LAMBDA_GB_SECOND_ARM = Decimal("0.0000133334")
LAMBDA_REQUEST = Decimal("0.20") / 10**6
API_GATEWAY_REST_REQUEST = Decimal("3.50") / 10**6
API_GATEWAY_HTTP_REQUEST = Decimal("1.00") / 10**6  # for the "what it would take" line only
DYNAMODB_WRITE_UNIT = Decimal("0.625") / 10**6  # on demand
S3_PUT, S3_GET = Decimal("0.005") / 1000, Decimal("0.0004") / 1000  # S3 Standard requests
# The typical call: gpt-4o-mini, 1,000 input and 300 output tokens at $0.15 and $0.60 per million.
CALL_INPUT_TOKENS, CALL_OUTPUT_TOKENS = 1_000, 300
GPT_4O_MINI_PER_MTOK = (Decimal("0.15"), Decimal("0.60"))
TYPICAL_CALL_USD = (CALL_INPUT_TOKENS * GPT_4O_MINI_PER_MTOK[0] + CALL_OUTPUT_TOKENS * GPT_4O_MINI_PER_MTOK[1]) / 10**6
MILLION = Decimal(10**6)



def call_record() -> Any:
    """A gpt-4o-mini call as the proxy logs it (chalicelib/gateway/proxy.py's fields), built as bench/rollup.py
    builds its calls: streamed, attributed (team, user, session, operation, a tag), priced."""
    from chalicelib.ledger import calllog

    ts = datetime(2026, 11, 26, 7, 0, 0, 123456, tzinfo=timezone.utc)
    return calllog.new_record(
        calllog.new_call_id(ts), ts, "account-0001", provider="openai", endpoint="chat/completions",
        model="gpt-4o-mini", operation="operation-01", team="team-001", key_id="0f3c9a7b5e21d4c8",
        user="user001@example.com", session="5b0e7c1a-3f6d-4b2e-9a8c-1d2e3f4a5b6c", tags={"env": "prod"},
        status=200, error_type=None, upstream_reached=True, stream=True,
        input_tokens=CALL_INPUT_TOKENS, cache_read_tokens=0, cache_write_tokens=0, cache_write_1h_tokens=0,
        output_tokens=CALL_OUTPUT_TOKENS, reasoning_tokens=0, usage_reported=True, cost_usd=TYPICAL_CALL_USD,
        priced=True, price_source="genai-prices", price_version="0.0.40", latency_ms=2_013,
        upstream_latency_ms=2_001, ttft_ms=412, output_tokens_per_s=187.6)


def call_log_bytes() -> int:
    from bench.capacity import typed_item_bytes

    return typed_item_bytes(call_record().serialize())


def call_log_units() -> int:
    """The write units of one copy of the call record (a new item: its size, per started KB)."""
    from bench.capacity import write_units

    return write_units(0, call_log_bytes())


def call_log_units_per_call(user_share: float) -> Decimal:
    """The table's write, `by_day`'s copy (every call) and `by_user`'s (the calls that name a user): both
    indexes project ALL attributes, so each copy costs the item's write units again."""
    return call_log_units() * (2 + Decimal(repr(user_share)))


@dataclass(frozen=True)
class CallShape:
    """A realistic call: its model, tokens and how long the proxy waits on the provider (a stream until its end)."""

    label: str
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    seconds: Decimal


SHAPES = (
    CallShape("gpt-4o-mini chat, 2 s", "openai", "gpt-4o-mini", CALL_INPUT_TOKENS, CALL_OUTPUT_TOKENS, Decimal(2)),
    CallShape("claude-sonnet-4.5 agent turn, 60 s stream", "anthropic", "claude-sonnet-4-5", 20_000, 2_000,
              Decimal(60)),
    CallShape("embedding batch (16 × 500 tokens), 0.3 s", "openai", "text-embedding-3-small", 8_000, 0,
              Decimal("0.3")),
    CallShape("long gpt-4o-mini stream, 30 s", "openai", "gpt-4o-mini", CALL_INPUT_TOKENS, 3_000, Decimal(30)),
)
TARGETED = SHAPES[0]  # the row the targets apply to
TARGET_ON_DEMAND, TARGET_MANAGED = Decimal("0.04"), Decimal("0.025")  # AWS ÷ LLM on that row (issue #30)
PRICED_AT = datetime(2026, 12, 1, tzinfo=timezone.utc)  # list prices as of this date, so the rows stay comparable
# Lambda Managed Instances (docs/OPERATIONS.md): m7g.large On-Demand, plus a 15 % management fee, one execution
# environment an instance serving `max_concurrency` calls at once; requests $0.20/M as on demand.
MANAGED_INSTANCE_HOURLY = Decimal("0.0816")
MANAGED_FEE = Decimal("0.15")
MANAGED_FLOOR_INSTANCES = 3  # publishing the function starts three, for Availability Zone resiliency
MANAGED_UTILISATION = Decimal("0.5")  # the share of the fleet's call slots busy on average in the MI column


def llm_usd(shape: CallShape) -> Decimal:
    """The call's list price from genai-prices (Decimal), as the gateway prices it."""
    from genai_prices import Usage, calc_price

    usage = Usage(input_tokens=shape.input_tokens, output_tokens=shape.output_tokens)
    return calc_price(usage, shape.model, provider_id=shape.provider, genai_request_timestamp=PRICED_AT).total_price


def memory_gb() -> Decimal:
    """The proxy's memory as the dev stage deploys it (`proxy_memory_mb`), in GB."""
    from infra import stages

    return Decimal(stages.load("dev").deploy.proxy_memory_mb) / 1024


def managed_slots() -> int:
    from infra.stages import ManagedInstances

    return ManagedInstances.__dataclass_fields__["max_concurrency"].default


def managed_call_second_usd(utilisation: Decimal = MANAGED_UTILISATION) -> Decimal:
    """What one second of one call costs on Managed Instances when `utilisation` of the call slots are busy."""
    hourly = MANAGED_INSTANCE_HOURLY * (1 + MANAGED_FEE)
    return hourly / 3600 / managed_slots() / utilisation


def managed_idle_usd_per_month() -> Decimal:
    return 730 * MANAGED_FLOOR_INSTANCES * MANAGED_INSTANCE_HOURLY * (1 + MANAGED_FEE)


def costs(capacity: Any, shape: CallShape = TARGETED, memory: Decimal | None = None) -> dict[str, Decimal]:
    """$ per million calls of `shape` by part; `capacity` a bench.capacity.Result (its rollup write units)."""
    memory = memory_gb() if memory is None else memory
    lam = (shape.seconds * memory * LAMBDA_GB_SECOND_ARM + LAMBDA_REQUEST) * MILLION
    managed = (shape.seconds * managed_call_second_usd() + LAMBDA_REQUEST) * MILLION
    api = API_GATEWAY_REST_REQUEST * MILLION
    call_log = call_log_units_per_call(capacity.shape.user_share) * DYNAMODB_WRITE_UNIT * MILLION
    rollup = Decimal(repr(capacity.wcu_per_call)) * DYNAMODB_WRITE_UNIT * MILLION + staging_usd(capacity)
    rest = api + call_log + rollup
    llm = llm_usd(shape) * MILLION
    return {"lambda": lam, "managed": managed, "api": api, "call_log": call_log, "rollup": rollup,
            "total": lam + rest, "total_managed": managed + rest, "llm": llm,
            "share": (lam + rest) / llm, "share_managed": (managed + rest) / llm}


def staging_usd(capacity: Any) -> Decimal:
    """Where the detail tier is merged (chalicelib/rollup/merge.py): S3 requests per million calls, at most one object
    per lane group per stream batch, put once and read once (the merge's CPU is a fraction of a cent)."""
    from dataclasses import replace

    from chalicelib.rollup.merge import GROUPS

    merged = [t.shape for t in getattr(capacity, "tiers", ()) if t.shape.merge_s]
    if not merged:
        return Decimal(0)
    staged = replace(merged[0], merge_s=0).records_per_batch  # the stream mapping's batch, which stages
    return Decimal(GROUPS) / staged * (S3_PUT + S3_GET) * MILLION


HEADER = ("per million calls", "LLM (genai-prices)", "Lambda on demand", "Managed Instances compute",
          "API Gateway REST", "DynamoDB log + rollup", "AWS on demand (÷ LLM)", "AWS with Managed Instances (÷ LLM)",
          f"≤ {TARGET_ON_DEMAND:.0%} on demand, ≤ {TARGET_MANAGED:.1%} managed")


def rows(capacity: Any) -> list[tuple[str, ...]]:
    out = []
    for shape in SHAPES:
        c = costs(capacity, shape)
        verdict = "-"
        if shape is TARGETED:
            verdict = (f"{'met' if c['share'] <= TARGET_ON_DEMAND else 'MISSED'}, "
                       f"{'met' if c['share_managed'] <= TARGET_MANAGED else 'MISSED'}")
        out.append((f"{shape.label} ({shape.input_tokens:,} in / {shape.output_tokens:,} out)", f"${c['llm']:,.0f}",
                    f"${c['lambda']:.2f}", f"${c['managed']:.2f}", f"${c['api']:.2f}",
                    f"${c['call_log']:.2f} + ${c['rollup']:.2f}", f"${c['total']:.2f} ({c['share']:.2%})",
                    f"${c['total_managed']:.2f} ({c['share_managed']:.2%})", verdict))
    return out


def met(capacity: Any) -> bool:
    c = costs(capacity)
    return c["share"] <= TARGET_ON_DEMAND and c["share_managed"] <= TARGET_MANAGED


def breakeven_utilisation(memory: Decimal | None = None) -> Decimal:
    """The share of Managed Instances' call slots that must be busy for them to cost less than Lambda's duration."""
    memory = memory_gb() if memory is None else memory
    return managed_call_second_usd(Decimal(1)) / (memory * LAMBDA_GB_SECOND_ARM)


def reason(capacity: Any) -> str:
    """Why a target is missed, and what it would take (one line)."""
    c = costs(capacity)

    def pct(part: str) -> str:
        return f"{c[part] / c['llm']:.2%}"

    return (f"AWS is {c['share']:.1%} of a {TARGETED.label} call's ${c['llm']:,.0f}/M on demand (target "
            f"{TARGET_ON_DEMAND:.0%}) and {c['share_managed']:.1%} with Managed Instances at "
            f"{MANAGED_UTILISATION:.0%} utilisation (target {TARGET_MANAGED:.1%}): Lambda {pct('lambda')}, API "
            f"Gateway REST alone {pct('api')} (${c['api']:.2f}/M), DynamoDB {pct('call_log')} for the call log and "
            f"{pct('rollup')} for the rollup ({capacity.wcu_per_call:.1f} WCU/call). What remains: the rollup's "
            f"write units (the capacity model's per-call row), and a per-request API fee (a Lambda function URL "
            f"has none and streams; an HTTP API, ${API_GATEWAY_HTTP_REQUEST * MILLION:.2f}/M, cannot stream a "
            f"Lambda response).")


def note(capacity: Any) -> str:
    log_bytes = call_log_bytes()
    units = call_log_units_per_call(capacity.shape.user_share)
    memory = memory_gb()
    return (
        "Cost model per call shape at list prices (us-east-1, arm64 at $0.0000133334/GB-s and $0.20/M requests, "
        "API Gateway REST $3.50/M, DynamoDB on-demand $0.625/M write units; stream reads by Lambda are free). Each "
        "row is a realistic call whose LLM spend grows with its length, priced by genai-prices (the gateway's own "
        f"price data, as of {PRICED_AT:%Y-%m-%d}); the proxy waits on the provider for the row's seconds and Lambda "
        f"bills that whole wait at the stage's {memory * 1024:.0f} MB (`proxy_memory_mb`). Managed Instances: "
        f"m7g.large at ${MANAGED_INSTANCE_HOURLY}/h plus the {MANAGED_FEE:.0%} management fee, "
        f"{managed_slots()} calls at once per instance, {MANAGED_UTILISATION:.0%} of those slots busy on average "
        f"(${managed_call_second_usd() * MILLION:.2f} per million call-seconds); they cost less than Lambda's "
        f"duration above {breakeven_utilisation():.1%} utilisation, and **idle they cost "
        f"${managed_idle_usd_per_month():.2f} a month** (the floor of {MANAGED_FLOOR_INSTANCES} instances runs "
        "with no calls at all; NAT gateways not counted). DynamoDB write units are measured: the call log's "
        f"record of a call is {log_bytes:,} B ({call_log_units()} write unit), written to the table and copied "
        f"whole to `by_day` and, for the {capacity.shape.user_share:.0%} of calls naming a user, to `by_user`: "
        f"{units:.1f} units a call; the rollup's {capacity.wcu_per_call:.2f} units a call (table and `by_kind`) "
        f"are the capacity model's at {capacity.shape.calls_per_s:,} calls/s, plus, where the detail tier is merged, "
        f"its staging's S3 requests (${staging_usd(capacity):.3f} per million calls). Lambda also bills the init phase "
        f"of a cold start and streamed bytes past 6 MB, not counted. The targets apply to the {TARGETED.label} row."
    )
