"""JSON API at three volumes: DynamoDB requests, bytes read and p95 latency per endpoint over 10k, 1M and 10M
calls' worth of aggregates, written directly (folded facts, not proxied calls) into in-process moto.

The latency is the handler's own (moto's time to answer taken out): moto scans and copies whole
items in Python, hundreds of times slower than DynamoDB, whose side of the cost is the bytes read.

A fact whose sign is n stands for n identical calls (the fold multiplies by it), so a million (or ten million)
calls cost ~14k folded facts: one every ~3 minutes of 30 days, with accounts, keys, models and latencies drawn
at random. The 10k volume folds one fact per call. Both spread over the same 30 days and the same
scope values, so what differs is how full each day's items are: every 5-minute bucket and every
breakdown is filled at 1M, a third of them at 10k.
"""
from __future__ import annotations

import gc
import json
import os
import random
import statistics
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bench import QUICK, sized
from bench.harness import fake_aws_env, metering

VOLUMES = sized((10_000, 1_000_000, 10_000_000), (100, 1_000, 10_000))
FACTS_AT_1M = sized(14_400, 150)
DAYS = 30
RUNS = sized(12, 2)
TARGET_REQUESTS, TARGET_RATIO = 3, 1.2
MONTH = datetime.now(timezone.utc).strftime("%Y-%m")
ENDPOINTS = ("/api/summary?hours=24", "/api/usage/daily?days=30", "/api/usage/daily?days=30&group_by=model",
             "/api/usage/timeseries?hours=24&interval=1h", "/api/usage/timeseries?hours=24&interval=5m",
             "/api/usage/window?minutes=300", "/api/summary?hours=24&account=acct-03",
             f"/api/summary?month={MONTH}", f"/api/usage/daily?month={MONTH}&account=acct-03&group_by=team",
             "/api/usage/users?days=7&account=acct-03", "/api/usage/users?days=7&team=team-1",
             "/api/sessions?user=acct-03-user-7&days=7&account=acct-03",
             "/api/sessions/acct-03-user-7-s1?account=acct-03", "/api/usage/models?hours=24", "/api/forecast")
USERS_AT_SCALE, ACCOUNTS_AT_SCALE = sized((100_000, 1_000), (200, 20))


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
        user = f"{account}-user-{rng.randrange(10)}"
        out.append(Fact(
            sign=weight, lane=f"bench|{account}", seq=i, ts=now - timedelta(seconds=rng.randrange(span)),
            account=account, key_id=f"{account}-key-{rng.randrange(4)}", provider=provider, model=model,
            operation="chat/completions", team=f"team-{rng.randrange(5)}", is_error=error,
            error_type="upstream_5xx" if error else None,
            tokens=(rng.randrange(50, 4000), rng.randrange(0, 2000), 0, rng.randrange(10, 800), 0),
            cost_usd=Decimal(rng.randrange(1, 5000)) / Decimal(100_000), latency_ms=int(rng.lognormvariate(6.5, 0.8)),
            user=user, session=f"{user}-s{rng.randrange(5)}", ttft_ms=int(rng.lognormvariate(5.5, 0.5))))
    if QUICK:  # too few facts to hold the session the endpoints ask for by chance
        out[0] = replace(out[0], lane="bench|acct-03", account="acct-03", key_id="acct-03-key-0",
                         user="acct-03-user-7", session="acct-03-user-7-s1")
    return out


