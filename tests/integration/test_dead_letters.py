"""Issue 26: a record in either dead-letter queue (the spill's, the rollup's stream-failure destination) turns
/health degraded, naming the queue, and opens one `dead_letters` alert, locally as in AWS (moto SQS here)."""
import json

import boto3
import pytest

from tests.conftest import ADMIN_KEY
from tests.integration.conftest import reload_settings

QUEUES = {"spill_dead_letters": ("TOLLGATE_SPILL_DLQ_URL", "tollgate-dev-spill-dlq"),
          "rollup_dead_letters": ("TOLLGATE_ROLLUP_DLQ_URL", "tollgate-dev-rollup-dlq")}


@pytest.fixture
def dead_letter_queues(gateway, monkeypatch):
    """Both dead-letter queues, named and configured as the template configures them; their URLs by component."""
    from chalicelib.reports import calls

    sqs, urls = boto3.client("sqs"), {}
    for component, (variable, name) in QUEUES.items():
        urls[component] = sqs.create_queue(QueueName=name)["QueueUrl"]
        monkeypatch.setenv(variable, urls[component])
    reload_settings()
    calls._health_cache.clear()
    yield urls
    calls._health_cache.clear()


def health(gateway):
    from chalicelib.reports import calls

    calls._health_cache.clear()  # a healthy answer is cached 30 s
    response = gateway.client.http.get("/health")
    return response.status_code, json.loads(response.body)


def evaluate(gateway):
    status, result = gateway.admin("post", "/admin/jobs/evaluate", {})
    assert status == 200, result
    return result


def open_alerts(gateway, rule):
    response = gateway.client.http.get("/api/alerts?state=open", headers={"X-Dashboard-Key": ADMIN_KEY})
    return [a for a in json.loads(response.body)["alerts"] if a["rule"] == rule]


def dead_letter_a_stream_record(tmp_path, queue_url):
    """The local pump gives up on a record (a handler that always fails) and sends it to the rollup's queue."""
    from datetime import datetime, timezone
    from decimal import Decimal

    from chalicelib.ledger import calllog
    from local.pump import StreamPump, sqs_dead_letter

    calllog.write(calllog.new_record(
        "call_000001", datetime.now(timezone.utc), "acme", provider="openai", endpoint="embeddings",
        model="text-embedding-3-small", key_id="key-acme", status=200, latency_ms=80, input_tokens=5, output_tokens=0,
        cost_usd=Decimal("0.0000001"), priced=True))

    def broken(event, context):
        raise RuntimeError("the rollup cannot start")

    arn = boto3.client("dynamodb").describe_table(TableName="tollgate-dev-calls")["Table"]["LatestStreamArn"]
    StreamPump(boto3.client("dynamodbstreams"), arn, broken, tmp_path / "checkpoints.json", backoff_seconds=0.001,
               dead_letter=sqs_dead_letter(boto3.client("sqs"), queue_url)).drain()


@pytest.mark.parametrize("component", sorted(QUEUES))
def test_a_record_in_a_dead_letter_queue_degrades_health_and_opens_one_alert(gateway, dead_letter_queues, component,
                                                                            tmp_path):
    assert health(gateway) == (200, {"status": "healthy", "components": health(gateway)[1]["components"]})
    assert health(gateway)[1]["components"][component] == {"status": "ok", "records": 0}
    evaluate(gateway)
    assert open_alerts(gateway, "dead_letters") == []

    sqs, url = boto3.client("sqs"), dead_letter_queues[component]
    if component == "rollup_dead_letters":
        dead_letter_a_stream_record(tmp_path, url)
    else:  # what the spill replay sends when it can never write a record (chalicelib/ledger/calllog.py)
        sqs.send_message(QueueUrl=url, MessageBody='{"call_id": "call_000001"}',
                         MessageAttributes={"reason": {"DataType": "String", "StringValue": "ValidationException"}})

    status, body = health(gateway)
    assert (status, body["status"]) == (503, "degraded")
    assert body["components"][component] == {"status": "dead_lettered", "records": 1}
    other = next(name for name in QUEUES if name != component)
    assert body["components"][other] == {"status": "ok", "records": 0}
    evaluate(gateway), evaluate(gateway)
    [alert] = open_alerts(gateway, "dead_letters")
    assert alert["severity"] == "high" and ": 1" in alert["message"]
    assert ("spill's dead-letter queue" if component == "spill_dead_letters" else "rollup's dead-letter queue") in \
        alert["message"]

    [message] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=600)["Messages"]  # an operator reads it:
    assert health(gateway)[1]["components"][component]["records"] == 1  # still there while in flight
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])  # dealt with
    assert health(gateway)[0] == 200
    assert evaluate(gateway)["resolved"]
    assert open_alerts(gateway, "dead_letters") == []

