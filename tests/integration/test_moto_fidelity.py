"""The moto adjustments in local/moto_tuning.py keep DynamoDB's rules: the 400 KB item limit, and index
pages filled by index entries, so reports over full aggregate items answer as they would in AWS; numbers as
DynamoDB writes and adds them; and moto keeps what AWS keeps, not everything, so the local stack's memory levels off."""
import gc
import json
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


# --- numbers: tiny costs (issue 26, item 5) ---------------------------------------------------------------------
def summary(gateway):
    from tests.conftest import ADMIN_KEY

    answer = json.loads(gateway.client.http.get("/api/summary?hours=1", headers={"X-Dashboard-Key": ADMIN_KEY}).body)
    return answer["calls"], answer["cost_usd"]


def test_tiny_costs_rolled_up_one_at_a_time_reach_the_summary_exactly(gateway):
    """moto wrote 1E-7 + 1E-7 as `2E-7` and its next ADD could not parse that (ValueError): three ~5-token
    embedding calls of $0.0000001 each, folded one batch at a time, must sum to $0.0000003 in every scope."""
    from chalicelib.ledger.models import CallRecord
    from tests.integration.conftest import stream_records
    from tests.integration.helpers import handler, log

    calls = [log(n, minutes_ago=1, model="text-embedding-3-small", cost="0.0000001") for n in (1, 2, 3)]
    for record in stream_records():
        assert handler([record]) == {"batchItemFailures": []}
    assert summary(gateway) == (3, "0.0000003")

    for call in calls:  # a GDPR-style erasure subtracts each one: zero, still readable and addable
        CallRecord.get(call.account, call.sk).delete()
    for record in stream_records()[3:]:
        assert handler([record]) == {"batchItemFailures": []}
    log(4, minutes_ago=1, model="text-embedding-3-small", cost="0.0000001")
    assert handler(stream_records()[-1:]) == {"batchItemFailures": []}
    assert summary(gateway) == (1, "0.0000001")
    stored = [value["N"] for item in boto3.client("dynamodb").scan(TableName=TABLE)["Items"]
              for name, value in item.items() if "N" in value and name.endswith("cost")]
    assert stored and all("E" not in number for number in stored), stored


@pytest.mark.parametrize(("start", "add", "read_back"), [
    ("0.0000001", "0.0000001", "0.0000002"), ("0.0000003", "-0.0000003", "0"), ("1E-7", "1E-7", "0.0000002"),
    ("0E-7", "0.0000001", "0.0000001"), ("1.50", "1.50", "3"), ("1E+2", "5", "105"), ("-0", "0", "0"),
    ("99999999999999999999999999999999999999", "-1", "99999999999999999999999999999999999998")])
def test_numbers_add_and_read_back_as_dynamodb_writes_them(aws_env, start, add, read_back):
    """DynamoDB keeps a number as up to 38 significant digits and writes it plainly: no exponent, no trailing
    zero, no `-0`; an ADD on any number it holds works."""
    client = boto3.client("dynamodb")
    key = {"pk": {"S": "test#numbers"}, "day": {"S": "2026-01-01"}}
    client.put_item(TableName=TABLE, Item={**key, "n": {"N": start}})

    def update(expression):
        client.update_item(TableName=TABLE, Key=key, UpdateExpression=expression,
                           ExpressionAttributeValues={":v": {"N": add}})

    update("ADD n :v")
    assert client.get_item(TableName=TABLE, Key=key)["Item"]["n"] == {"N": read_back}
    update("SET n = n - :v")  # back to the start, then forward again: each result is one moto can add to
    update("ADD n :v")
    assert client.get_item(TableName=TABLE, Key=key)["Item"]["n"] == {"N": read_back}


def test_a_sum_past_38_digits_is_refused_as_dynamodb_refuses_it(aws_env):
    client = boto3.client("dynamodb")
    key = {"pk": {"S": "test#numbers"}, "day": {"S": "2026-01-01"}}
    client.put_item(TableName=TABLE, Item={**key, "n": {"N": "1" + "0" * 37}})
    with pytest.raises(ClientError) as refused:
        client.update_item(TableName=TABLE, Key=key, UpdateExpression="ADD n :v",
                           ExpressionAttributeValues={":v": {"N": "0.1"}})
    assert refused.value.response["Error"]["Code"] == "ValidationException"


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


