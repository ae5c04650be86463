"""Amounts an admin types reach DynamoDB digit for digit, or are refused (#26): the admin JSON is read with
`parse_float=Decimal`, never through a float, and thresholds and percentages come back exact."""
from __future__ import annotations

import json
from decimal import Decimal

import pytest

from tests.conftest import ADMIN_KEY

HEADERS = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}


def put_raw(client, budget_id: str, raw: str):
    """The body as the admin's script wrote it: numbers as bare JSON numbers, not Python floats."""
    response = client.http.put(f"/admin/budgets/{budget_id}", headers=HEADERS, body=raw.encode())
    return response.status_code, json.loads(response.body)


def budget_json(limit: str, thresholds: str = "[0.5, 0.8, 1.0]") -> str:
    return ('{"scope": "global", "period": "daily", "limit_usd": ' + limit + ', "thresholds": ' + thresholds +
            ', "mode": "soft", "channels": []}')


def test_a_json_number_limit_keeps_every_digit(client):
    status, view = put_raw(client, "exact", budget_json("12345678.123456789012"))
    assert status == 200, view
    from chalicelib.ledger.models import Budget

    stored = Budget.get("exact")
    assert stored.limit_usd == Decimal("12345678.123456789012")  # a float would keep 12345678.12345679
    listed = json.loads(client.http.get("/admin/budgets", headers=HEADERS).body)["budgets"]
    assert [b["limit_usd"] for b in listed] == ["12345678.123456789012"]


@pytest.mark.parametrize("limit", ["1000000.0000000000001", "1000000000000", "1e12", "1E400", "0.0000000000001"])
def test_a_json_number_past_12_places_or_10_to_the_12_is_a_clear_400(client, limit):
    status, view = put_raw(client, "refused", budget_json(limit))
    assert status == 400, view
    assert "limit_usd" in view["error"]["message"] and "12 decimal places" in view["error"]["message"]


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_json_constants_that_are_no_number_are_refused(client, constant):
    status, view = put_raw(client, "nan", budget_json(constant))
    assert status == 400, view


def test_thresholds_and_percent_are_exact_json_numbers(client):
    raw = budget_json('"3"', "[0.333333333333, 0.1, 1]")
    assert put_raw(client, "thirds", raw)[0] == 200
    response = client.http.get("/admin/budgets", headers=HEADERS)
    text = response.body.decode()
    assert '"thresholds": [0.1, 0.333333333333, 1]' in text  # JSON numbers, as typed (sorted)
    view = json.loads(response.body, parse_float=Decimal)["budgets"][0]
    assert view["thresholds"] == [Decimal("0.1"), Decimal("0.333333333333"), 1]
    report = json.loads(client.http.get("/api/budgets", headers={"X-Dashboard-Key": ADMIN_KEY}).body,
                        parse_float=Decimal)["budgets"][0]
    assert report["percent"] == 0 and report["state"] == "ok"
