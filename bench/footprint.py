"""Footprint: import time of app.py as packaged (the Chalice functions), the Lambda zip's size, AWS requests and
handler CPU per proxied call (the proxy app in-process)."""
from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench import sized
from bench.harness import fake_aws_env, metering

ROOT = Path(__file__).resolve().parent.parent
IMPORT_RUNS = sized(5, 1)
IMPORT_TARGET_MS = 250
ZIP_TARGET_MB = 15


def import_ms(sys_path: list[Path]) -> float:
    """Median over fresh interpreters of importing app.py as Lambda would: from the unpacked zip and the
    runtime's libraries only (`python -S`), cumulative µs of `app` from `-X importtime`."""
    env = {"AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true", "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": os.environ.get("PATH", "")}
    probe = "import sys; sys.path[:0] = sys.argv[1:]; import app"
    runs = []
    for _ in range(IMPORT_RUNS):
        done = subprocess.run([sys.executable, "-S", "-X", "importtime", "-c", probe, *map(str, sys_path)],
                              cwd=sys_path[0], env=env, capture_output=True, text=True, check=True)
        line = next(l for l in reversed(done.stderr.splitlines()) if re.search(r"\|\s+app$", l))
        runs.append(int(line.split("|")[1]) / 1000)
    return statistics.median(runs)


def packaged(scratch: Path) -> tuple[Path, list[Path]]:
    """The packaged stage (deployment.zip, sam.json), and the sys.path that imports the zip like Lambda does."""
    from infra.package import package, unpack_like_lambda

    out = package("dev", scratch / "dev")
    return out, unpack_like_lambda(out / "deployment.zip", scratch / "unpacked")


def proxied_call_costs(calls: int = sized(200, 5)) -> tuple[float, float, float]:
    """Proxied calls (not streamed) through the proxy app on in-process moto, caches warm: (AWS requests per
    call, CPU ms per call, CPU ms per GET /ready). The app is driven in-process by httpx's ASGI transport, and
    the CPU is this process's (event loop and worker threads) less moto's; the mock upstream runs in a
    process of its own, so its CPU is not counted. GET /ready shows what the in-process client and routing
    alone cost."""
    import asyncio

    import httpx

    from bench.upstream import Upstream

    fake_aws_env()
    from moto import mock_aws

    upstream = Upstream("bench")
    os.environ.update(TOLLGATE_OPENAI_BASE_URL=f"{upstream.url}/v1", TOLLGATE_OPENAI_API_KEY="bench")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with mock_aws():
        from chalicelib.gateway.proxy_app import app
        from chalicelib.ledger.keys import create_gateway_key
        from chalicelib.settings import get_settings
        from local.tables import create_tables

        get_settings.cache_clear()
        create_tables()
        key = create_gateway_key({"name": "bench", "account": "bench"})["key"]

        async def run() -> tuple[float, float, float]:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://proxy",
                                         headers={"Authorization": f"Bearer {key}"}) as client:
                for _ in range(20):  # warm the caches and the code paths
                    (await client.post("/openai/v1/chat/completions", json=body)).raise_for_status()
                with metering() as meter:
                    started = time.process_time()
                    for _ in range(calls):
                        await client.post("/openai/v1/chat/completions", json=body)
                    cpu = time.process_time() - started - meter.moto_cpu
                started = time.process_time()
                for _ in range(calls):
                    await client.get("/ready")
                ready = time.process_time() - started
            return len(meter.operations) / calls, cpu * 1000 / calls, ready * 1000 / calls

        try:
            return asyncio.run(run())
        finally:
            upstream.stop()


def measure(out: Path, sys_path: list[Path]) -> list[tuple[str, str, str, str]]:
    size = (out / "deployment.zip").stat().st_size / 1e6
    imported = import_ms(sys_path)
    calls, cpu_ms, client_ms = proxied_call_costs()
    return [
        (f"cold import of app.py (the Chalice functions) from the zip (median of {IMPORT_RUNS})", f"{imported:.0f} ms",
         f"≤ {IMPORT_TARGET_MS} ms", "met" if imported <= IMPORT_TARGET_MS else "MISSED"),
        ("Lambda zip (runtime packages left out, bytecode in)", f"{size:.1f} MB", f"≤ {ZIP_TARGET_MB} MB",
         "met" if size <= ZIP_TARGET_MB else "MISSED"),
        ("AWS requests per proxied call, caches warm", f"{calls:.2f}", "1", "met" if calls <= 1 else "MISSED"),
        ("CPU per proxied call in the proxy app (moto's share left out)",
         f"{cpu_ms:.2f} ms (a GET /ready: {client_ms:.2f} ms)", "-", ""),
    ]
