"""Nothing that reached upstream is lost: retry, spill to SQS, replay exactly once; one write per call."""
import json
import logging

import boto3

from chalicelib.ledger import calllog
from chalicelib.ledger.models import CallRecord
from local.pump import drain_spill_queue

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def spill_messages():
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="tollgate-dev-spill")["QueueUrl"]
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])
               ["Attributes"]["ApproximateNumberOfMessages"])


def test_a_failed_first_put_is_retried_and_logged_once(gateway, upstream, dynamo_faults):
    key = gateway.new_key()
    injected = dynamo_faults.fail("PutItem", times=1)
    response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 200 and injected["PutItem"] == 1
    assert len(list(CallRecord.scan())) == 1 and spill_messages() == 0


def test_when_dynamodb_keeps_failing_the_call_spills_and_is_replayed_once(gateway, upstream, dynamo_faults):
    key = gateway.new_key()
    injected = dynamo_faults.fail("PutItem", times=100, code="InternalServerError", status=500)
    response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 200 and json.loads(response.body)["choices"]  # the caller got the answer
    assert injected["PutItem"] == 3  # one try + botocore's two retries, then the spill
    assert list(CallRecord.scan()) == [] and spill_messages() == 1
    dynamo_faults.clear()

    assert drain_spill_queue() == {"replayed": 1, "duplicates": 0}
    [call] = CallRecord.scan()
    assert call.call_id == response.headers["X-Tollgate-Call-Id"] and call.cost_usd > 0
    assert spill_messages() == 0


def test_spill_replay_through_the_sqs_handler_is_idempotent(gateway, upstream, dynamo_faults):
    key = gateway.new_key()
    dynamo_faults.fail("PutItem", times=100, code="InternalServerError", status=500)
    gateway.call("/openai/v1/chat/completions", CHAT, key)
    dynamo_faults.clear()
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName="tollgate-dev-spill")["QueueUrl"]
    body = sqs.receive_message(QueueUrl=url)["Messages"][0]["Body"]
    event = gateway.client.events.generate_sqs_event(message_bodies=[body, body], queue_name="tollgate-dev-spill")
    gateway.client.lambda_.invoke("replay_spill", event)
    gateway.client.lambda_.invoke("replay_spill", event)  # SQS redelivers: still one call
    assert len(list(CallRecord.scan())) == 1


def test_with_both_stores_down_the_record_goes_to_the_log(gateway, upstream, dynamo_faults, monkeypatch, caplog):
    key = gateway.new_key()
    dynamo_faults.fail("PutItem", times=100, code="InternalServerError", status=500)
    monkeypatch.setenv("TOLLGATE_SPILL_QUEUE_URL", "https://sqs.us-east-1.amazonaws.com/123456789012/missing")
    from chalicelib.settings import get_settings
    get_settings.cache_clear()
    with caplog.at_level(logging.ERROR):
        response = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert response.status_code == 200
    lost = [r for r in caplog.records if "replay it from this log line" in r.getMessage()]
    assert len(lost) == 1
    record = CallRecord.from_raw_data(json.loads(lost[0].call_record))
    assert record.call_id == response.headers["X-Tollgate-Call-Id"]


def test_a_retry_after_an_ambiguous_success_is_not_a_second_call(aws_env):
    from datetime import datetime, timezone

    record = calllog.new_record("call_x", datetime.now(timezone.utc), "acme", provider="openai",
                                endpoint="chat/completions", key_id="k", status=200, latency_ms=1)
    assert calllog.write(record) == "written"
    assert calllog.write(record) == "written"
    assert calllog.replay_bodies([json.dumps(record.serialize())]) == {"replayed": 0, "duplicates": 1}
    assert len(list(CallRecord.scan())) == 1


