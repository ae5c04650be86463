"""Cold start and footprint: import time of app.py as packaged, the Lambda zip's size, AWS calls per proxied request."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.harness import fake_aws_env, metering

ROOT = Path(__file__).resolve().parent.parent
IMPORT_RUNS = 5
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


def packaged(scratch: Path) -> tuple[float, list[Path]]:
    """The zip's size in MB, and the sys.path that imports it like Lambda does."""
    from infra.package import package, unpack_like_lambda

    built = package("dev", scratch / "dev") / "deployment.zip"
    return built.stat().st_size / 1e6, unpack_like_lambda(built, scratch / "unpacked")


def proxied_call_costs(calls: int = 200) -> tuple[float, float]:
    """Proxied calls through the Chalice app on in-process moto, caches warm: (AWS requests per call,
    handler CPU ms per call). The CPU is this thread's less moto's; the mock upstream answers on its
    own threads, so its CPU is not counted either."""
    fake_aws_env()
    from chalice.test import Client
    from moto import mock_aws

    from local.mock_upstream import MockUpstream

    upstream = MockUpstream()
    url = upstream.start()
    os.environ.update(TOLLGATE_OPENAI_BASE_URL=f"{url}/v1", TOLLGATE_OPENAI_API_KEY="bench", TOLLGATE_ADMIN_KEY="bench")
    with mock_aws():
        from app import app
        from chalicelib.models import create_tables
        from chalicelib.settings import get_settings

        get_settings.cache_clear()
        create_tables()
        with Client(app, stage_name="local") as client:
            created = client.http.post("/admin/keys", headers={"Authorization": "Bearer bench"},
                                       body=json.dumps({"name": "bench", "account": "bench"}))
            key = json.loads(created.body)["key"]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
            for _ in range(20):  # warm the caches and the code paths
                client.http.post("/openai/v1/chat/completions", headers=headers, body=body)
            with metering() as meter:
                started = time.thread_time()
                for _ in range(calls):
                    client.http.post("/openai/v1/chat/completions", headers=headers, body=body)
                cpu = time.thread_time() - started - meter.moto_cpu
    upstream.stop()
    return len(meter.operations) / calls, cpu * 1000 / calls


def measure() -> list[tuple[str, str, str, str]]:
    with tempfile.TemporaryDirectory() as scratch:
        size, sys_path = packaged(Path(scratch))
        imported = import_ms(sys_path)
    calls, cpu_ms = proxied_call_costs()
    return [
        (f"cold import of app.py from the zip (median of {IMPORT_RUNS})", f"{imported:.0f} ms",
         f"≤ {IMPORT_TARGET_MS} ms", "met" if imported <= IMPORT_TARGET_MS else "MISSED"),
        ("Lambda zip (runtime packages left out, bytecode in)", f"{size:.1f} MB", f"≤ {ZIP_TARGET_MB} MB",
         "met" if size <= ZIP_TARGET_MB else "MISSED"),
        ("AWS requests per proxied call, caches warm", f"{calls:.2f}", "1", "met" if calls <= 1 else "MISSED"),
        ("handler CPU per proxied call (moto's share left out)", f"{cpu_ms:.2f} ms", "-", ""),
    ]
