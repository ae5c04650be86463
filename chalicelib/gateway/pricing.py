"""Cost of a call from its usage: the provider's own statement of it (the invoice), else local overrides, then
genai-prices, at the service tier / speed the answer states.

Decimal, never a guess, and every price says where it came from: `source` (override | genai-prices |
provider) and `version` (`overrides@<hash of the file>`, the genai-prices release, or `provider`). Beside a
stated cost stays our own estimate, and whether the two drift apart by more than
max($0.000001, 1 % of the stated cost).
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from importlib import metadata

from chalicelib.gateway import genai_lean

genai_lean.ensure()  # before genai_prices is imported: without its updater's HTTP client and pydantic

from genai_prices import calc_price  # noqa: E402  (imported lean first)
from genai_prices.types import ModelPrice  # noqa: E402

from chalicelib import provider_registry  # noqa: E402
from chalicelib.errors import PriceOverridesInvalid
from chalicelib.gateway import image_prices
from chalicelib.gateway.price_overrides import OVERRIDES_FILE, PriceOverrides, load_overrides
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.observability import logger

__all__ = ["OVERRIDES_FILE", "Price", "UNPRICED", "drifts", "genai_prices_version", "load_overrides", "price_call"]


DRIFT_MIN_USD = Decimal("0.000001")  # a stated cost and our estimate differ past rounding when apart by more than
DRIFT_SHARE = Decimal("0.01")  # max(DRIFT_MIN_USD, 1 % of the stated cost)


@dataclass(frozen=True)
class Price:
    cost_usd: Decimal | None  # None: the model has no known price (never reported as 0)
    source: str | None = None  # "override" | "genai-prices" | "provider"
    version: str | None = None  # which prices: "overrides@<hash>", the genai-prices version, or "provider"
    estimated_cost_usd: Decimal | None = None  # ours, kept beside the provider's statement when that is the price

    @property
    def priced(self) -> bool:
        return self.cost_usd is not None

    @property
    def price_drift(self) -> bool | None:
        """Do the provider's statement and our estimate disagree past max($0.000001, 1 %)? None without both."""
        return drifts(self.cost_usd, self.estimated_cost_usd) if self.source == "provider" else None


def drifts(stated_usd: Decimal | None, estimated_usd: Decimal | None) -> bool | None:
    if stated_usd is None or estimated_usd is None:
        return None
    return abs(stated_usd - estimated_usd) > max(DRIFT_MIN_USD, stated_usd * DRIFT_SHARE)


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

    The provider's own statement of the cost (`provider_cost_usd`, OpenRouter's `usage.cost`) is what it
    bills, so it is the price, with ours beside it as `estimated_cost_usd`; else ours (an override, else
    genai-prices at the stated service tier and speed). No usage: unpriced, whatever is stated.
    """
    if usage is None:
        return UNPRICED
    ours = _our_price(provider, model, usage, at, _overrides() if overrides is None else overrides) if model else None
    if provider_cost_usd is not None:
        return Price(provider_cost_usd, "provider", "provider", ours.cost_usd if ours is not None else None)
    return ours if ours is not None else UNPRICED


def _our_price(provider: str, model: str, usage: TokenUsage, at: datetime,
               overrides: PriceOverrides | None) -> Price | None:
    if overrides is None:  # the overrides file does not load
        return None
    override = overrides.find(provider, model, at)
    if override is not None:
        return Price(override.price.calc_price(usage.to_genai())["total_price"], "override", overrides.version)
    entry = provider_registry.get(provider)
    if entry is not None and model in entry.prices:
        return Price(_declared(entry.prices[model]).calc_price(usage.to_genai())["total_price"],
                     "providers-file", "providers-file")
    price_provider = entry.price_provider if entry is not None else provider
    resells = entry is not None and entry.name in LIST_PRICE_OF
    if image_prices.billed_per_image(model) and "openai" in (price_provider, LIST_PRICE_OF.get(provider)):
        each = image_prices.cost(model, usage.images, usage.image_variant)
        return Price(each, image_prices.SOURCE, image_prices.VERSION) if each is not None else None
    price = _genai_price(price_provider, model, usage, at, name_lender=resells) if price_provider else None
    if price is None and resells:  # Azure: OpenAI's list price
        list_provider = LIST_PRICE_OF[entry.name]
        listed = _genai_price(list_provider, model, usage, at)
        return Price(listed.cost_usd, f"genai-prices/{list_provider}", listed.version) if listed else None
    return price


# A provider that resells another's models, priced at the other's list price where the price data lacks its own.
LIST_PRICE_OF = {"azure": "openai"}


def _genai_price(price_provider: str, model: str, usage: TokenUsage, at: datetime,
                 name_lender: bool = False) -> Price | None:
    """genai-prices' price. `name_lender`: a price genai-prices borrowed from another provider's list (Azure's
    gpt-4o-mini at OpenAI's) says whose it is, `genai-prices/<provider>`, as genai-prices itself does not."""
    try:
        calculation = calc_price(usage.to_genai(), model, provider_id=price_provider, genai_request_timestamp=at,
                                 price_context=usage.price_context() or None)
    except LookupError:
        return None
    except ValueError as exc:  # kinds genai-prices cannot split (more audio than uncached input, say)
        logger.warning("usage genai-prices cannot price", extra={"model": model, "error": str(exc)})
        return None
    source = "genai-prices"
    if name_lender and not any(listed is calculation.model for listed in calculation.provider.models):
        source = f"genai-prices/{_lister(calculation.model)}"
    return Price(calculation.total_price, source, genai_prices_version())


def _lister(model) -> str:
    from genai_prices import data_snapshot

    return next((p.id for p in data_snapshot.get_snapshot().providers if any(m is model for m in p.models)), "other")


def _declared(prices) -> ModelPrice:
    """A providers file's per-Mtok prices as genai-prices' own price type (Decimal in, Decimal out)."""
    return ModelPrice(**prices)

