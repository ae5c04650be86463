"""`make bench`: proxy overhead on the local stack next to its floor (one call-log write on the same moto server),
rollup writes per call, footprint, the JSON API at two volumes and a cost model.

Every figure is measured in one run against the same instant mock upstream, so the ratios hold on a
noisy shared machine even when the absolute numbers move.
"""
from __future__ import annotations

import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path

import boto3
import httpx

from local.stack import MOCK_UPSTREAM_KEY, free_port

ROOT = Path(__file__).resolve().parent.parent
REQUESTS = int(os.environ.get("BENCH_REQUESTS", "1000"))
WORKERS = 8
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "benchmark"}]}


def start_stack(data_dir: str) -> tuple[subprocess.Popen, dict[str, str], Path]:
    port = free_port()
    log = Path(data_dir) / "stack.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TOLLGATE_")}
    # In AWS the rollup and the schedules are functions of their own; here they would share the stack's
    # process and its GIL with the proxy, so they stay off while the proxy is measured.
    env.update(TOLLGATE_PORT=str(port), TOLLGATE_DATA_DIR=data_dir, TOLLGATE_PUMP_SECONDS="-1",
               TOLLGATE_SCHEDULE_SECONDS="3600")
    process = subprocess.Popen([sys.executable, "-m", "local.stack"], cwd=ROOT, env=env,
                               stdout=log.open("w"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while "ready in" not in log.read_text():
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the stack did not start:\n{log.read_text()}")
        time.sleep(0.1)
    text = log.read_text()
    found = {
        "api": f"http://127.0.0.1:{port}",
        "demo_key": re.search(r"Demo key\s+(\S+)", text).group(1),
        "upstream": re.search(r"openai=(\S+?),", text).group(1),
        "aws": re.search(r"AWS \(moto\)\s+(\S+)", text).group(1),
    }
    return process, found, log


def timed(send, count: int, workers: int = 1) -> list[float]:
    """Latency in ms of `count` calls of `send`, on `workers` threads."""
    def one(_: int) -> float:
        started = time.perf_counter()
        send()
        return (time.perf_counter() - started) * 1000

    if workers == 1:
        return [one(i) for i in range(count)]
    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(one, range(count)))


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def main() -> None:
    with tempfile.TemporaryDirectory() as data_dir:
        process, stack, _ = start_stack(data_dir)
        try:
            rows = measure(stack)
        finally:
            process.send_signal(signal.SIGINT)
            process.wait(timeout=30)
    print("measuring rollup writes per call, footprint…", file=sys.stderr, flush=True)
    from bench import api, footprint, rollup

    report(rows, rollup.measure(), footprint.measure(), api.measure())


def measure(stack: dict[str, str]) -> list[tuple[str, str, str, str, str]]:
    limits = httpx.Limits(max_keepalive_connections=WORKERS, max_connections=WORKERS)
    gateway = httpx.Client(base_url=stack["api"], limits=limits,
                           headers={"Authorization": f"Bearer {stack['demo_key']}"})
    direct = httpx.Client(base_url=stack["upstream"], limits=limits,
                          headers={"Authorization": f"Bearer {MOCK_UPSTREAM_KEY}"})
    dynamodb = boto3.client("dynamodb", endpoint_url=stack["aws"], region_name="us-east-1",
                            aws_access_key_id="local", aws_secret_access_key="local")
    table = "tollgate-dev-calls"

    def via_gateway() -> None:
        gateway.post("/openai/v1/chat/completions", json=BODY).raise_for_status()

    def straight() -> None:
        direct.post("/chat/completions", json=BODY).raise_for_status()

    timed(via_gateway, 20)  # warm connections and caches, and log calls to copy
    logged = dynamodb.scan(TableName=table, Limit=1)["Items"][0]

    def put_item() -> None:
        """The floor: one call-log write as the gateway makes it (a logged call's attributes, conditional)."""
        call_id = uuid.uuid4().hex
        dynamodb.put_item(TableName=table, Item={**logged, "call_id": {"S": call_id},
                                                 "sk": {"S": f"{logged['ts']['S']}#{call_id}"}},
                          ConditionExpression="attribute_not_exists(call_id)")

    for send in (straight, put_item):
        timed(send, 20)
    rows = []
    for label, workers in (("sequential", 1), (f"concurrent ({WORKERS} workers)", WORKERS)):
        print(f"measuring {label}: {REQUESTS} requests each way…", file=sys.stderr, flush=True)
        floor = timed(put_item, REQUESTS, workers)
        through = timed(via_gateway, REQUESTS, workers)
        around = timed(straight, REQUESTS, workers)
        for q in (50, 95, 99):
            added, base = pct(through, q) - pct(around, q), pct(floor, q)
            target = {50: 2, 95: 5}.get(q)
            verdict = "" if target is None or workers > 1 else (
                f"≤ floor + {target}: {'met' if added <= base + target else 'MISSED'}")
            rows.append((label, f"p{q}", f"{pct(around, q):.1f}", f"{pct(through, q):.1f}",
                         f"{added:.1f} (floor {base:.1f})", verdict))
    return rows


MISSED = """Missed targets, and why:

- Proxy overhead: beyond the floor, the handler's own CPU (2–3.5 ms per call, the footprint table:
  botocore's signing and parsing, pynamodb, httpx, pricing) and the Chalice local server (~0.9 ms for
  a request refused before any AWS call); in the concurrent runs, one Python process and its GIL on
  2 cores shared by the stack, moto and the mock upstream.
- Cold import: botocore (via pynamodb, ~110 ms) and genai-prices with pydantic (~90 ms) are needed by
  every proxied call. Cheap fixes made: the zip ships compiled bytecode (Lambda cannot write its own:
  without it the import took ~750 ms), and jinja2 and boto3 load only where messages are rendered or
  aggregates read.
- JSON API ratios: the global summary and the timeseries (at times the window) read one or two whole
  day items, whose 5-minute counters fill up with volume (~108 KB at 10k calls a month, ~174 KB at
  1M), so parsing grows with volume though the request count does not. The fix is a separate 5-minute
  item per scope and day, read only for windows under 48 h; it costs a second write per touched scope,
  so it waits for a measured need. Daily reports read the `by_kind` index for the global scope (small
  entries) and page up to 10 times for one account, whose items DynamoDB reads whole (its 1 MB page
  counts the item, not the projection)."""


def markdown(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in rows])


