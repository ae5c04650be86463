"""Cost of a call from its usage: local overrides first, then genai-prices, then the provider's own statement.

Decimal, never a guess, and every price says where it came from: `source` (override | genai-prices |
provider) and `version` (`overrides@<hash of the file>`, the genai-prices release, or `provider`).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib import metadata

from genai_prices import calc_price

from chalicelib.errors import PriceOverridesInvalid
from chalicelib.gateway.price_overrides import OVERRIDES_FILE, PriceOverrides, load_overrides
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.observability import logger

__all__ = ["OVERRIDES_FILE", "Price", "UNPRICED", "genai_prices_version", "load_overrides", "price_call"]


@dataclass(frozen=True)
class Price:
    cost_usd: Decimal | None  # None: the model has no known price (never reported as 0)
    source: str | None = None  # "override" | "genai-prices" | "provider"
    version: str | None = None  # which prices: "overrides@<hash>", the genai-prices version, or "provider"

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None


UNPRICED = Price(None)


@lru_cache(maxsize=1)
def genai_prices_version() -> str:
    return metadata.version("genai-prices")


@lru_cache(maxsize=1)
def _overrides() -> PriceOverrides | None:
    """The shipped overrides; None if the deployed file does not load (the tests and `make package` check it,
    so this is a file changed by hand in place): then no call is priced from a price list we cannot read."""
    try:
        return load_overrides()
    except PriceOverridesInvalid as exc:
        logger.error("price overrides do not load: calls stay unpriced until they do", extra={"error": str(exc)})
        return None


def price_call(
    provider: str,
    model: str | None,
    usage: TokenUsage | None,
    at: datetime,
    overrides: PriceOverrides | None = None,
    provider_cost_usd: Decimal | None = None,
) -> Price:
    """The cost in USD of `usage` on `model`, with the prices in force at time `at`.

    Ours first (an override, else genai-prices); when we know no price for the model, the provider's
    own statement of the cost (`provider_cost_usd`, OpenRouter's `usage.cost`). No usage: unpriced.
    """
    if usage is None:
        return UNPRICED
    ours = _our_price(provider, model, usage, at, _overrides() if overrides is None else overrides) if model else None
    if ours is not None:
        return ours
    if provider_cost_usd is not None:
        return Price(provider_cost_usd, "provider", "provider")
    return UNPRICED


def _our_price(provider: str, model: str, usage: TokenUsage, at: datetime,
               overrides: PriceOverrides | None) -> Price | None:
    if overrides is None:  # the overrides file does not load
        return None
    override = overrides.find(provider, model)
    if override is not None:
        return Price(override.price.calc_price(usage.to_genai())["total_price"], "override", overrides.version)
    try:
        calculation = calc_price(usage.to_genai(), model, provider_id=provider, genai_request_timestamp=at)
    except LookupError:
        return None
    return Price(calculation.total_price, "genai-prices", genai_prices_version())