def moto_backend(region: str):
    """In-process moto's DynamoDB: loading a million calls' small items through boto3 would take half an hour."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    return dynamodb_backends[DEFAULT_ACCOUNT_ID][region]


def load(calls: int, now: datetime, made=None) -> tuple[int, int]:
    """Write the aggregates of `calls` calls (or of the facts `made`); (items written, largest in bytes as sent)."""
    import boto3

    from chalicelib.rollup import store
    from chalicelib.rollup.fold import fold

    items = [store.full_item(key, delta) for key, delta in fold(made or facts(calls, now)).items()]
    backend = moto_backend(boto3.client("dynamodb").meta.region_name)
    for item in items:  # straight into moto's table (indexes included): the same items, without HTTP per batch
        backend.put_item("tollgate-dev-aggregates", item)
    return len(items), max(len(json.dumps(item)) for item in items)


@contextmanager
def moto_heap_frozen():
    """Keep the collector off moto's items while the handler is timed: hundreds of thousands of them live in
    this process (in AWS, none share the handler's), and a collection that walks them would land in whichever
    request is running."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def measure_endpoints(client, headers: dict[str, str], meter) -> dict[str, tuple[float, float, float]]:
    """Per endpoint: (DynamoDB requests per call, KB read per call, p95 handler ms over RUNS calls)."""
    results = {}
    for path in ENDPOINTS:
        for _ in range(1):  # warm
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
        now = datetime.now(timezone.utc)
        for calls in VOLUMES:
            print(f"measuring the JSON API over {calls:,} calls' worth of aggregates…", file=sys.stderr, flush=True)
            create_tables()
            count, largest = load(calls, now)
            notes.append(f"{calls:,} calls: {count:,} aggregate items, the largest {largest / 1024:.0f} KB "
                         "(DynamoDB's item limit: 400 KB)")
            with metering() as meter, Client(app, stage_name="local") as client:
                with moto_heap_frozen():
                    by_volume[calls] = measure_endpoints(client, {"X-Dashboard-Key": "bench"}, meter)
            boto3.client("dynamodb").delete_table(TableName="tollgate-dev-aggregates")
    rows = []
    for path in ENDPOINTS:
        (requests, kb, p95) = zip(*(by_volume[v][path] for v in VOLUMES))
        ratio = max(p95[1:]) / p95[0]
        met = max(requests) <= TARGET_REQUESTS and ratio <= TARGET_RATIO
        rows.append((f"`{path}`", " / ".join(f"{r:g}" for r in requests), " / ".join(f"{k:.0f}" for k in kb),
                     *(f"{p:.1f}" for p in p95), f"{ratio:.2f}", "met" if met else "MISSED"))
    return rows, notes


def users_at_scale(now: datetime) -> list[tuple[str, ...]]:
    """`/api/usage/users` over 100k distinct users (100 in each of 1,000 accounts), one call each this week:
    an account's users (its split by user) and everyone's (the by_kind index over 100k user scopes)."""
    fake_aws_env()
    from chalice.test import Client
    from moto import mock_aws

    from chalicelib.rollup.fold import Fact

    os.environ["TOLLGATE_ADMIN_KEY"] = "bench"
    rng = random.Random(5)
    made = []
    for n in range(USERS_AT_SCALE):
        account = f"acct-{n % ACCOUNTS_AT_SCALE:04d}"
        made.append(Fact(sign=1, lane=f"bench|{account}", seq=n, ts=now - timedelta(seconds=rng.randrange(7 * 86_400)),
                         account=account, key_id=f"{account}-key", provider="openai", model="gpt-4o-mini",
                         operation=None, team=None, is_error=False, error_type=None, tokens=(500, 0, 0, 100, 0),
                         cost_usd=Decimal(rng.randrange(1, 500)) / Decimal(100_000), latency_ms=800,
                         user=f"{account}-user-{n // ACCOUNTS_AT_SCALE:03d}"))
    rows = []
    with mock_aws():
        from app import app
        from chalicelib.settings import get_settings
        from local.tables import create_tables

        get_settings.cache_clear()
        create_tables()
        print(f"measuring /api/usage/users over {USERS_AT_SCALE:,} users…", file=sys.stderr, flush=True)
        load(0, now, made)
        with metering() as meter, Client(app, stage_name="local") as client:
            for path in ("/api/usage/users?days=7&account=acct-0003", "/api/usage/users?days=7"):
                meter.reset()
                response = client.http.get(path, headers={"X-Dashboard-Key": "bench"})
                requests = len(meter.operations)
                if response.status_code == 200:
                    shown = len(json.loads(response.body)["users"])
                    verdict = "met" if requests <= TARGET_REQUESTS else "MISSED"
                    rows.append((f"`{path}`", f"{requests}", f"200, {shown} users", verdict))
                else:
                    why = ("MISSED: everyone's users are 100k index entries a week, past what 3 requests read; "
                           "per account or team it is one Query. A top-N across accounts would take a ranked "
                           "summary written off the hot path (e.g. hourly)" if "account" not in path else "MISSED")
                    rows.append((f"`{path}`", f"{requests}", f"{response.status_code}: "
                                 f"{json.loads(response.body)['error']['message']}", why))
    return rows
