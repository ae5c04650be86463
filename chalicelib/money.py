"""Money, owned in one place: Decimal inside, a plain decimal string on the wire, admin amounts checked.

Floats never hold money: provider JSON is parsed with `parse_float=Decimal`, and the API writes
amounts with `money()`, so what a report says is what was added up.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib.errors import InvalidRequest

AMOUNT_MAX = Decimal(10) ** 12  # a budget or top-up beyond a trillion dollars is a typo


def money(value: Decimal) -> str:
    """A Decimal as a plain decimal string (no exponent, no trailing zeros), the API's money format."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"


def parse_amount(value: Any, name: str) -> Decimal:
    """A positive amount an admin typed: bounded, and exact to 12 decimal places at most."""
    if isinstance(value, bool):  # JSON `true` is no amount, though Python counts it as 1
        raise InvalidRequest(f"`{name}` must be a number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"`{name}` must be a number") from None
    if not number.is_finite() or number <= 0:
        raise InvalidRequest(f"`{name}` must be a positive number")
    if number >= AMOUNT_MAX or number.as_tuple().exponent < -12:
        raise InvalidRequest(f"`{name}` must be below {AMOUNT_MAX:,} with at most 12 decimal places")
    return number


def usd(value: Decimal) -> str:
    """Money in a message (alerts, digests, every channel): `$` and the API's digits, one format everywhere."""
    return "$" + money(value)