def report(rows: list[tuple[str, ...]], rollup_rows: list[tuple[str, ...]], footprint_rows: list[tuple[str, ...]],
           api_rows: tuple[list[tuple[str, ...]], list[str]]) -> None:
    from bench import api, cost, rollup

    table = markdown(("run", "quantile", "direct ms", "via gateway ms", "added ms (floor: one call-log write, ms)", "target"), rows)
    writes = markdown(("batch size", "UpdateItem requests", "writes per call", "target"), rollup_rows)
    footprint = markdown(("measure", "value", "target", "verdict"), footprint_rows)
    reads = markdown(("endpoint", "DynamoDB requests (10k / 1M)", "KB read (10k / 1M)", "p95 ms at 10k",
                      "p95 ms at 1M", "p95 ratio", f"≤ {api.TARGET_REQUESTS} requests, ratio ≤ {api.TARGET_RATIO}"),
                     api_rows[0])
    costs = markdown(("per million calls", "Lambda arm64 512 MB", "API Gateway REST", "DynamoDB writes", "AWS total",
                      "LLM spend (typical call)"), cost.rows())
    print("\n\n".join((table, writes, footprint, reads, costs)))
    machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    docs = ROOT / "docs" / "BENCHMARKS.md"
    docs.parent.mkdir(exist_ok=True)
    docs.write_text(
        "# Benchmarks\n\n"
        f"`make bench` on {stamp}; {machine}; {REQUESTS} requests per cell.\n\n"
        "Proxy overhead on the local stack (Chalice local server, Nagle off; stream pump and scheduler off, "
        "as they are separate functions in AWS) against the built-in mock "
        "upstream, which answers instantly. *Added* is via-gateway minus direct at the same quantile; "
        "the floor is one call-log write (a logged call's attributes, with the same condition) to the same "
        "moto server, the one write every call makes.\n\n"
        f"{table}\n\n"
        f"Rollup writes per call: {rollup.CALLS} calls over 5 accounts × 3 models in one hour, through the "
        "stream handler in batches of each size (in-process moto; every UpdateItem counted).\n\n"
        f"{writes}\n\n"
        "Footprint: cold import of app.py as Lambda does it (the unpacked zip and the runtime's libraries only, "
        "`python -S -X importtime`), package size, AWS requests and handler CPU per proxied call (in-process "
        "moto, whose own CPU is left out).\n\n"
        f"{footprint}\n\n"
        f"JSON API over {api.DAYS} days of aggregates worth 10k and 1M calls, written directly "
        f"({api.RUNS} requests per endpoint, in-process moto). The latency is the handler's own, moto's time "
        "to answer taken out; DynamoDB's share grows with the KB read. "
        + "; ".join(api_rows[1]) + ".\n\n"
        f"{reads}\n\n"
        "Cost model at list prices (us-east-1, arm64 at $0.0000133334/GB-s, API Gateway REST $3.50/M, "
        "DynamoDB on-demand $0.625/M write units; ~3 write units for the call log and ~4 for rollups per call; "
        "stream reads by Lambda are free), against the LLM spend of a gpt-4o call of 1,000 in / 300 out tokens:\n\n"
        f"{costs}\n\n"
        f"{MISSED}\n")
    print(f"\nwritten to {docs.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
