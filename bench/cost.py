"""AWS list-price cost per million proxied calls (us-east-1), beside the LLM spend of a typical call.

The proxy function bills Lambda duration for the whole call, a stream included, until its last byte
(up to its 900 s timeout): the duration column is the time the upstream takes to finish the answer."""
from __future__ import annotations

from decimal import Decimal

LAMBDA_GB_SECOND_ARM = Decimal("0.0000133334")
LAMBDA_REQUEST = Decimal("0.20") / 10**6
API_GATEWAY_REST_REQUEST = Decimal("3.50") / 10**6
DYNAMODB_WRITE_UNIT = Decimal("0.625") / 10**6  # on demand
MEMORY_GB = Decimal("0.5")
CALL_LOG_WRITE_UNITS = 3  # ~1 KB item + the by_day index (+ by_user when attributed)
ROLLUP_WRITE_UNITS = 4  # measured ~0.15 updates/call, each billed by the (growing) day item's size in KB
TYPICAL_CALL_USD = Decimal("0.0055")  # gpt-4o, 1,000 input + 300 output tokens


def rows() -> list[tuple[str, str, str, str, str, str]]:
    out = []
    million = Decimal(10**6)
    dynamodb = (CALL_LOG_WRITE_UNITS + ROLLUP_WRITE_UNITS) * DYNAMODB_WRITE_UNIT * million
    for seconds in (Decimal("0.5"), Decimal(2), Decimal(10), Decimal(60)):
        lam = (seconds * MEMORY_GB * LAMBDA_GB_SECOND_ARM + LAMBDA_REQUEST) * million
        api = API_GATEWAY_REST_REQUEST * million
        total = lam + api + dynamodb
        label = f"{seconds} s upstream" + (" (a long stream: agents, reasoning)" if seconds >= 60 else "")
        out.append((label, f"${lam:.2f}", f"${api:.2f}", f"${dynamodb:.2f}", f"${total:.2f}",
                    f"${TYPICAL_CALL_USD * million:,.0f}"))
    return out
