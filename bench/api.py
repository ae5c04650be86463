"""JSON API at three volumes: DynamoDB requests, bytes read and p95 latency per endpoint over 10k, 1M and 10M
calls' worth of aggregates, written directly (folded facts, not proxied calls) into in-process moto.

The latency is the handler's own (moto's time to answer taken out): moto scans and copies whole
items in Python, hundreds of times slower than DynamoDB, whose side of the cost is the bytes read.

A fact whose sign is n stands for n identical calls (the fold multiplies by it), so a million (or ten million)
calls cost ~14k folded facts: one every ~3 minutes of 30 days, with accounts, keys, models and latencies drawn
at random. The 10k volume folds one fact per call. Both spread over the same 30 days and the same
scope values, so what differs is how full each day's items are: every 5-minute bucket and every
breakdown is filled at 1M, a third of them at 10k.

`make bench` loads each volume (and the 100k users) in a process of its own while the memory phase idles
(`Loading`), and measures each in its process when its turn comes; `measure()` alone loads and measures here.
"""
from __future__ import annotations

import atexit
import functools
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import time
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

from bench import QUICK, sized
from bench.harness import fake_aws_env, metering

ROOT = Path(__file__).resolve().parent.parent
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


class Loading:
    """The volumes and the 100k users, each loaded into the moto of a process of its own (`python -m bench.api
    <job>`) while the memory phase idles, then measured one at a time when asked, in that process, as `measure` and
    `users_at_scale` would measure it here. Building and loading the items measures nothing and was most of the
    phases' time (10+ minutes); what is measured, and how, is the same."""

    def __init__(self) -> None:
        self.workers = {job: subprocess.Popen([sys.executable, "-m", "bench.api", job], cwd=ROOT, stdin=subprocess.PIPE,
                                              stdout=subprocess.PIPE, text=True) for job in JOBS}
        self.loaded: set[str] = set()
        atexit.register(self.stop)

    def stop(self) -> None:
        """End the processes not asked for (the bench stopped early)."""
        for worker in self.workers.values():
            worker.kill()
            worker.wait()

    def wait(self) -> None:
        """Until every process has loaded its items (once)."""
        for job, worker in self.workers.items():
            if job not in self.loaded and worker.stdout.readline().strip() != "loaded":
                raise SystemExit(f"bench.api {job}: loading failed (exit {worker.wait()})")
            self.loaded.add(job)

    def result(self, job: str) -> Any:
        self.wait()
        worker = self.workers.pop(job)
        worker.stdin.write("go\n")
        worker.stdin.flush()
        answer = worker.stdout.read()
        if worker.wait() != 0:
            raise SystemExit(f"bench.api {job}: measuring failed (exit {worker.returncode})")
        return json.loads(answer)


def in_moto(job: str, then) -> Any:
    """Run `job`'s load, then `then()` (the measurement), in-process moto with the app, fresh tables."""
    fake_aws_env()
    from moto import mock_aws

    os.environ["TOLLGATE_ADMIN_KEY"] = "bench"
    with mock_aws():
        from chalicelib.settings import get_settings
        from local.tables import create_tables

        get_settings.cache_clear()
        create_tables()
        measure_loaded = LOADERS[job](datetime.now(timezone.utc))
        then()
        return measure_loaded()


def volume(calls: int, now: datetime):
    """Load `calls` calls' worth; returns the measurement: (per endpoint results, the note on the items)."""
    print(f"loading the JSON API's {calls:,} calls' worth of aggregates…", file=sys.stderr, flush=True)
    count, largest = load(calls, now)

    def measured() -> tuple[dict[str, tuple[float, float, float]], str]:
        from chalice.test import Client

        from app import app

        print(f"measuring the JSON API over {calls:,} calls' worth of aggregates…", file=sys.stderr, flush=True)
        with metering() as meter, Client(app, stage_name="local") as client:
            with moto_heap_frozen():
                results = measure_endpoints(client, {"X-Dashboard-Key": "bench"}, meter)
        return results, (f"{calls:,} calls: {count:,} aggregate items, the largest {largest / 1024:.0f} KB "
                         "(DynamoDB's item limit: 400 KB)")

    return measured


def measure(loading: Loading | None = None) -> tuple[list[tuple[str, ...]], list[str]]:
    """The endpoints' rows over the volumes, and a note on each volume's items (in this process without `loading`)."""
    by_volume, notes = {}, []
    for calls in VOLUMES:
        results, note = loading.result(str(calls)) if loading else in_moto(str(calls), lambda: None)
        by_volume[calls] = {path: tuple(values) for path, values in results.items()}
        notes.append(note)
    rows = []
    for path in ENDPOINTS:
        (requests, kb, p95) = zip(*(by_volume[v][path] for v in VOLUMES))
        ratio = max(p95[1:]) / p95[0]
        met = max(requests) <= TARGET_REQUESTS and ratio <= TARGET_RATIO
        rows.append((f"`{path}`", " / ".join(f"{r:g}" for r in requests), " / ".join(f"{k:.0f}" for k in kb),
                     *(f"{p:.1f}" for p in p95), f"{ratio:.2f}", "met" if met else "MISSED"))
    return rows, notes


def users_at_scale(loading: Loading | None = None) -> list[tuple[str, ...]]:
    """`/api/usage/users` over 100k distinct users (100 in each of 1,000 accounts), one call each this week:
    an account's users (its split by user) and everyone's (the by_kind index over 100k user scopes)."""
    return [tuple(row) for row in (loading.result("users") if loading else in_moto("users", lambda: None))]


def users(now: datetime):
    from chalicelib.rollup.fold import Fact

    rng = random.Random(5)
    made = []
    for n in range(USERS_AT_SCALE):
        account = f"acct-{n % ACCOUNTS_AT_SCALE:04d}"
        made.append(Fact(sign=1, lane=f"bench|{account}", seq=n, ts=now - timedelta(seconds=rng.randrange(7 * 86_400)),
                         account=account, key_id=f"{account}-key", provider="openai", model="gpt-4o-mini",
                         operation=None, team=None, is_error=False, error_type=None, tokens=(500, 0, 0, 100, 0),
                         cost_usd=Decimal(rng.randrange(1, 500)) / Decimal(100_000), latency_ms=800,
                         user=f"{account}-user-{n // ACCOUNTS_AT_SCALE:03d}"))
    print(f"loading {USERS_AT_SCALE:,} users…", file=sys.stderr, flush=True)
    load(0, now, made)

    def measured() -> list[tuple[str, ...]]:
        from chalice.test import Client

        from app import app

        print(f"measuring /api/usage/users over {USERS_AT_SCALE:,} users…", file=sys.stderr, flush=True)
        rows = []
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

    return measured


LOADERS = {**{str(calls): functools.partial(volume, calls) for calls in VOLUMES}, "users": users}
JOBS = tuple(LOADERS)


def serve(job: str) -> None:
    """A `Loading` process: load, say so, wait for the word, measure, answer in JSON, exit."""
    out = sys.stdout
    sys.stdout = sys.stderr  # anything else printed stays off the answer

    def loaded() -> None:
        out.write("loaded\n")
        out.flush()
        sys.stdin.readline()

    out.write(json.dumps(in_moto(job, loaded)))
    out.flush()


if __name__ == "__main__":
    serve(sys.argv[1])
