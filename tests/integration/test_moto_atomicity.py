"""moto checks a write's condition and applies the write in two steps, so two threads can both pass their checks;
DynamoDB applies each conditional write atomically. local/moto_tuning.py runs moto's writes one at a time, and
its transactions check every condition before writing anything."""
import threading
from decimal import Decimal

import boto3
import pytest
from moto.core import DEFAULT_ACCOUNT_ID

from chalicelib.settings import get_settings


@pytest.fixture
def headroom(aws_env):
    """An item with `headroom` 10 in the aggregates table, and moto's backend."""
    from moto.dynamodb.models import dynamodb_backends

    table = get_settings().aggregates_table
    boto3.client("dynamodb").put_item(TableName=table, Item={"pk": {"S": "hard#b"}, "day": {"S": "p"},
                                                             "headroom": {"N": "10"}})
    return dynamodb_backends[DEFAULT_ACCOUNT_ID]["us-east-1"], table


@pytest.fixture
def both_checked_first(monkeypatch):
    """Each condition, once evaluated, waits (up to a second) for the other thread's to be evaluated too: the
    interleaving that lets two writes through if nothing keeps them apart."""
    import moto.dynamodb.models as backend_module

    barrier, original = threading.Barrier(2, timeout=1), backend_module.create_condition_expression_parser

    class Waiting:
        def __init__(self, condition):
            self.condition = condition

        def expr(self, item):
            holds = self.condition.expr(item)
            try:
                barrier.wait()
            except threading.BrokenBarrierError:  # the other write is held back: go on alone
                pass
            return holds

    class Parser:
        def __init__(self, parser):
            self.parser = parser

        def parse(self):
            return Waiting(self.parser.parse())

    monkeypatch.setattr(backend_module, "create_condition_expression_parser",
                        lambda *args, **kwargs: Parser(original(*args, **kwargs)))


def _take_six_twice(update_item, backend, table):
    """Two threads each take 6 of the headroom if at least 6 is left; returns how many did."""
    from moto.dynamodb.exceptions import ConditionalCheckFailed

    taken = []

    def take():
        try:
            update_item(backend, table, {"pk": {"S": "hard#b"}, "day": {"S": "p"}},
                        update_expression="SET headroom = headroom - :w", expression_attribute_names={},
                        expression_attribute_values={":w": {"N": "6"}}, condition_expression="headroom >= :w")
            taken.append(1)
        except ConditionalCheckFailed:
            pass

    threads = [threading.Thread(target=take) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    item = boto3.client("dynamodb").get_item(TableName=table, Key={"pk": {"S": "hard#b"}, "day": {"S": "p"}})
    return len(taken), Decimal(item["Item"]["headroom"]["N"])


def test_moto_alone_lets_two_conflicting_conditional_writes_through(headroom, both_checked_first):
    from moto.dynamodb.models import DynamoDBBackend

    untuned = DynamoDBBackend.update_item.__wrapped__
    assert _take_six_twice(untuned, *headroom) == (2, Decimal(-2))  # both passed `headroom >= 6`: overdrawn


def test_the_tuned_moto_lets_one_through_as_dynamodb_does(headroom, both_checked_first):
    from moto.dynamodb.models import DynamoDBBackend

    assert _take_six_twice(DynamoDBBackend.update_item, *headroom) == (1, Decimal(4))


def test_a_cancelled_transaction_writes_nothing_and_says_which_item_stopped_it(aws_env):
    from botocore.exceptions import ClientError

    client, table = boto3.client("dynamodb"), get_settings().aggregates_table
    client.put_item(TableName=table, Item={"pk": {"S": "hard#b"}, "day": {"S": "p"}, "headroom": {"N": "1"}})
    with pytest.raises(ClientError) as cancelled:
        client.transact_write_items(TransactItems=[
            {"Put": {"TableName": table, "Item": {"pk": {"S": "hold#b"}, "day": {"S": "x"}}}},
            {"Update": {"TableName": table, "Key": {"pk": {"S": "hard#b"}, "day": {"S": "p"}},
                        "UpdateExpression": "SET headroom = headroom - :w", "ConditionExpression": "headroom >= :w",
                        "ExpressionAttributeValues": {":w": {"N": "6"}}}}])
    reasons = [reason["Code"] for reason in cancelled.value.response["CancellationReasons"]]
    assert reasons == ["None", "ConditionalCheckFailed"]
    assert "Item" not in client.get_item(TableName=table, Key={"pk": {"S": "hold#b"}, "day": {"S": "x"}})
