"""Plain helpers shared by the integration test modules (fixtures are in conftest.py): so no test module imports
another."""
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3

from chalicelib.ledger import calllog
from chalicelib.rollup.fold import Fact, fold
from tests.integration.conftest import stream_records

# The two proxy routes by the error format their callers expect: (path, a minimal body).
ROUTES = {
    "openai": ("/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}),
    "anthropic": ("/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}),
}


def error_of(flavour, response):
    """(type, message) from an error body, checking it has the caller's wire shape."""
    body = json.loads(response.body)
    if flavour == "anthropic":
        assert body["type"] == "error"
    else:
        assert set(body) == {"error"} and "param" in body["error"]
    return body["error"]["type"], body["error"]["message"]


def handler(records):
    """The rollup as Lambda runs it on a batch of call-log stream records."""
    from app import rollup_calls

    return rollup_calls({"Records": records}, None)


def roll_up():
    """Fold every call logged so far into the aggregates."""
    assert handler(stream_records()) == {"batchItemFailures": []}


def log(n, minutes_ago, account="acme", model="gpt-4o", provider="openai", cost="0.01", status=200, user=None,
        at=None, **more):
    """Write call `n` to the call log, `minutes_ago` before now (or `at`)."""
    record = calllog.new_record(
        f"call_{n:06d}", at or datetime.now(timezone.utc) - timedelta(minutes=minutes_ago), account, provider=provider,
        endpoint="chat/completions", model=model, key_id=f"key-{account}", user=user, status=status,
        error_type=None if status < 400 else "server_error", input_tokens=100, cache_read_tokens=50,
        output_tokens=10, reasoning_tokens=5, cost_usd=Decimal(cost), priced=True, latency_ms=200 + n, **more)
    calllog.write(record)
    return record


def stored_counters():
    """Every aggregate item's counters, zeros dropped, keyed like the fold."""
    from boto3.dynamodb.types import TypeDeserializer

    out = {}
    for item in boto3.client("dynamodb").scan(TableName="tollgate-dev-aggregates")["Items"]:
        plain = {k: TypeDeserializer().deserialize(v) for k, v in item.items()}
        kind, scope_id = plain["pk"].split("#", 1)
        if kind == "config":  # settings and the merge's marks, not aggregates
            continue
        counters = {k: v for k, v in plain.items() if k not in ("pk", "day", "kind", "day_id")
                    and not k.startswith("hw|") and v != 0}
        if counters:
            _add(out, (kind, scope_id, _unsharded(plain["day"])), counters)
    return out


def _unsharded(sort_key):
    """A sort key without its write shard: the fold here does not know the stream's label that picks it."""
    head, mark, shard = sort_key.rpartition("~")
    return head if mark and len(shard) == 2 and shard.isdigit() else sort_key


def _add(out, key, counters):
    summed = out.setdefault(key, {})
    for name, value in counters.items():
        summed[name] = summed.get(name, 0) + value
        if summed[name] == 0:
            del summed[name]


def expected_counters(calls):
    """What the aggregates should hold for `calls`: the pure fold, keyed like `stored_counters`."""
    out = {}
    for k, d in fold([Fact.from_call(c) for c in calls]).items():
        if d.nonzero():
            _add(out, (k.kind, k.scope_id, _unsharded(k.sort_key)), d.nonzero())
    return {key: counters for key, counters in out.items() if counters}


def sns_messages(queue):
    """The alert messages the SNS topic delivered to the test's SQS queue (the `channels` fixture)."""
    messages = boto3.client("sqs").receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]
