"""A hard budget under concurrent load on the local stack: overshoot is bounded by the calls in flight."""
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import httpx

CALLS, CONCURRENCY = 50, 20
LIMIT = Decimal("0.002")
USAGE = {"prompt_tokens": 80, "completion_tokens": 0}  # gpt-4o at $2.50 per million input tokens
COST = 80 * Decimal("2.5") / 10**6  # $0.0002: the limit is crossed by the tenth call


def test_hard_limit_admits_no_more_than_the_calls_in_flight_after_the_crossing(stack, upstream):
    key = stack.admin("POST", "/admin/keys", json={"name": "burst", "account": "burst"}).json()["key"]
    budget = {"scope": "account", "scope_id": "burst", "period": "daily", "limit_usd": str(LIMIT),
              "thresholds": [1.0], "mode": "hard", "channels": []}
    assert stack.admin("PUT", "/admin/budgets/burst", json=budget).status_code == 200
    time.sleep(6)  # past the proxy's budget cache, so the stack knows the budget
    for _ in range(CALLS):
        upstream.enqueue(usage=USAGE, delay_seconds=0.2)

    def one(_):
        started = time.monotonic()
        response = httpx.post(f"{stack.url}/openai/v1/chat/completions", timeout=30,
                              headers={"Authorization": f"Bearer {key}"},
                              json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
        return started, time.monotonic(), response.status_code

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        results = list(pool.map(one, range(CALLS)))
    served = sorted((end, start) for start, end, status in results if status == 200)
    assert {status for *_, status in results} <= {200, 429}
    crossing = next(end for n, (end, _) in enumerate(served, 1) if n * COST >= LIMIT)
    admitted_after = sum(1 for _, start in served if start > crossing)
    assert len(served) * COST >= LIMIT  # the budget was crossed …
    assert admitted_after <= CONCURRENCY  # … and then only calls already in flight could still be served
    assert len(served) <= LIMIT / COST + CONCURRENCY
