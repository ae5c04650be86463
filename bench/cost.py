"""AWS list-price cost per million proxied calls (us-east-1), beside the LLM spend of a gpt-4o-mini-sized call.

The proxy function bills Lambda duration for the whole call, a stream included, until its last byte
(up to its 900 s timeout): the duration column is the time the upstream takes to finish the answer.
DynamoDB's write units are measured, not assumed: the call log's from a real call record's size (the table,
then its `by_day` and `by_user` indexes, which project every attribute), the rollup's from the capacity
model (bench/capacity.py) at its busiest shape."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal
from typing import Any

LAMBDA_GB_SECOND_ARM = Decimal("0.0000133334")
LAMBDA_REQUEST = Decimal("0.20") / 10**6
API_GATEWAY_REST_REQUEST = Decimal("3.50") / 10**6
API_GATEWAY_HTTP_REQUEST = Decimal("1.00") / 10**6  # for the "what it would take" line only
DYNAMODB_WRITE_UNIT = Decimal("0.625") / 10**6  # on demand
MEMORY_GB = Decimal("0.5")
# The typical call: gpt-4o-mini, 1,000 input and 300 output tokens at $0.15 and $0.60 per million.
CALL_INPUT_TOKENS, CALL_OUTPUT_TOKENS = 1_000, 300
GPT_4O_MINI_PER_MTOK = (Decimal("0.15"), Decimal("0.60"))
TYPICAL_CALL_USD = (CALL_INPUT_TOKENS * GPT_4O_MINI_PER_MTOK[0] + CALL_OUTPUT_TOKENS * GPT_4O_MINI_PER_MTOK[1]) / 10**6
TYPICAL_UPSTREAM_S = Decimal(2)  # the row the target applies to
DURATIONS_S = (Decimal("0.5"), TYPICAL_UPSTREAM_S, Decimal(10), Decimal(60))
TARGET_SHARE = Decimal("0.01")  # AWS at most 1 % of the LLM spend
MILLION = Decimal(10**6)

HEADER = ("per million calls", "Lambda arm64 512 MB", "API Gateway REST", "DynamoDB call log", "DynamoDB rollup",
          "AWS total", "LLM (gpt-4o-mini call)", "AWS ÷ LLM", f"≤ {TARGET_SHARE:.0%}")


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


def costs(capacity: Any, seconds: Decimal) -> dict[str, Decimal]:
    """$ per million calls by part, for a call of `seconds` upstream; `capacity` a bench.capacity.Result."""
    lam = (seconds * MEMORY_GB * LAMBDA_GB_SECOND_ARM + LAMBDA_REQUEST) * MILLION
    api = API_GATEWAY_REST_REQUEST * MILLION
    call_log = call_log_units_per_call(capacity.shape.user_share) * DYNAMODB_WRITE_UNIT * MILLION
    rollup = Decimal(repr(capacity.wcu_per_call)) * DYNAMODB_WRITE_UNIT * MILLION
    total = lam + api + call_log + rollup
    return {"lambda": lam, "api": api, "call_log": call_log, "rollup": rollup, "total": total,
            "llm": TYPICAL_CALL_USD * MILLION}


def rows(capacity: Any) -> list[tuple[str, ...]]:
    out = []
    for seconds in DURATIONS_S:
        c = costs(capacity, seconds)
        share = c["total"] / c["llm"]
        label = f"{seconds} s upstream" + (" (a long stream: agents, reasoning)" if seconds >= 60 else "")
        verdict = ("met" if share <= TARGET_SHARE else "MISSED") if seconds == TYPICAL_UPSTREAM_S else "-"
        out.append((label, f"${c['lambda']:.2f}", f"${c['api']:.2f}", f"${c['call_log']:.2f}", f"${c['rollup']:.2f}",
                    f"${c['total']:.2f}", f"${c['llm']:,.0f}", f"{share:.2%}", verdict))
    return out


def met(capacity: Any) -> bool:
    c = costs(capacity, TYPICAL_UPSTREAM_S)
    return c["total"] / c["llm"] <= TARGET_SHARE


def reason(capacity: Any) -> str:
    """Why the target is missed, and what it would take (one line)."""
    c = costs(capacity, TYPICAL_UPSTREAM_S)
    budget = c["llm"] * TARGET_SHARE

    def pct(part: str) -> str:
        return f"{c[part] / c['llm']:.2%}"

    return (f"AWS is {c['total'] / c['llm']:.1%} of a gpt-4o-mini call's ${c['llm']:,.0f}/M at "
            f"{TYPICAL_UPSTREAM_S} s upstream, the target {TARGET_SHARE:.0%} (${budget:.2f}/M): Lambda "
            f"{pct('lambda')}, API Gateway REST alone {pct('api')} (${c['api']:.2f}/M), DynamoDB {pct('call_log')} "
            f"for the call log and {pct('rollup')} for the rollup ({capacity.wcu_per_call:.1f} WCU/call). It would "
            f"take no per-request API fee (a Lambda function URL has none and streams with its RESPONSE_STREAM "
            f"mode; an HTTP API, ${API_GATEWAY_HTTP_REQUEST * MILLION:.2f}/M, cannot stream a Lambda response: "
            f"API Gateway streams on REST APIs only), not paying Lambda by the second for a wait on the upstream "
            f"(Lambda Managed Instances: many calls per execution environment at EC2 prices), and fewer rollup "
            f"write units per call.")


def note(capacity: Any) -> str:
    log_bytes = call_log_bytes()
    units = call_log_units_per_call(capacity.shape.user_share)
    return (
        "Cost model at list prices (us-east-1, arm64 at $0.0000133334/GB-s and $0.20/M requests, API Gateway REST "
        "$3.50/M, DynamoDB on-demand $0.625/M write units; stream reads by Lambda are free), against the LLM "
        f"spend of a gpt-4o-mini call of {CALL_INPUT_TOKENS:,} in / {CALL_OUTPUT_TOKENS} out tokens "
        f"(${GPT_4O_MINI_PER_MTOK[0]} and ${GPT_4O_MINI_PER_MTOK[1]} per 1M: ${TYPICAL_CALL_USD} a call, "
        f"${TYPICAL_CALL_USD * MILLION:,.0f} per million). DynamoDB write units are measured: the call log's "
        f"record of such a call is {log_bytes:,} B ({call_log_units()} write unit), written to the table and "
        "copied whole to `by_day` and, for the "
        f"{capacity.shape.user_share:.0%} of calls naming a user, to `by_user`: {units:.1f} units a call; the "
        f"rollup's {capacity.wcu_per_call:.2f} units a call (table and `by_kind`) are the capacity model's at "
        f"{capacity.shape.calls_per_s:,} calls/s, at each item's end-of-period size. The proxy is a function of "
        "its own with a 900 s timeout, and a stream is billed for its whole duration: the Lambda column is the "
        "time until the upstream's last byte, not until the first. Requests are counted as before (one API "
        "Gateway request and one Lambda request per call, streamed or not); Lambda also bills streamed bytes "
        "past the first 6 MB of a response, which LLM answers do not reach, and, since August 2025, the init "
        "phase of a cold start (the start-up measured above). The target applies to the "
        f"{TYPICAL_UPSTREAM_S} s row."
    )
