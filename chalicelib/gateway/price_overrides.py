"""The price overrides file (price_overrides.json), read and checked whole: a mistake in it stops the tests and
`make package` with a message naming the entry and the field, so a call never meets it.

Prices take genai-prices' own shape, field for field: a decimal string per million tokens (or per the unit
genai-prices names in the field), or tiers `{"base": "3", "tiers": [{"start": 200000, "price": "6"}]}`,
where a tier prices the whole call once its total input (uncached + cache read + cache write) exceeds `start`.

An entry can be historical, and reads so (`Override.state`, `describe`): `"retired": "YYYY-MM-DD"` (its model was
retired that day: the entry stays for the calls before, which reprice still reaches), or `"window": {"from":
"YYYY-MM-DD", "until"?: "YYYY-MM-DD"}` (its prices were in force from `from` up to, not including, `until`: only
calls inside the window match it). A price holds at most 12 significant digits: more is a repeating decimal cut
off (1/12 written as 0.0833333333333333), and is refused.
"""
from __future__ import annotations

import difflib
import fnmatch
import hashlib
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from chalicelib.gateway import genai_lean

genai_lean.ensure()  # before genai_prices is imported (chalicelib/gateway/genai_lean.py)

from genai_prices import Usage  # noqa: E402
from genai_prices.data_units import unit_data  # noqa: E402
from genai_prices.types import ModelPrice, Tier, TieredPrices  # noqa: E402

from chalicelib.errors import PriceOverridesInvalid  # noqa: E402
from chalicelib.settings import PROVIDERS  # noqa: E402

OVERRIDES_FILE = Path(__file__).with_name("price_overrides.json")
ENTRY_FIELDS = ("provider", "model", "source", "retired", "window")  # what an entry holds besides its prices
WINDOW_FIELDS = ("from", "until")
SIGNIFICANT_DIGITS_MAX = 12  # more is a repeating decimal cut off, not a published price
SOURCE_FIELDS = ("url", "checked", "says")  # where a price was published, when someone read it there, what it says
PRICE_MAX = Decimal(10**6)  # per unit: past any published price, so a slipped decimal point is caught


@lru_cache(maxsize=1)
def price_fields() -> frozenset[str]:
    """Every price field genai-prices knows (`input_mtok`, `cache_write_1h_mtok`, `web_searches_kcount`, …)."""
    return frozenset(unit.get("price_key", usage_key) for usage_key, unit in unit_data.items())


@dataclass(frozen=True)
class Override:
    provider: str
    patterns: tuple[str, ...]  # exact names or fnmatch patterns, e.g. "ft:gpt-4o-mini:*"
    price: ModelPrice
    retired: date | None = None  # the model was retired that day: historical from then on
    window_from: date | None = None  # the prices were in force from this day (UTC) …
    window_until: date | None = None  # … up to, not including, this one

    def matches(self, provider: str, model: str, at: datetime | None = None) -> bool:
        """Does this entry price `model` at `provider` for a call at `at` (any time when not given)?"""
        return (self.provider == provider and any(fnmatch.fnmatchcase(model, p) for p in self.patterns)
                and (at is None or self.in_window(at.date())))

    def in_window(self, day: date) -> bool:
        return ((self.window_from is None or day >= self.window_from)
                and (self.window_until is None or day < self.window_until))

    def state(self, on: date) -> str:
        """current | historical (its model retired, or its window over) | upcoming (its window not yet begun)."""
        if (self.retired is not None and on >= self.retired) or (
                self.window_until is not None and on >= self.window_until):
            return "historical"
        return "upcoming" if self.window_from is not None and on < self.window_from else "current"

    def describe(self, on: date) -> str:
        """One line for a reader: which model, and whether (and why) these prices are history."""
        when = [f"retired {self.retired.isoformat()}"] if self.retired else []
        if self.window_from or self.window_until:
            when.append(f"prices in force {self.window_from or '…'} to {self.window_until or '…'}")
        return f"{self.provider} {self.patterns[0]}: {self.state(on)}" + (f" ({'; '.join(when)})" if when else "")


