"""JSON API at two volumes: DynamoDB requests, bytes read and p95 latency per endpoint over 10k and 1M
calls' worth of aggregates, written directly (folded facts, not proxied calls) into in-process moto.

The latency is the handler's own (moto's time to answer taken out): moto scans and copies whole
items in Python, hundreds of times slower than DynamoDB, whose side of the cost is the bytes read.

A fact whose sign is n stands for n identical calls (the fold multiplies by it), so a million calls
cost ~40k folded facts: one every ~minute of 30 days, with accounts, keys, models and latencies drawn
at random. The 10k volume folds one fact per call. Both spread over the same 30 days and the same
scope values, so what differs is how full each day's items are: every 5-minute bucket and every
breakdown is filled at 1M, a third of them at 10k.
"""
from __future__ import annotations

import json
import os
import random
import statistics
import sys
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bench.harness import fake_aws_env, metering

VOLUMES = (10_000, 1_000_000)
FACTS_AT_1M = 43_200
DAYS = 30
RUNS = 30
TARGET_REQUESTS, TARGET_RATIO = 3, 1.2
ENDPOINTS = ("/api/summary?hours=24", "/api/usage/daily?days=30", "/api/usage/daily?days=30&group_by=model",
             "/api/usage/timeseries?hours=24&interval=1h", "/api/usage/timeseries?hours=24&interval=5m",
             "/api/usage/window?minutes=300", "/api/summary?hours=24&account=acct-03")


def facts(calls: int, now: datetime) -> list:
    """`calls` calls' worth of facts over the last DAYS days, as few facts as keep the spread realistic."""
    from chalicelib.rollup.fold import Fact

    rng = random.Random(calls)
    count = min(calls, FACTS_AT_1M)
    weights = [calls // count + (1 if i < calls % count else 0) for i in range(count)]
    span = DAYS * 86_400
    out = []
    for i, weight in enumerate(weights):
        account = f"acct-{rng.randrange(20):02d}"
        model, provider = rng.choice([("gpt-4o", "openai"), ("gpt-4o-mini", "openai"), ("o3-mini", "openai"),
                                      ("claude-sonnet-4-5", "anthropic"), ("claude-haiku-4-5", "anthropic"),
                                      ("openai/gpt-4o", "openrouter"), ("meta-llama/llama-3.3-70b", "openrouter")])
        error = rng.random() < 0.02
        out.append(Fact(
            sign=weight, lane=f"bench|{account}", seq=i, ts=now - timedelta(seconds=rng.randrange(span)),
            account=account, key_id=f"{account}-key-{rng.randrange(4)}", provider=provider, model=model,
            operation="chat/completions", team=f"team-{rng.randrange(5)}", is_error=error,
            error_type="upstream_5xx" if error else None,
            tokens=(rng.randrange(50, 4000), rng.randrange(0, 2000), 0, rng.randrange(10, 800), 0),
            cost_usd=Decimal(rng.randrange(1, 5000)) / Decimal(100_000), latency_ms=int(rng.lognormvariate(6.5, 0.8))))
    return out


def load(calls: int, now: datetime) -> tuple[int, int]:
    """Write the aggregates of `calls` calls; (items written, largest item in bytes as sent)."""
    import boto3

    from chalicelib.rollup import store
    from chalicelib.rollup.fold import fold

    client = boto3.client("dynamodb")
    items = [store.full_item(key, delta) for key, delta in fold(facts(calls, now)).items()]
    for start in range(0, len(items), 25):
        client.batch_write_item(RequestItems={"tollgate-dev-aggregates": [
            {"PutRequest": {"Item": item}} for item in items[start:start + 25]]})
    return len(items), max(len(json.dumps(item)) for item in items)


def measure_endpoints(client, headers: dict[str, str], meter) -> dict[str, tuple[float, float, float]]:
    """Per endpoint: (DynamoDB requests per call, KB read per call, p95 handler ms over RUNS calls)."""
    results = {}
    for path in ENDPOINTS:
        for _ in range(3):  # warm
            response = client.http.get(path, headers=headers)
            assert response.status_code == 200, (path, response.body[:300])
        meter.reset()
        own = []
        for _ in range(RUNS):
            moto_before = meter.moto_wall
            started = time.perf_counter()
            client.http.get(path, headers=headers)
            own.append((time.perf_counter() - started - (meter.moto_wall - moto_before)) * 1000)
        p95 = statistics.quantiles(own, n=100, method="inclusive")[94]
        results[path] = (len(meter.operations) / RUNS, meter.answer_bytes / RUNS / 1024, p95)
    return results


def measure() -> tuple[list[tuple[str, ...]], list[str]]:
    fake_aws_env()
    import boto3
    from chalice.test import Client
    from moto import mock_aws

    os.environ["TOLLGATE_ADMIN_KEY"] = "bench"
    by_volume, notes = {}, []
    with mock_aws():
        from app import app
        from chalicelib.settings import get_settings
        from local.tables import create_tables

        get_settings.cache_clear()
        now = datetime.now(timezone.utc).replace(tzinfo=None)
        for calls in VOLUMES:
            print(f"measuring the JSON API over {calls:,} calls' worth of aggregates…", file=sys.stderr, flush=True)
            create_tables()
            count, largest = load(calls, now)
            notes.append(f"{calls:,} calls: {count:,} aggregate items, the largest {largest / 1024:.0f} KB "
                         "(DynamoDB's item limit: 400 KB)")
            with metering() as meter, Client(app, stage_name="local") as client:
                by_volume[calls] = measure_endpoints(client, {"X-Dashboard-Key": "bench"}, meter)
            boto3.client("dynamodb").delete_table(TableName="tollgate-dev-aggregates")
    small, large = (by_volume[v] for v in VOLUMES)
    rows = []
    for path in ENDPOINTS:
        (requests_small, kb_small, p95_small), (requests_large, kb_large, p95_large) = small[path], large[path]
        ratio = p95_large / p95_small
        met = max(requests_small, requests_large) <= TARGET_REQUESTS and ratio <= TARGET_RATIO
        rows.append((f"`{path}`", f"{requests_small:g} / {requests_large:g}", f"{kb_small:.0f} / {kb_large:.0f}",
                     f"{p95_small:.1f}", f"{p95_large:.1f}", f"{ratio:.2f}", "met" if met else "MISSED"))
    return rows, notes