def live(model):
    """How many instances of a moto model are alive after a full collection."""
    gc.collect()
    return sum(1 for o in gc.get_objects() if type(o) is model)


def test_moto_keeps_no_copy_of_what_it_answered(aws_env):
    """moto copies every item a Query or Scan answers; the copies die with the answer, not with the process."""
    from moto.dynamodb.models.dynamo_type import Item

    client = boto3.client("dynamodb")
    for n in range(20):
        put_call(client, n)
    held = live(Item)
    for _ in range(5):
        client.query(TableName=CALLS, KeyConditionExpression="account = :a",
                     ExpressionAttributeValues={":a": {"S": "acme"}})
        client.scan(TableName=CALLS)
    assert live(Item) == held  # 200 more before (5 × (20 + 20) copies kept)


def test_the_stream_records_and_iterators_moto_forgets_are_freed(aws_env, monkeypatch):
    from moto.dynamodb.models.table import StreamRecord
    from moto.dynamodbstreams.models import ShardIterator

    from local import moto_tuning

    monkeypatch.setattr(moto_tuning, "ITERATORS_KEPT", 5, raising=False)
    client, streams = boto3.client("dynamodb"), boto3.client("dynamodbstreams")
    arn = client.describe_table(TableName=CALLS)["Table"]["LatestStreamArn"]
    shard = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"][0]["ShardId"]
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
    held = live(StreamRecord), live(ShardIterator)  # earlier tests' (frozen by coldstart_gc with app's import)
    for n in range(10):
        put_call(client, n)
    applied = []
    for _ in range(20):  # the stream pump's polls
        answer = streams.get_records(ShardIterator=iterator)
        applied += [int(record["dynamodb"]["SequenceNumber"]) for record in answer["Records"]]
        iterator = answer["NextShardIterator"]
    assert len(applied) == 10 and moto_tuning.trim_stream(CALLS, applied[-1]) == 10
    assert (live(StreamRecord) - held[0], live(ShardIterator) - held[1]) == (0, 4)  # (10, 20) before


# --- a Query reads its key range only (make bench's JSON API volumes: issue 30, item 7) ------------------------
def put_days(client, pk, hours, kind=None):
    """`hours` items of one partition, an hour apart; with `kind`, day items of as many scopes of that kind."""
    for n in range(hours):
        day = f"2026-01-{1 + n // 24:02d}"
        item = {"pk": {"S": pk}, "day": {"S": f"{day}T{n % 24:02d}"}, "calls": {"N": str(n)}}
        if kind:
            item |= {"pk": {"S": f"{pk}{n % 24}"}, "day": {"S": day}, "kind": {"S": kind},
                     "day_id": {"S": f"{day}#{pk.split('#')[1]}{n % 24}"}}
        client.put_item(TableName=TABLE, Item=item)


def keys(answer):
    return [item["day"]["S"] for item in answer["Items"]]


def test_a_query_looks_only_at_its_key_range_not_its_whole_partition(aws_env, monkeypatch):
    """moto sized and sorted every item of the partition (or of the table, for an index) for each Query: seconds
    a report once the global scope held 25k hour and 5-minute items; DynamoDB reads only the key range."""
    from moto.dynamodb.models.dynamo_type import Item

    client = boto3.client("dynamodb")
    put_days(client, "global#all", 24 * 20)
    put_days(client, "account#a", 24 * 20, kind="account")  # 24 accounts' days
    sized, size = [], Item.size
    monkeypatch.setattr(Item, "size", lambda self: sized.append(1) or size(self))
    answer = client.query(TableName=TABLE, KeyConditionExpression="pk = :pk AND #d BETWEEN :a AND :b",
                          ExpressionAttributeNames={"#d": "day"}, ExpressionAttributeValues={
                              ":pk": {"S": "global#all"}, ":a": {"S": "2026-01-03T00"}, ":b": {"S": "2026-01-03T05"}})
    assert keys(answer) == [f"2026-01-03T{h:02d}" for h in range(6)]
    assert len(sized) <= 2 * 6, len(sized)  # each result's size, and the page check: not 480 items'
    sized.clear()
    entries = store.query_kind("account", "2026-01-05", "2026-01-05")
    assert len(entries) == 24 and len(sized) <= 2 * 24, len(sized)


