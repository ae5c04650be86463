"""Cost of a call from its usage: local overrides first, then genai-prices; Decimal, never a guess."""
from __future__ import annotations

import fnmatch
import json
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from pathlib import Path

from genai_prices import calc_price
from genai_prices.types import ModelPrice

from .usage import TokenUsage

OVERRIDES_FILE = Path(__file__).with_name("price_overrides.json")
PRICE_FIELDS = ("input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok")


@dataclass(frozen=True)
class Price:
    cost_usd: Decimal | None  # None: the model has no known price (never reported as 0)
    source: str | None = None  # "override" | "genai-prices"

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None


UNPRICED = Price(None)


@dataclass(frozen=True)
class Override:
    provider: str
    model_pattern: str  # exact name or fnmatch pattern, e.g. "ft:gpt-4o-mini:*"
    price: ModelPrice

    def matches(self, provider: str, model: str) -> bool:
        return self.provider == provider and fnmatch.fnmatchcase(model, self.model_pattern)


def load_overrides(path: Path = OVERRIDES_FILE) -> tuple[Override, ...]:
    """Read the overrides file: prices per million tokens, as decimal strings."""
    entries = json.loads(path.read_text())["overrides"] if path.exists() else []
    return tuple(
        Override(
            provider=entry["provider"],
            model_pattern=entry["model"],
            price=ModelPrice(**{f: Decimal(entry[f]) for f in PRICE_FIELDS if f in entry}),
        )
        for entry in entries
    )


@lru_cache(maxsize=1)
def _overrides() -> tuple[Override, ...]:
    return load_overrides()


def price_call(
    provider: str,
    model: str | None,
    usage: TokenUsage | None,
    at: datetime,
    overrides: tuple[Override, ...] | None = None,
) -> Price:
    """The cost in USD of `usage` on `model`, as charged at time `at`."""
    if usage is None or not model:
        return UNPRICED
    for override in _overrides() if overrides is None else overrides:
        if override.matches(provider, model):
            return Price(override.price.calc_price(usage.to_genai())["total_price"], "override")
    try:
        calculation = calc_price(usage.to_genai(), model, provider_id=provider, genai_request_timestamp=at)
    except LookupError:
        return UNPRICED
    return Price(calculation.total_price, "genai-prices")


def money(value: Decimal) -> str:
    """A Decimal as a plain decimal string (no exponent, no trailing zeros), the API's money format."""
    text = format(value.normalize(), "f")
    return text if text != "-0" else "0"
