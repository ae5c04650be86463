"""SDK calls through the stack → the stream pump → aggregates: the reports agree with the call log."""
import subprocess
import sys
import time
from datetime import date, timedelta
from decimal import Decimal

import httpx
import openai

from tests.conftest import ADMIN_KEY, ROOT


def report(stack, path):
    response = httpx.get(stack.url + path, headers={"X-Dashboard-Key": ADMIN_KEY})
    assert response.status_code == 200, response.text
    return response.json()


def test_summary_and_daily_match_the_call_log(stack, gateway_key, upstream):
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=gateway_key)
    for model in ("gpt-4o", "gpt-4o-mini", "gpt-4o-mini"):
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "count me"}])
    calls = stack.every_call()
    expected = {}
    for call in calls:  # a call refused before its body was read (bad JSON, say) has no model: `(none)`
        model = call["model"] if call["model"] is not None else "(none)"
        expected[model] = expected.get(model, 0) + 1
    # One batch writes the global item first and the model items after it: wait for both.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        summary = report(stack, "/api/summary?hours=24")
        by_model = calls_by_model(report(stack, "/api/usage/daily?days=2&group_by=model"))
        if summary["calls"] == len(calls) and by_model == expected:
            break
        time.sleep(0.2)  # the pump polls every 0.5 s
    assert summary["calls"] == len(calls)
    assert Decimal(summary["cost_usd"]) == sum(Decimal(c["cost_usd"] or 0) for c in calls)
    assert summary["tokens"]["input_tokens"] == sum(c["input_tokens"] for c in calls)
    # Failed calls are the provider's errors or the gateway's own refusals (a budget, a bad body), never both.
    assert summary["errors"] + summary["refused"] == sum(1 for c in calls if c["status"] >= 400 or c["error_type"])
    assert by_model == expected


def calls_by_model(daily):
    by_model = {}
    for day in daily["daily"]:
        for model, group in day["groups"].items():
            by_model[model] = by_model.get(model, 0) + group["calls"]
    return by_model


def test_cli_runs_jobs_with_progress(stack):
    env = {"TOLLGATE_URL": stack.url, "TOLLGATE_ADMIN_KEY": ADMIN_KEY, "PATH": "/usr/bin:/bin"}
    days_ago = [(date.today() - timedelta(days=n)).isoformat() for n in (3, 2)]
    done = subprocess.run([sys.executable, "cli.py", "recalculate", "--from", days_ago[0], "--to", days_ago[1]],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "2/2" in done.stderr and '"days": 2' in done.stdout
    check = subprocess.run([sys.executable, "cli.py", "reconcile", "--day", days_ago[1]], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0 and '"drift": []' in check.stdout
    refused = subprocess.run([sys.executable, "cli.py", "recalculate", "--from", date.today().isoformat()],
                             cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert refused.returncode != 0 and "closed days" in refused.stderr
    again = subprocess.run([sys.executable, "cli.py", "reprice", "--start", days_ago[0], "--end",
                            date.today().isoformat(), "--provider", "openai"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert "4/4" in again.stderr and '"calls_repriced": 0' in again.stdout  # prices unchanged: nothing to write
    too_old = subprocess.run([sys.executable, "cli.py", "reprice", "--start", "2020-01-01"], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=60)
    assert too_old.returncode != 0 and "retention" in too_old.stderr