CONDITIONS = [("#d BETWEEN :a AND :b", {":a": "2026-01-02T03", ":b": "2026-01-03T01"}), ("#d = :a", {":a": "2026-01-02T05"}),
              ("#d < :a", {":a": "2026-01-01T04"}), ("#d <= :a", {":a": "2026-01-01T04"}),
              ("#d > :a", {":a": "2026-01-03T20"}), ("#d >= :a", {":a": "2026-01-03T20"}),
              ("begins_with(#d, :a)", {":a": "2026-01-02T1"}), ("#d BETWEEN :a AND :b", {":a": "2026-02", ":b": "2026-03"}),
              ("#d = :a", {":a": "2026-01-02T05x"})]


@pytest.mark.parametrize(("condition", "values"), CONDITIONS, ids=[c[0] + str(v) for c, v in CONDITIONS])
def test_range_queries_answer_as_a_filter_of_every_item_would(aws_env, condition, values):
    """Forward and back, paged by Limit, after writes that add and remove keys: the items a plain filter finds."""
    client = boto3.client("dynamodb")
    put_days(client, "global#all", 72)
    test = {"BETWEEN": lambda d: values[":a"] <= d <= values.get(":b", ""), "=": lambda d: d == values[":a"],
            "<": lambda d: d < values[":a"], "<=": lambda d: d <= values[":a"], ">": lambda d: d > values[":a"],
            ">=": lambda d: d >= values[":a"], "begins_with": lambda d: d.startswith(values[":a"])}
    op = next(name for name in ("BETWEEN", "begins_with", "<=", ">=", "<", ">", "=") if name in condition)

    def read(forward=True, limit=None):
        request = {"TableName": TABLE, "KeyConditionExpression": f"pk = :pk AND {condition}",
                   "ExpressionAttributeNames": {"#d": "day"}, "ScanIndexForward": forward,
                   "ExpressionAttributeValues": {":pk": {"S": "global#all"}} | {k: {"S": v} for k, v in values.items()}}
        if limit:
            request["Limit"] = limit
        found = []
        while True:
            answer = client.query(**request)
            found += keys(answer)
            if "LastEvaluatedKey" not in answer:
                return found
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    for _ in range(2):
        stored = sorted(item["day"]["S"] for item in client.scan(TableName=TABLE)["Items"])
        expected = [d for d in stored if test[op](d)]
        assert read() == expected and read(limit=4) == expected
        assert read(forward=False) == expected[::-1]
        client.delete_item(TableName=TABLE, Key={"pk": {"S": "global#all"}, "day": {"S": "2026-01-02T05"}})
        client.put_item(TableName=TABLE, Item={"pk": {"S": "global#all"}, "day": {"S": "2026-01-02T10x"}})


def test_index_queries_see_every_write_between_them(aws_env):
    client = boto3.client("dynamodb")
    put_days(client, "model#m1", 48, kind="model")
    assert len(store.query_kind("model", "2026-01-01", "2026-01-02")) == 48
    put_days(client, "model#m2", 24, kind="model")  # new items under the same index key
    assert len(store.query_kind("model", "2026-01-01", "2026-01-02")) == 72
    key = {"pk": {"S": "model#m10"}, "day": {"S": "2026-01-01"}}
    client.update_item(TableName=TABLE, Key=key, UpdateExpression="SET kind = :k", ExpressionAttributeValues={
        ":k": {"S": "team"}})  # an update in place moves it to another index key
    assert len(store.query_kind("model", "2026-01-01", "2026-01-02")) == 71
    assert len(store.query_kind("team", "2026-01-01", "2026-01-02")) == 1
    client.delete_item(TableName=TABLE, Key=key)
    assert store.query_kind("team", "2026-01-01", "2026-01-02") == []


