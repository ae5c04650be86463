"""`make run` as a user meets it: built-in mock upstream, a printed demo key, state kept across a restart."""
import time

import httpx
import openai

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import RunningStack


def test_defaults_serve_the_sdk_and_survive_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    first = RunningStack({}, data_dir).start()
    try:
        demo_key = first.banner_value("Demo key")
        assert first.banner_value("Admin key") and "curl" in first.output.read_text()
        client = openai.OpenAI(base_url=f"{first.url}/openai/v1", api_key=demo_key)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert "mock answer" in answer.choices[0].message.content
        [call] = first.calls()
        assert call["account"] == "demo" and call["priced"] and call["input_tokens"] > 0
        assert httpx.get(f"{first.url}/health").json()["status"] == "healthy"
        assert summary_calls(first, expect=1) == 1
    finally:
        output = first.stop()
    assert "saving state" in output

    second = RunningStack({}, data_dir, port=first.port).start()
    try:
        assert second.banner_value("Demo key") == demo_key  # same key after a restart
        assert [c["call_id"] for c in second.calls()] == [call["call_id"]]
        client = openai.OpenAI(base_url=f"{second.url}/openai/v1", api_key=demo_key)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}])
        assert len(second.calls()) == 2
        # restored items reach the new stream too: the pump must not count them again
        assert summary_calls(second, expect=2) == 2
    finally:
        second.stop()


def summary_calls(stack, expect, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        calls = httpx.get(f"{stack.url}/api/summary?hours=24", headers={"X-Dashboard-Key": ADMIN_KEY}).json()["calls"]
        if calls == expect or time.monotonic() > deadline:
            time.sleep(1.5)  # and it stays there once the pump has caught up
            return httpx.get(f"{stack.url}/api/summary?hours=24",
                             headers={"X-Dashboard-Key": ADMIN_KEY}).json()["calls"]
        time.sleep(0.2)


def test_tiny_costs_fold_and_a_dead_letter_degrades_health_and_opens_an_alert(tmp_path):
    """Issue 26: three ~5-token embedding calls, each rolled up on its own by the pump, sum exactly (moto once wrote
    `2E-7` and failed the next ADD); a record in the rollup's dead-letter queue turns /health degraded and opens
    one alert; and the log holds no traceback."""
    from decimal import Decimal

    import boto3

    from chalicelib.money import money

    stack = RunningStack({}, tmp_path / "data").start()
    try:
        client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=stack.banner_value("Demo key"))
        costs = []
        for n in range(1, 4):
            answer = client.embeddings.with_raw_response.create(model="text-embedding-3-small", input="a tiny cost")
            costs.append(Decimal(answer.headers["x-tollgate-cost-usd"]))
            assert summary_calls(stack, expect=n) == n
        assert max(costs) < Decimal("0.000001")
        summary = httpx.get(f"{stack.url}/api/summary?hours=1", headers={"X-Dashboard-Key": ADMIN_KEY}).json()
        assert summary["cost_usd"] == money(sum(costs))

        sqs = boto3.client("sqs", endpoint_url=stack.banner_value("AWS (moto)"), region_name="us-east-1",
                           aws_access_key_id="local", aws_secret_access_key="local")
        queue = sqs.get_queue_url(QueueName="tollgate-dev-rollup-dlq")["QueueUrl"]
        sqs.send_message(QueueUrl=queue, MessageBody='{"condition": "RetryAttemptsExhausted"}')
        health = httpx.get(f"{stack.url}/health")
        assert health.status_code == 503
        assert health.json()["components"]["rollup_dead_letters"] == {"status": "dead_lettered", "records": 1}
        assert health.json()["components"]["spill_dead_letters"] == {"status": "ok", "records": 0}
        deadline, opened = time.monotonic() + 15, []
        while not opened and time.monotonic() < deadline:  # the scheduler evaluates every second here
            time.sleep(0.5)
            alerts = httpx.get(f"{stack.url}/api/alerts?state=open", headers={"X-Dashboard-Key": ADMIN_KEY}).json()
            opened = [a for a in alerts["alerts"] if a["rule"] == "dead_letters"]
        assert len(opened) == 1
    finally:
        output = stack.stop()
    assert "Traceback" not in output and "dead-lettered" not in output
