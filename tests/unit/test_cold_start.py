"""What each entry point loads before its first request, so a cold start does not quietly grow back (`make bench`
times it from the zip: bench/footprint.py for app.py, bench/coldstart.py for the proxy function)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Loaded where they are used: pricing (genai-prices, pydantic), webhook deliveries (httpx), messages (jinja2).
LEFT_FOR_LATER = {"genai_prices", "pydantic", "jinja2"}


def after(statements: str) -> dict:
    """The top-level packages loaded, and the collector's state, in a fresh interpreter after `statements`."""
    probe = (f"import gc, json, sys\n{statements}\n"
             "print(json.dumps({'packages': sorted({m.split('.')[0] for m in sys.modules}), "
             "'collecting': gc.isenabled(), 'frozen': gc.get_freeze_count()}))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_app_leaves_pricing_webhooks_and_messages_to_the_handlers_that_use_them():
    loaded = after("import app")
    assert not (LEFT_FOR_LATER | {"httpx"}) & set(loaded["packages"])
    assert loaded["collecting"] and loaded["frozen"] > 0  # chalicelib/coldstart_gc.py: paused while loading, then back


def test_the_proxy_process_loads_pricing_in_init_and_collects_once_it_serves():
    """chalicelib/gateway/serve.py as run_proxy.sh runs it, with uvicorn's own entry point standing in: the price data
    and the clients are made before GET /ready (chalicelib/gateway/warmup.py), and no boto3 is needed for them.
    The endpoint refuses at once: the budgets' read fails, and the first call reads them again."""
    loaded = after("import os\n"
                   "os.environ['TOLLGATE_AWS_ENDPOINT'] = 'http://127.0.0.1:9'\n"
                   "os.environ['TOLLGATE_OPENAI_API_KEY_PARAMETER'] = '/tollgate/dev/openai-api-key'\n"
                   "import uvicorn\n"
                   "uvicorn.main = lambda: None\n"
                   "from chalicelib.gateway import serve\n"
                   "serve.main()\n"
                   "assert 'httpx2._client' not in sys.modules, 'genai-prices loaded the HTTP client of its updater'")
    assert {"genai_prices", "starlette", "botocore"} <= set(loaded["packages"])
    assert not {"boto3", "jinja2"} & set(loaded["packages"])
    assert loaded["collecting"] and loaded["frozen"] > 0


def test_the_proxy_prices_its_first_call_all_the_same(event):
    """genai-prices is loaded by the first call that needs it."""
    loaded = after("from chalicelib.gateway import proxy\n"
                   "from chalicelib.gateway.providers import get_adapter\n"
                   "adapter = get_adapter('openai')\n"
                   f"body = {event('openai_chat_cached_reasoning.json')!r}\n"
                   "usage, model = adapter.parse_usage(adapter.endpoint('chat/completions'), body)\n"
                   "from chalicelib.gateway import pricing\n"
                   "from datetime import datetime, timezone\n"
                   "assert pricing.price_call('openai', model, usage, datetime.now(timezone.utc)).priced")
    assert "genai_prices" in loaded["packages"]
