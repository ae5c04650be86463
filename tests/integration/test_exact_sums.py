"""Sums at DynamoDB's 38 digits (#26): what the fold, the reports, reconcile and the budgets add up in Python is
what DynamoDB (here moto, tuned as the local stack runs it) stores for the same ADDs. Python's default context
keeps 28 significant digits: 12345.678 + 0.000123456789012345678901 needs 29."""
from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal

import boto3

from chalicelib.reports import Totals
from chalicelib.rollup.fold import Fact, fold
from chalicelib.rollup.layout import day_views

A, B = Decimal("12345.678"), Decimal("0.000123456789012345678901")
# By hand: 12345.678000000000000000000000
#         +     0.000123456789012345678901
#         = 12345.678123456789012345678901 (29 significant digits)
BY_HAND = Decimal("12345.678123456789012345678901")
AT = datetime(2026, 11, 2, 10, 30, tzinfo=timezone.utc)


def dynamodb_sum(*amounts: Decimal) -> Decimal:
    """ADD each amount to one counter, as the rollup's UpdateItem does, and read back what is stored."""
    client = boto3.client("dynamodb")
    client.create_table(TableName="golden-sums", BillingMode="PAY_PER_REQUEST",
                        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
                        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}])
    for amount in amounts:
        client.update_item(TableName="golden-sums", Key={"pk": {"S": "sum"}}, UpdateExpression="ADD cost :c",
                           ExpressionAttributeValues={":c": {"N": str(amount)}})
    return Decimal(client.get_item(TableName="golden-sums", Key={"pk": {"S": "sum"}})["Item"]["cost"]["N"])


def fact(cost: Decimal, seq: int) -> Fact:
    return Fact(sign=1, lane="s|acme", seq=seq, ts=AT, account="acme", key_id="k1", provider="openai",
                model="gpt-4o", operation=None, team=None, is_error=False, error_type=None, tokens=(1, 0, 0, 1, 0),
                cost_usd=cost, latency_ms=10)


def test_dynamodb_adds_to_38_digits(aws_env):
    assert dynamodb_sum(A, B) == BY_HAND


def test_the_fold_sums_as_dynamodb_does(aws_env):
    deltas = fold([fact(A, 1), fact(B, 2)])
    global_day = [d for k, d in deltas.items() if k.kind == "global" and k.is_day_item]
    assert [d.counters["cost"] for d in global_day] == [BY_HAND]
    assert BY_HAND == dynamodb_sum(A, B)


def test_reports_and_budgets_sum_as_dynamodb_does(aws_env):
    totals = Totals()
    totals.add({"cost": A, "calls": 1}, "")
    totals.add({"cost": B, "calls": 1}, "")
    assert totals.cost == BY_HAND
    assert Totals(cost=A).absorb(Totals(cost=B)).cost == BY_HAND
    shards = [{"day": "2026-11-02~00", "cost": A}, {"day": "2026-11-02~01", "cost": B}]
    assert [view["cost"] for view in day_views(shards)] == [BY_HAND]  # a sharded scope's day, summed on read
    assert BY_HAND == dynamodb_sum(A, B)


def test_reconcile_sees_no_drift_where_dynamodb_summed_exactly(aws_env):
    from chalicelib.rollup import rebuild

    expected: dict = {}
    for key, delta in fold([fact(A, 1), fact(B, 2)]).items():
        if key.is_day_item and key.kind == "global":
            expected = rebuild.day_sums([(key, delta)])[(key.kind, key.scope_id)]
    assert expected["cost"] == dynamodb_sum(A, B)
