"""Cold start and footprint: import time of app.py, the Lambda zip's size, AWS calls per proxied request."""
from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
IMPORT_RUNS = 5
IMPORT_TARGET_MS = 250
ZIP_TARGET_MB = 15


def import_ms() -> float:
    """Median over a few fresh interpreters of `python -X importtime -c 'import app'` (cumulative µs of app)."""
    env = {**os.environ, "AWS_DEFAULT_REGION": "us-east-1", "POWERTOOLS_METRICS_DISABLED": "true"}
    runs = []
    for _ in range(IMPORT_RUNS):
        done = subprocess.run([sys.executable, "-X", "importtime", "-c", "import app"], cwd=ROOT, env=env,
                              capture_output=True, text=True, check=True)
        line = next(l for l in reversed(done.stderr.splitlines()) if re.search(r"\|\s+app$", l))
        runs.append(int(line.split("|")[1]) / 1000)
    return statistics.median(runs)


def zip_mb() -> float:
    from infra.package import package

    with tempfile.TemporaryDirectory() as out:
        built = package("dev", Path(out) / "dev")
        return (built / "deployment.zip").stat().st_size / 1e6


def aws_calls_per_request() -> float:
    """Proxied calls through the Chalice app on in-process moto, caches warm: AWS requests per call."""
    from bench.rollup import _fake_aws_env

    _fake_aws_env()
    import botocore.endpoint
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
        seen = []
        original = botocore.endpoint.Endpoint.make_request

        def counting(self, operation_model, request_dict):
            seen.append(operation_model.name)
            return original(self, operation_model, request_dict)

        with Client(app, stage_name="local") as client:
            created = client.http.post("/admin/keys", headers={"Authorization": "Bearer bench"},
                                       body=json.dumps({"name": "bench", "account": "bench"}))
            key = json.loads(created.body)["key"]
            headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
            body = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]})
            client.http.post("/openai/v1/chat/completions", headers=headers, body=body)  # warm the caches
            botocore.endpoint.Endpoint.make_request = counting
            try:
                for _ in range(100):
                    client.http.post("/openai/v1/chat/completions", headers=headers, body=body)
            finally:
                botocore.endpoint.Endpoint.make_request = original
    upstream.stop()
    return len(seen) / 100


def measure() -> list[tuple[str, str, str, str]]:
    imported, size, calls = import_ms(), zip_mb(), aws_calls_per_request()
    return [
        ("cold import of app.py (median of 5)", f"{imported:.0f} ms", f"≤ {IMPORT_TARGET_MS} ms",
         "met" if imported <= IMPORT_TARGET_MS else "MISSED"),
        ("Lambda zip (runtime packages left out)", f"{size:.1f} MB", f"≤ {ZIP_TARGET_MB} MB",
         "met" if size <= ZIP_TARGET_MB else "MISSED"),
        ("AWS requests per proxied call, caches warm", f"{calls:.2f}", "1", "met" if calls <= 1 else "MISSED"),
    ]
