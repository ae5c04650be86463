"""The 8-worker rows in the deployed shape: each worker calls a proxy process of its own, one call at a time, as
Lambda runs one invocation at a time in each execution environment.

The processes are the proxy function from the zip, started as bench/coldstart.py starts it (the adapter's line,
the template's environment); DynamoDB and SSM are a moto server in a process of its own, the upstream the mock
in a process of its own. The floor is the call-log write every call makes, from as many workers, to the same
moto server; direct is the same call straight to the mock. What this machine cannot give is what Lambda gives
each environment: a CPU share of its own. Here the processes, moto and the mock share 2 cores, so a row that
misses its target says how the work queues on those cores, not how one environment answers.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Callable

import boto3
import httpx

from bench import coldstart
from bench.harness import call_log_write
from bench.upstream import Upstream
from local.stack import free_port

def _moto_server() -> tuple[subprocess.Popen, str]:
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{url}/moto-api/", timeout=1)
            return server, url
        except httpx.TransportError:
            time.sleep(0.1)
    server.kill()
    raise RuntimeError("the moto server did not start")


def _proxies(env: dict[str, str], code: Path, count: int, log_dir: Path) -> list[tuple[subprocess.Popen, str]]:
    started = []
    for n in range(count):
        port = free_port()
        with (log_dir / f"proxy{n}.log").open("w") as out:
            process = subprocess.Popen(["/bin/bash", "-c", 'exec -- "${LAMBDA_TASK_ROOT}/${_HANDLER}"'], cwd=code,
                                       env={**env, "PORT": str(port)}, stdout=out, stderr=subprocess.STDOUT)
        started.append((process, port))
    for process, port in started:
        coldstart.ready_after(port, process, time.perf_counter(), timeout=120)
    return [(process, f"http://127.0.0.1:{port}") for process, port in started]


def measure(template: dict, code: Path, runtime: Path, requests: int, workers: int, target_ms: dict[int, float],
            timed: Callable, latency_rows: Callable) -> list[tuple[str, ...]]:
    """Latency rows as the main table's (`timed` and `latency_rows` are bench/__main__.py's)."""
    moto, aws_url = _moto_server()
    upstream = Upstream(coldstart.UPSTREAM_KEY)
    aws = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench", "AWS_SESSION_TOKEN": "bench",
           "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1", "AWS_ACCOUNT_ID_ENDPOINT_MODE": "disabled",
           "TOLLGATE_AWS_ENDPOINT": aws_url, "AWS_ENDPOINT_URL": aws_url}
    processes: list[tuple[subprocess.Popen, str]] = []
    try:
        key, queue_url = coldstart.setup_aws(aws)
        with tempfile.TemporaryDirectory() as scratch:
            env = coldstart.lambda_env(template, code, runtime, aws, queue_url, upstream.url,
                                       Path(scratch))
            processes = _proxies(env, code, workers, Path(scratch))
            return _rows(processes, key, upstream.url, aws_url, requests, workers, target_ms, timed, latency_rows)
    finally:
        for process, _ in processes:
            process.send_signal(signal.SIGTERM)
        for process, _ in processes:
            process.wait(timeout=10)
        upstream.stop()
        moto.terminate()
        moto.wait(timeout=10)


def _rows(processes, key: str, upstream_url: str, aws_url: str, requests: int, workers: int,
          target_ms: dict[int, float], timed: Callable, latency_rows: Callable) -> list[tuple[str, ...]]:
    gateways = [httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}) for _, url in processes]
    direct = httpx.Client(base_url=upstream_url, headers={"Authorization": f"Bearer {coldstart.UPSTREAM_KEY}"},
                          limits=httpx.Limits(max_connections=workers, max_keepalive_connections=workers))
    dynamodb = boto3.client("dynamodb", endpoint_url=aws_url, region_name="us-east-1", aws_access_key_id="bench",
                            aws_secret_access_key="bench")
    table = "tollgate-dev-calls"
    for gateway in gateways:  # warm each process's caches and connections
        for _ in range(5):
            gateway.post("/openai/v1/chat/completions", json=coldstart.BODY).raise_for_status()
    put_item = call_log_write(dynamodb, table)
    turns, slot = iter(range(10**9)), threading.local()

    def own_process() -> httpx.Client:
        """Worker thread n always calls process n, so each process serves one call at a time."""
        if not hasattr(slot, "n"):
            slot.n = next(turns) % workers
        return gateways[slot.n]

    def via_gateway() -> None:
        own_process().post("/openai/v1/chat/completions", json=coldstart.BODY).raise_for_status()

    def straight() -> None:
        direct.post("/v1/chat/completions", json=coldstart.BODY).raise_for_status()

    floor = timed(put_item, requests, workers)
    through = timed(via_gateway, requests, workers)
    around = timed(straight, requests, workers)
    return latency_rows(f"{workers} workers, one proxy process each (the deployed shape)", floor, through, around,
                        target_ms)
