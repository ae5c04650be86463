"""The moto adjustments in local/moto_tuning.py keep DynamoDB's rules: the 400 KB item limit, and index
pages filled by index entries, so reports over full aggregate items answer as they would in AWS; and moto
keeps what AWS keeps, not everything, so the local stack's memory levels off."""
import gc
from datetime import date, timedelta

import boto3
import pytest
from botocore.exceptions import ClientError

from chalicelib.rollup import store

TABLE = "tollgate-dev-aggregates"


def aggregate(kind, scope_id, day, attributes):
    """An aggregate item with `attributes` counters of ~38 bytes each."""
    item = {"pk": {"S": f"{kind}#{scope_id}"}, "day": {"S": day}, "kind": {"S": kind},
            "day_id": {"S": f"{day}#{scope_id}"}, "calls": {"N": "7"}}
    item.update({f"m{n:04d}|b|model|some-model-name|calls": {"N": "12345"} for n in range(attributes)})
    return item


def test_the_item_size_limit_still_holds(aws_env):
    client = boto3.client("dynamodb")
    client.put_item(TableName=TABLE, Item=aggregate("global", "all", "2026-01-01", 9_000))  # ~340 KB
    with pytest.raises(ClientError) as refused:
        client.put_item(TableName=TABLE, Item=aggregate("global", "all", "2026-01-02", 12_000))  # ~460 KB
    assert "maximum allowed size" in str(refused.value)


def test_index_queries_page_by_projected_entries_not_whole_items(aws_env, aws_calls):
    client = boto3.client("dynamodb")
    first = date(2026, 1, 1)
    days = [(first + timedelta(days=n)).isoformat() for n in range(40)]
    for day in days:  # 40 items of ~125 KB: five 1 MB pages if whole items counted
        client.put_item(TableName=TABLE, Item=aggregate("model", "gpt-4o", day, 3_300))
    aws_calls.clear()
    items = store.query_kind("model", days[0], days[-1])
    assert len(items) == 40 and aws_calls == ["Query"]
    assert all(item["calls"] == 7 and not any(name.startswith("m") for name in item) for item in items)


VALUES = [{"S": "a"}, {"S": "b"}, {"S": "10"}, {"N": "10"}, {"N": "10.0"}, {"N": "9"}, {"N": "-1E-7"}, {"N": "0E-7"},
          {"BOOL": True}, {"NULL": True}, {"M": {"x": {"N": "1"}}}, {"M": {"x": {"N": "1.00"}}},
          {"M": {"x": {"S": "1"}}}, {"M": {"x": {"N": "1"}, "y": {"S": "a"}}}, {"L": [{"N": "1"}]}, {"SS": ["a", "b"]}]


@pytest.mark.parametrize("left", VALUES, ids=str)
def test_values_compare_as_moto_compares_them_without_converting(left):
    """The tuned comparisons (local/moto_tuning.py) give moto's own answer: type and converted value."""
    from moto.dynamodb.models.dynamo_type import DynamoType

    for right in VALUES:
        a, b = DynamoType(left), DynamoType(right)
        assert (a == b) is (a.type == b.type and a.cast_value == b.cast_value), (left, right)
        assert (a != b) is not (a == b)
        if a.type == b.type and a.type in ("S", "N"):
            assert (a < b) is (a.cast_value < b.cast_value), (left, right)


CALLS = "tollgate-dev-calls"


def put_call(client, n):
    client.put_item(TableName=CALLS, Item={"account": {"S": "acme"}, "sk": {"S": f"2026-01-01T00:00:00#{n:04d}"}})


def test_moto_remembers_only_the_newest_shard_iterators(aws_env, monkeypatch):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodbstreams.models import dynamodbstreams_backends

    from local import moto_tuning

    monkeypatch.setattr(moto_tuning, "ITERATORS_KEPT", 5, raising=False)
    streams, arn = boto3.client("dynamodbstreams"), boto3.client("dynamodb").describe_table(
        TableName=CALLS)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    for _ in range(20):  # the stream pump's polls: each answer names a new iterator
        iterator = streams.get_records(ShardIterator=iterator)["NextShardIterator"]
    put_call(boto3.client("dynamodb"), 1)
    assert len(streams.get_records(ShardIterator=iterator)["Records"]) == 1
    assert len(dynamodbstreams_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].shard_iterators) == 5


def test_the_stack_forgets_the_stream_records_its_pump_applied(aws_env, tmp_path):
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from local.pump import StreamPump
    from local.stack import Stack

    client = boto3.client("dynamodb")
    shard = dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"].get_table(CALLS).stream_shard
    applied = []
    stack = Stack({})
    stack.pump = StreamPump(boto3.client("dynamodbstreams"), client.describe_table(TableName=CALLS)["Table"][
        "LatestStreamArn"], lambda event, _: applied.extend(event["Records"]), tmp_path / "checkpoints.json")
    for n in range(3):
        put_call(client, n)
    assert stack.pump_once() == 3 and len(shard.items) == 0
    for n in range(3, 5):
        put_call(client, n)
    assert stack.pump_once() == 2 and len(shard.items) == 0
    sequence = [int(record["dynamodb"]["SequenceNumber"]) for record in applied]
    assert sequence == sorted(set(sequence)) and len(sequence) == 5  # numbers go on where they were


def test_the_moto_server_builds_no_class_per_request():
    """In debug mode Flask gives each request's files a class of its own: garbage only a full collection frees."""
    from moto.server import ThreadedMotoServer
    from werkzeug.datastructures import ImmutableMultiDict

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server._server.server_address[:2]
        sqs = boto3.client("sqs", endpoint_url=f"http://{host}:{port}")
        gc.disable()
        try:
            before = len(ImmutableMultiDict.__subclasses__())
            for _ in range(20):
                sqs.list_queues()
            built = len(ImmutableMultiDict.__subclasses__()) - before
        finally:
            gc.enable()
    finally:
        server.stop()
    assert built == 0