def test_one_aws_call_per_proxied_request_with_warm_caches(gateway, upstream, aws_calls):
    key = gateway.new_key()
    gateway.call("/openai/v1/chat/completions", CHAT, key)  # warms the key cache
    aws_calls.clear()
    for body in (CHAT, {**CHAT, "stream": True}):
        gateway.call("/openai/v1/chat/completions", body, key)
    gateway.call("/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5, "messages": []}, key)
    assert aws_calls == ["PutItem", "PutItem", "PutItem"]


def test_cold_caches_cost_one_get_one_budget_scan_and_one_rate_limit_query(gateway, upstream, aws_calls):
    key = gateway.new_key()
    from chalicelib.ledger.budgets import budget_cache
    from chalicelib.ledger.auth import key_cache
    from chalicelib.ledger.rate_limits import limit_cache
    key_cache.clear()
    budget_cache.clear()
    limit_cache.clear()
    aws_calls.clear()
    gateway.call("/openai/v1/chat/completions", CHAT, key)
    gateway.call("/openai/v1/chat/completions", CHAT, key)
    gateway.call("/openai/v1/chat/completions", CHAT, "tg-000000000000_unknown")
    gateway.call("/openai/v1/chat/completions", CHAT, "tg-000000000000_unknown")  # negative cache
    # the container's first 401 is counted at once (UpdateItem); the next waits for a write every few seconds
    assert aws_calls == ["GetItem", "Scan", "Query", "PutItem", "PutItem", "GetItem", "UpdateItem"]


def _one_day_of_calls(count):
    """`count` calls of yesterday over three accounts, one a second, with ids as the gateway makes them."""
    from datetime import datetime, timedelta, timezone

    start = datetime.now(timezone.utc).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=1)
    with CallRecord.batch_write() as batch:
        records = []
        for n in range(count):
            ts = start + timedelta(seconds=n)
            call_id = calllog.new_call_id(ts)
            records.append(calllog.new_record(call_id, ts, f"acct{n % 3}", provider="openai", endpoint="chat/completions",
                                              key_id="k", status=200, latency_ms=1))
            batch.save(records[-1])
    return records


def test_a_days_calls_spread_over_the_shards_and_are_read_back_merged_exactly_once(aws_env):
    records = _one_day_of_calls(200)
    day, newest = records[0].day, [r.sk for r in reversed(records)]
    assert len({r.day_shard for r in records}) > calllog.DAY_SHARDS // 2
    assert all(r.day_shard.startswith(f"{day}#") for r in records)
    assert [r.sk for r in calllog.calls_of_day(day)] == newest
    assert [r.sk for r in calllog.calls_of_day(day, newest_first=False)] == newest[::-1]
    assert [r.sk for r in calllog.calls_of_day(day, limit=25)] == newest[:25]
    window = CallRecord.sk.between(records[50].sk, records[99].sk)
    assert [r.sk for r in calllog.calls_of_day(day, window)] == newest[100:150]
    assert [r.sk for r in calllog.calls_of_day(day, window, CallRecord.account == "acct0", limit=5)] == [
        sk for sk, r in zip(newest[100:150], records[99:49:-1]) if r.account == "acct0"][:5]


def test_every_accounts_calls_page_through_the_shards_and_one_call_is_one_query(aws_env, aws_calls):
    records = _one_day_of_calls(120)
    newest = [r.sk for r in reversed(records)]
    first = list(calllog.recent_calls(limit=50))
    rest = list(calllog.recent_calls(limit=100, before=first[-1].sk))
    assert [r.sk for r in first + rest] == newest
    aws_calls.clear()
    assert calllog.find_call(records[7].call_id).sk == records[7].sk
    assert aws_calls == ["Query"]


def test_a_record_spilled_before_the_shards_gets_its_shard_on_replay(aws_env):
    record = _one_day_of_calls(1)[0]
    record.delete()
    body = record.serialize()
    del body["day_shard"]
    assert calllog.replay_bodies([json.dumps(body)]) == {"replayed": 1, "duplicates": 0}
    assert [r.call_id for r in calllog.calls_of_day(record.day)] == [record.call_id]