@dataclass(frozen=True)
class PriceOverrides:
    """The overrides in file order (the first that matches wins) and the version that names this content."""

    entries: tuple[Override, ...]
    version: str  # "overrides@<first 12 hex digits of the file's SHA-256>"

    def find(self, provider: str, model: str, at: datetime | None = None) -> Override | None:
        """The first entry for `model` whose window holds `at` (the call's time)."""
        return next((o for o in self.entries if o.matches(provider, model, at)), None)

    def __iter__(self) -> Iterator[Override]:
        return iter(self.entries)


def load_overrides(path: Path | None = None) -> PriceOverrides:
    """Read and check the overrides file (the shipped one by default); PriceOverridesInvalid says where and
    why it is wrong."""
    path = path or OVERRIDES_FILE
    raw = path.read_bytes() if path.exists() else b'{"overrides": []}'
    try:
        document = json.loads(raw, parse_float=Decimal)
    except ValueError as exc:
        raise PriceOverridesInvalid(f"{path}: not valid JSON: {exc}") from None
    version = f"overrides@{hashlib.sha256(raw).hexdigest()[:12]}"
    return PriceOverrides(parse_overrides(document, str(path)), version)


def parse_overrides(document: Any, where: str) -> tuple[Override, ...]:
    if not isinstance(document, dict) or not isinstance(document.get("overrides"), list):
        raise PriceOverridesInvalid(f'{where}: expected {{"overrides": [...]}}')
    unknown = [k for k in document if k != "overrides" and not k.startswith("_")]
    if unknown:
        raise PriceOverridesInvalid(f"{where}: unknown top-level field {unknown[0]!r} (comments start with '_')")
    entries, seen = [], set()
    for n, entry in enumerate(document["overrides"]):
        override = _entry(entry, f"{where}: overrides[{n}]")
        for pattern in override.patterns:
            if (override.provider, pattern) in seen:
                raise PriceOverridesInvalid(f"{where}: overrides[{n}]: {override.provider} {pattern!r} is "
                                            "overridden twice")
            seen.add((override.provider, pattern))
        entries.append(override)
    return tuple(entries)


