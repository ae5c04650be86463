"""Money, owned in one place: Decimal inside, a plain decimal string on the wire, admin amounts checked.

Floats never hold money: provider and admin JSON are parsed with `parse_float=Decimal`, the API writes
amounts with `money()` (and fractions such as thresholds as exact JSON numbers, `JsonNumber`), and sums run at
DynamoDB's 38 digits (`summing()`), so what a report says is what was added up.
"""
from __future__ import annotations

import functools
from decimal import Decimal, InvalidOperation, localcontext
from typing import Any, Callable, TypeVar

from chalicelib.errors import InvalidRequest

AMOUNT_MAX = Decimal(10) ** 12  # a budget or top-up beyond a trillion dollars is a typo
AMOUNT_PLACES = 12
SUM_DIGITS = 38  # a DynamoDB Number's precision: Python's default context keeps only 28


def summing():
    """The context to add money or token counts in: DynamoDB's 38 significant digits, so a sum made here is the
    sum DynamoDB stores (`with summing(): ...`)."""
    return localcontext(prec=SUM_DIGITS)


Summing = TypeVar("Summing", bound=Callable[..., Any])


def sums_exactly(function: Summing) -> Summing:
    """Run `function` in the `summing()` context (a fold, a Totals' add): its Decimal sums keep 38 digits."""

    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with summing():
            return function(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


class JsonNumber(Decimal):
    """A fraction the API writes as a JSON number, digit for digit (a budget's thresholds, its percent):
    chalice_http renders it without going through a float."""


def money(value: Decimal) -> str:
    """A Decimal as a plain decimal string (no exponent, no trailing zeros), the API's money format."""
    text = format(value, "f")  # not normalize(): it rounds to the context's 28 digits
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text if text != "-0" else "0"


def parse_amount(value: Any, name: str) -> Decimal:
    """A positive amount an admin typed: bounded, and exact to 12 decimal places at most."""
    if isinstance(value, bool):  # JSON `true` is no amount, though Python counts it as 1
        raise InvalidRequest(f"`{name}` must be a number")
    # The API reads JSON fractions as Decimal (chalice_http.json_body); a float can come only from Python
    # callers, and its shortest repr is what they wrote.
    try:
        number = Decimal(value) if isinstance(value, (int, Decimal)) else Decimal(str(value))
    except InvalidOperation:
        raise InvalidRequest(f"`{name}` must be a number") from None
    if not number.is_finite() or number <= 0:
        raise InvalidRequest(f"`{name}` must be a positive number")
    if number >= AMOUNT_MAX or number.as_tuple().exponent < -AMOUNT_PLACES:
        raise InvalidRequest(f"`{name}` must be below {AMOUNT_MAX:,} with at most {AMOUNT_PLACES} decimal places")
    return number


def usd(value: Decimal) -> str:
    """Money in a message (alerts, digests, every channel): `$` and the API's digits, one format everywhere."""
    return "$" + money(value)
