"""Rollup writes per call: calls over 5 accounts × 3 models in one hour, folded in batches of 1, 10, 100.

In-process moto (DynamoDB with streams); the real stream records go through the real handler, and
every UpdateItem the handler sends is counted against the small items the batch's calls touch (the
fold's keys): each is written once a batch, none twice. What those writes cost in write units at
1,000 and 10,000 calls/s is bench/capacity.py's.
"""
from __future__ import annotations

import random
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from bench import sized
from bench.harness import fake_aws_env, metering

CALLS = sized(300, 30)
BATCH_SIZES = (1, 10, 100)


def _fact(record: dict):
    """The fact the handler folds from a stream record (its stream's label names the lane)."""
    from chalicelib.ledger.models import CallRecord
    from chalicelib.rollup.fold import Fact

    return Fact.from_call(CallRecord.from_raw_data(record["dynamodb"]["NewImage"]), 1,
                          int(record["dynamodb"]["SequenceNumber"]), record["eventSourceARN"].rsplit("/stream/", 1)[-1])


def measure() -> list[tuple[str, str, str, str]]:
    fake_aws_env()
    import boto3
    from moto import mock_aws

    with mock_aws():
        from app import rollup_calls
        from chalicelib.ledger import calllog
        from chalicelib.ledger.models import CallRecord
        from chalicelib.rollup.fold import fold
        from local.pump import lambda_record
        from local.tables import create_tables

        create_tables()
        rng = random.Random(1)
        hour = datetime.now(timezone.utc).replace(minute=0, second=0, microsecond=0)
        for n in range(CALLS):
            account = f"acct-{n % 5}"
            calllog.write(calllog.new_record(
                f"call_{n:06d}", hour + timedelta(seconds=rng.randrange(3600)), account, provider="openai",
                endpoint="chat/completions", model=f"model-{n % 3}", key_id=f"key-{account}", status=200,
                input_tokens=100, output_tokens=20, cost_usd=Decimal("0.001"), priced=True, latency_ms=300))
        arn = boto3.client("dynamodb").describe_table(TableName=CallRecord.Meta.table_name)["Table"]["LatestStreamArn"]
        streams = boto3.client("dynamodbstreams")
        shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")
        records = [lambda_record(r, arn) for r in streams.get_records(
            ShardIterator=iterator["ShardIterator"], Limit=1000)["Records"]]

        rows = []
        with metering() as meter:
            for size in BATCH_SIZES:
                boto3.client("dynamodb").delete_table(TableName="tollgate-dev-aggregates")
                create_tables()
                meter.reset()
                touched, cpu = 0, 0.0
                for start in range(0, len(records), size):
                    batch = records[start:start + size]
                    started = time.process_time()  # every thread's: the handler's writers included
                    rollup_calls({"Records": batch}, None)
                    cpu += time.process_time() - started
                    touched += len(fold([_fact(record) for record in batch]))
                writes = meter.operations.count("UpdateItem")
                per_call = writes / len(records)
                own_ms = (cpu - meter.moto_cpu) * 1000 / max(1, writes)
                verdict = "met" if writes == touched else "MISSED"
                rows.append((str(size), str(writes), f"{per_call:.3f}", f"{own_ms:.2f}",
                             f"= {touched:,} items touched: {verdict}"))
    return rows