def test_query_and_scan_answers_are_written_byte_for_byte_as_motos_serializer_writes_them(aws_env):
    from moto.core.responses import ActionResult
    from moto.dynamodb.responses import DynamoResult

    client = boto3.client("dynamodb")
    client.put_item(TableName=TABLE, Item={
        "pk": {"S": "x#1"}, "day": {"S": "1é\u2028\"q\""}, "n": {"N": "1.5"}, "ss": {"SS": ["a", "b"]}, "ns": {"NS": ["1"]},
        "m": {"M": {"x": {"L": [{"S": "y"}, {"NULL": True}, {"BOOL": False}]}}}, "e": {"S": ""}, "em": {"M": {}}})
    client.put_item(TableName=TABLE, Item={"pk": {"S": "x#1"}, "day": {"S": "2"}, "b": {"B": b"\x00\xff"}})
    answers = []
    tuned = DynamoResult.execute_result

    def both(self, context):
        answers.append((tuned(self, context)[2], ActionResult.execute_result(self, context)[2]))
        return ActionResult.execute_result(self, context)

    DynamoResult.execute_result = both
    try:
        for extra in ({}, {"Limit": 1, "ReturnConsumedCapacity": "TOTAL"}, {"ScanIndexForward": False}):
            client.query(TableName=TABLE, KeyConditionExpression="pk = :p",
                         ExpressionAttributeValues={":p": {"S": "x#1"}}, **extra)
        client.query(TableName=TABLE, KeyConditionExpression="pk = :p", ExpressionAttributeValues={":p": {"S": "none"}})
        client.scan(TableName=TABLE)
        client.scan(TableName=TABLE, Select="COUNT")
    finally:
        DynamoResult.execute_result = tuned
    assert len(answers) == 6 and all(mine == motos for mine, motos in answers), answers


def test_an_update_expression_is_parsed_and_shape_checked_once_and_still_refused_when_wrong(aws_env, monkeypatch):
    """local/moto_tuning.py remembers an UpdateExpression by its text: parsed once, and its shape (one clause of a
    kind, no overlapping paths, no key attribute set) checked once for the same names and keys. What is wrong is
    refused every time, whatever passed before, and the values are checked on every request."""
    from moto.dynamodb.parsing import validators
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser

    client = boto3.client("dynamodb")
    key = {"pk": {"S": "fidelity#expr"}, "day": {"S": "d"}}
    expression = "ADD #a :one, #b :one SET #s = :s"
    names, values = {"#a": "a", "#b": "b", "#s": "s"}, {":one": {"N": "1"}, ":s": {"S": "x"}}
    shape_checks = []
    check = validators.ActionCountValidator.verify_action_counts
    monkeypatch.setattr(validators.ActionCountValidator, "verify_action_counts",
                        lambda self, node: shape_checks.append(1) or check(self, node))
    first = None
    for _ in range(5):
        client.update_item(TableName=TABLE, Key=key, UpdateExpression=expression, ExpressionAttributeNames=names,
                           ExpressionAttributeValues=values)
        first = first or len(shape_checks)
    assert client.get_item(TableName=TABLE, Key=key)["Item"]["a"] == {"N": "5"}
    assert first and len(shape_checks) == first  # the first request's passes, then none (moto's: each time)
    assert UpdateExpressionParser.make(expression) is UpdateExpressionParser.make(expression)  # parsed once

    def refused(expression, names, values=values):
        with pytest.raises(ClientError) as error:
            client.update_item(TableName=TABLE, Key=key, UpdateExpression=expression,
                               ExpressionAttributeNames=names, ExpressionAttributeValues=values)
        return error.value.response["Error"]["Message"]

    for _ in range(2):
        assert "overlap" in refused(expression, {"#a": "a", "#b": "a", "#s": "s"}).lower()  # same text, names clash
        assert "key" in refused(expression, {"#a": "a", "#b": "pk", "#s": "s"}).lower()  # sets the partition key
        assert "ADD" in refused("ADD #a :one ADD #b :one", {"#a": "a", "#b": "b"}, {":one": {"N": "1"}})  # 2 ADDs
        assert refused(expression, names, {":one": {"S": "1"}, ":s": {"S": "x"}})  # adds a string: values checked