def _entry(entry: Any, where: str) -> Override:
    if not isinstance(entry, dict):
        raise PriceOverridesInvalid(f"{where}: an override is an object")
    provider, patterns = entry.get("provider"), entry.get("model")
    if provider not in PROVIDERS:
        raise PriceOverridesInvalid(f"{where}: `provider` must be one of {', '.join(PROVIDERS)}, not {provider!r}")
    if isinstance(patterns, str):
        patterns = [patterns]
    if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) and p.strip() for p in patterns):
        raise PriceOverridesInvalid(f"{where}: `model` must be a model name or pattern, or a list of them")
    where = f"{where} ({provider} {patterns[0]})"
    _source(entry.get("source"), where)
    prices = {}
    for name, value in entry.items():
        if name in ENTRY_FIELDS or name.startswith("_"):
            continue
        if name not in price_fields():
            close = difflib.get_close_matches(name, sorted(price_fields()), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise PriceOverridesInvalid(f"{where}: unknown field {name!r}: not a genai-prices price field "
                                        f"(input_mtok, output_mtok, cache_read_mtok, cache_write_mtok, "
                                        f"cache_write_1h_mtok, …){hint}")
        prices[name] = _price(value, f"{where}: `{name}`")
    if not prices:
        raise PriceOverridesInvalid(f"{where}: no price field")
    price = ModelPrice(**prices)
    try:  # genai-prices' own checks (units that cannot be priced together, say)
        price.calc_price(Usage(input_tokens=1, output_tokens=1))
    except (ValueError, TypeError, ArithmeticError, LookupError) as exc:
        raise PriceOverridesInvalid(f"{where}: genai-prices refuses these prices: {exc}") from None
    retired = _day(entry["retired"], f"{where}: `retired`") if "retired" in entry else None
    window_from, window_until = _window(entry["window"], f"{where}: `window`") if "window" in entry else (None, None)
    return Override(provider, tuple(patterns), price, retired, window_from, window_until)


def _day(value: Any, where: str) -> date:
    try:
        if isinstance(value, str) and len(value) == 10:
            return date.fromisoformat(value)
    except ValueError:
        pass
    raise PriceOverridesInvalid(f"{where} must be a day, YYYY-MM-DD, not {value!r}")


def _window(value: Any, where: str) -> tuple[date | None, date | None]:
    """`{"from": day, "until"?: day}`: the prices were in force from `from` up to, not including, `until`."""
    if not isinstance(value, dict) or "from" not in value or set(value) - set(WINDOW_FIELDS):
        raise PriceOverridesInvalid(f'{where} is {{"from": "YYYY-MM-DD", "until"?: "YYYY-MM-DD"}}')
    start = _day(value["from"], f"{where}.from")
    until = _day(value["until"], f"{where}.until") if "until" in value else None
    if until is not None and until <= start:
        raise PriceOverridesInvalid(f"{where}: `until` must come after `from`")
    return start, until


def _source(source: Any, where: str) -> None:
    """Each entry cites where its prices were published and when someone read them there."""
    sources = source if isinstance(source, list) else [source]
    if source is None or not sources:
        raise PriceOverridesInvalid(f'{where}: cite where the prices are published: "source": [{{"url": …, '
                                    f'"checked": "YYYY-MM-DD", "says": …}}]')
    for cited in sources:
        if not isinstance(cited, dict) or set(cited) - set(SOURCE_FIELDS):
            raise PriceOverridesInvalid(f"{where}: `source` must be objects with {', '.join(SOURCE_FIELDS)}")
        if not re.fullmatch(r"https://\S+", str(cited.get("url", ""))):
            raise PriceOverridesInvalid(f"{where}: `source` needs the `url` (https) where the price is published")
        try:
            date.fromisoformat(str(cited.get("checked", "")))
        except ValueError:
            raise PriceOverridesInvalid(f"{where}: `source` needs `checked`, the day it was read (YYYY-MM-DD)"
                                        ) from None


def _price(value: Any, where: str) -> Decimal | TieredPrices:
    if isinstance(value, dict):
        if set(value) != set(("base", "tiers")):
            raise PriceOverridesInvalid(f'{where}: tiered prices are {{"base": …, "tiers": [{{"start": …, '
                                        f'"price": …}}]}}, not fields {sorted(value)}')
        tiers = value["tiers"]
        if not isinstance(tiers, list) or not tiers:
            raise PriceOverridesInvalid(f"{where}: `tiers` must be a non-empty list")
        parsed, previous = [], -1
        for n, tier in enumerate(tiers):
            if not isinstance(tier, dict) or set(tier) != {"start", "price"}:
                raise PriceOverridesInvalid(f'{where}: tiers[{n}] must be {{"start": …, "price": …}}')
            start = tier["start"]
            if type(start) is not int or start <= previous:
                raise PriceOverridesInvalid(f"{where}: tiers[{n}].start must be a whole number of tokens above "
                                            f"the previous tier's, not {start!r}")
            parsed.append(Tier(start=start, price=_amount(tier["price"], f"{where}: tiers[{n}].price")))
            previous = start
        return TieredPrices(base=_amount(value["base"], f"{where}: base"), tiers=parsed)
    return _amount(value, where)


def _amount(value: Any, where: str) -> Decimal:
    """A price as written: a decimal string (or a JSON number, read exactly), USD per the field's unit."""
    if isinstance(value, bool) or not isinstance(value, (str, int, Decimal)):
        raise PriceOverridesInvalid(f"{where}: a price is a decimal string like \"0.30\", not {value!r}")
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise PriceOverridesInvalid(f"{where}: {value!r} is not a decimal number") from None
    if not amount.is_finite() or not 0 <= amount < PRICE_MAX:
        raise PriceOverridesInvalid(f"{where}: {value!r} is not a price in [0, {PRICE_MAX})")
    significant = "".join(map(str, amount.as_tuple().digits)).strip("0")
    if len(significant) > SIGNIFICANT_DIGITS_MAX:
        raise PriceOverridesInvalid(f"{where}: {value!r} has more than {SIGNIFICANT_DIGITS_MAX} significant digits: "
                                    "a repeating decimal cut off; write the published price, rounded to 12 digits "
                                    "if it has no end")
    return amount
