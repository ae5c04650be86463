"""What each entry point loads before its first request, so a cold start does not quietly grow back (`make bench`
times it from the zip: bench/footprint.py for app.py, bench/coldstart.py for the proxy function)."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from local.stack import free_port

ROOT = Path(__file__).resolve().parents[2]
# Loaded where they are used: pricing (genai-prices, pydantic), webhook deliveries (httpx), messages (jinja2).
LEFT_FOR_LATER = {"genai_prices", "pydantic", "jinja2"}


def after(statements: str) -> dict:
    """The top-level packages loaded, and the collector's state, in a fresh interpreter after `statements` (and
    `found`, if they set it)."""
    probe = (f"import gc, json, sys\nfound = None\n{statements}\n"
             "print(json.dumps({'packages': sorted({m.split('.')[0] for m in sys.modules}), "
             "'collecting': gc.isenabled(), 'frozen': gc.get_freeze_count(), 'found': found}))")
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


def test_app_leaves_pricing_webhooks_and_messages_to_the_handlers_that_use_them():
    loaded = after("import app")
    assert not (LEFT_FOR_LATER | {"httpx"}) & set(loaded["packages"])
    assert loaded["collecting"] and loaded["frozen"] > 0  # chalicelib/coldstart_gc.py: paused while loading, then back


# Loaded by nothing the proxy process runs (chalicelib/gateway/serve.py, genai_lean.py): uvicorn's and httpx's
# command lines (click, uvicorn's worker supervisors with multiprocessing), and pydantic with what it pulls in.
NOT_IN_THE_PROXY = {"click", "multiprocessing", "pydantic", "pydantic_core", "annotated_types", "typing_inspection"}


def serving() -> dict:
    """The proxy process as run_proxy.sh starts it (its command line), until GET /ready answers 200; then stopped
    with SIGINT, it says what it had loaded. The endpoint refuses at once: the init's budget read fails, and the
    first call reads them again."""
    port = free_port()
    probe = ("import atexit, gc, json, runpy, sys\n"
             "atexit.register(lambda: print(json.dumps({'packages': sorted({m.split('.')[0] for m in sys.modules}), "
             "'modules': sorted(sys.modules), 'collecting': gc.isenabled(), 'frozen': gc.get_freeze_count()})))\n"
             f"sys.argv = ['serve', '--host', '127.0.0.1', '--port', '{port}', '--no-access-log', '--log-level', "
             "'warning', '--timeout-graceful-shutdown', '1', 'chalicelib.gateway.proxy_app:app']\n"
             "runpy.run_module('chalicelib.gateway.serve', run_name='__main__')\n")
    env = {**os.environ, "TOLLGATE_AWS_ENDPOINT": "http://127.0.0.1:9", "AWS_MAX_ATTEMPTS": "1",
           "TOLLGATE_OPENAI_API_KEY_PARAMETER": "/tollgate/dev/openai-api-key"}
    server = subprocess.Popen([sys.executable, "-c", probe], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        for _ in range(600):
            assert server.poll() is None, server.communicate()[1][-3000:]
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                time.sleep(0.05)
        server.send_signal(signal.SIGINT)
        out, err = server.communicate(timeout=30)
    finally:
        if server.poll() is None:
            server.kill()
            server.communicate()
    return json.loads(out.splitlines()[-1])


def test_the_proxy_process_loads_pricing_in_init_and_collects_once_it_serves():
    """chalicelib/gateway/serve.py as run_proxy.sh runs it: the price data and the clients are made before GET /ready
    (chalicelib/gateway/warmup.py), and no boto3 is needed for them; genai-prices without pydantic, and
    uvicorn without its command line."""
    loaded = serving()
    assert {"genai_prices", "starlette", "botocore", "uvicorn"} <= set(loaded["packages"])
    assert not {"boto3", "jinja2"} & set(loaded["packages"])
    assert not NOT_IN_THE_PROXY & set(loaded["packages"])
    assert "httpx2._client" not in loaded["modules"], "genai-prices loaded the HTTP client of its updater"
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


def test_genai_prices_without_pydantic_prices_every_bundled_model_as_with_it():
    """chalicelib/gateway/genai_lean.py imports genai-prices with markers standing in for pydantic: every model of
    its bundled data, at each tier of a long context, costs the same as with genai-prices imported as it comes."""
    price_all = ("from datetime import datetime, timezone\n"
                 "from genai_prices import Usage, calc_price, data_snapshot\n"
                 "at, found = datetime(2026, 11, 1, tzinfo=timezone.utc), {}\n"
                 "for provider in data_snapshot.get_snapshot().providers:\n"
                 "    for model in provider.models:\n"
                 "        for tokens in (1000, 300000):\n"
                 "            usage = Usage(input_tokens=tokens, cache_read_tokens=tokens // 4, output_tokens=500)\n"
                 "            try:\n"
                 "                cost = str(calc_price(usage, model.id, provider_id=provider.id,\n"
                 "                                      genai_request_timestamp=at).total_price)\n"
                 "            except (LookupError, ValueError) as exc:\n"
                 "                cost = type(exc).__name__\n"
                 "            found[f'{provider.id} {model.id} {tokens}'] = cost\n")
    as_it_comes = after(f"import pydantic\n{price_all}")
    lean = after(f"from chalicelib.gateway import genai_lean\ngenai_lean.ensure()\n{price_all}")
    assert "pydantic" in as_it_comes["packages"] and "pydantic" not in lean["packages"]
    assert lean["found"] == as_it_comes["found"] and len(lean["found"]) > 1000


def test_an_absent_optional_module_is_searched_for_once_not_on_every_call():
    """The zip has no sniffio, and httpcore imports it for every lock it sets up: after the proxy's init, the
    warm path's locks search no path for it (each search costs ~0.1 ms of a 0.29-vCPU proxy's call)."""
    loaded = after("import asyncio, importlib.abc, sys\n"
                   "class Absent(importlib.abc.MetaPathFinder):\n"
                   "    searched = 0\n"
                   "    def find_spec(self, name, path=None, target=None):\n"
                   "        if name == 'sniffio':\n"
                   "            Absent.searched += 1\n"
                   "            raise ModuleNotFoundError(name)\n"
                   "sys.modules.pop('sniffio', None)\n"
                   "sys.meta_path.insert(0, Absent())\n"
                   "from chalicelib.gateway import warmup\n"
                   "warmup.settle_optional_imports()\n"
                   "Absent.searched = 0\n"
                   "from httpcore._synchronization import AsyncLock\n"
                   "async def calls():\n"
                   "    for _ in range(5):\n"
                   "        async with AsyncLock():\n"
                   "            pass\n"
                   "asyncio.run(calls())\n"
                   "found = Absent.searched")
    assert loaded["found"] == 0
