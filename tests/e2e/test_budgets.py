"""On the local stack: a tiny hard budget → one alert that escalates threshold by threshold, one message per
step on Slack and the webhook (a local sink), then 429; acknowledge; raise the limit → the alert resolves
and calls flow again; reruns send nothing."""
import re
import time

import httpx
import openai
import pytest

from tests.conftest import ADMIN_KEY, UPSTREAM_KEY
from tests.e2e.conftest import RunningStack
from tests.sink import Sink

USAGE = {"prompt_tokens": 1200, "completion_tokens": 300}  # gpt-4o: $0.006 a call


def wait_for(condition, seconds=15):
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.25)


THRESHOLD_TITLE = re.compile(r"^Budget \S+ at \d+ %")  # not the forecast alert, which depends on timing


def budget_titles(sink, path):
    return sorted(m["title"] for m in sink.at(path) if THRESHOLD_TITLE.search(m.get("title", "")))


def slack_titles(sink):
    titles = (m["attachments"][0]["blocks"][0]["text"]["text"] for m in sink.at("/slack"))
    return sorted(t for t in titles if THRESHOLD_TITLE.search(t))


@pytest.fixture
def alerting_stack(fake_upstream, tmp_path):
    sink = Sink()
    env = {"TOLLGATE_OPENAI_BASE_URL": f"{fake_upstream.url}/v1", "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY,
           "TOLLGATE_SLACK_WEBHOOK_URL": f"{sink.url}/slack", "TOLLGATE_ALERT_WEBHOOK_URL": f"{sink.url}/webhook",
           "TOLLGATE_SCHEDULE_SECONDS": "1"}
    stack = RunningStack(env, tmp_path / "data").start()
    yield stack, sink
    stack.stop()
    sink.stop()


def test_hard_budget_alerts_once_per_threshold_then_blocks(alerting_stack, upstream):
    """One alert for the budget's day: opened at 50 %, escalated at 100 %, resolved when the limit is raised."""
    stack, sink = alerting_stack
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    key = stack.admin("POST", "/admin/keys", json={"name": "e2e", "account": "small"}).json()["key"]
    budget = {"scope": "account", "scope_id": "small", "period": "daily", "limit_usd": "0.01",
              "thresholds": [0.5, 1.0], "mode": "hard", "channels": ["slack", "webhook"]}
    assert httpx.put(f"{stack.url}/admin/budgets/small-daily", json=budget, headers=admin).status_code == 200
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=key, max_retries=0)

    upstream.enqueue(usage=USAGE)
    client.chat.completions.create(model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "spend"}])  # 60 %
    wait_for(lambda: budget_titles(sink, "/webhook") == ["Budget small-daily at 50 % (account small)"])
    upstream.enqueue(usage=USAGE)
    client.chat.completions.create(model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "spend"}])  # 120 %
    refusal = first_refusal(client)  # within seconds: the rollup blocks it, not the schedule
    assert refusal.status_code == 429 and refusal.body["code"] == "budget_exceeded"
    assert int(refusal.response.headers["retry-after"]) > 0

    wait_for(lambda: len(budget_titles(sink, "/webhook")) == 2)
    assert [(m["event"], m["title"]) for m in sink.at("/webhook") if THRESHOLD_TITLE.search(m["title"])] == [
        ("alert.opened", "Budget small-daily at 50 % (account small)"),
        ("alert.escalated", "Budget small-daily at 100 % (account small)")]
    assert slack_titles(sink) == budget_titles(sink, "/webhook")
    time.sleep(3)  # several more scheduler runs: nothing new
    assert len(budget_titles(sink, "/webhook")) == 2 and len(slack_titles(sink)) == 2

    dashboard = {"X-Dashboard-Key": ADMIN_KEY}
    open_alerts = httpx.get(f"{stack.url}/api/alerts?state=open", headers=dashboard).json()["alerts"]
    [budget_alert] = [a for a in open_alerts if a["rule"] == "budget"]
    assert budget_alert["level"] == 2 and budget_alert["severity"] == "critical"
    ack = httpx.post(f"{stack.url}/api/alerts/{budget_alert['alert_id']}/ack", headers=dashboard)
    assert ack.status_code == 200 and ack.json()["state"] == "acknowledged"

    budget["limit_usd"] = "100"
    assert httpx.put(f"{stack.url}/admin/budgets/small-daily", json=budget, headers=admin).status_code == 200
    wait_for(lambda: [m["message"] for m in sink.at("/webhook") if m["event"] == "alert.resolved"
                      and THRESHOLD_TITLE.search(m["title"].removeprefix("Resolved: "))] == [
        "Spend is now $0.012 of $100 (0.01 %), under every threshold."])
    wait_for(lambda: _allowed(client), seconds=20)
    assert all(a["state"] == "resolved" for a in httpx.get(f"{stack.url}/api/alerts?state=all", headers=dashboard)
               .json()["alerts"] if a["rule"] == "budget")


def first_refusal(client, seconds=15):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            client.chat.completions.create(model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "again"}])
        except openai.RateLimitError as refusal:
            return refusal
        time.sleep(0.25)
    raise AssertionError("the hard budget never refused a call")


def _allowed(client):
    try:
        client.chat.completions.create(model="gpt-4o", max_tokens=100, messages=[{"role": "user", "content": "ok?"}])
        return True
    except openai.RateLimitError:
        return False
