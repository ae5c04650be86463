"""Providers' prepaid balances as stored: what an admin recorded (and when), or OpenRouter's credit as its API
last said. The balance now (recorded less the metered spend since) is the reports' (reports/providers.py)."""
from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from chalicelib.clock import precise
from chalicelib.ledger.models import ProviderBalance

BALANCES_PK = "config#provider_balances"  # the aggregates table's partition of balances (IAM narrows grants to it)
API = "api"  # a balance read from the provider's own API (OpenRouter): no metered spend to take off
ADMIN = "admin"


def all_balances() -> dict[str, ProviderBalance]:
    """Every provider's balance: one Query."""
    return {item.day: item for item in ProviderBalance.query(BALANCES_PK)}


def record(provider: str, balance_usd: Decimal, low_usd: Decimal | None, now: datetime) -> ProviderBalance:
    """An admin's statement of a prepaid balance, as at `now`."""
    item = ProviderBalance(BALANCES_PK, provider, source=ADMIN, balance_usd=balance_usd, low_usd=low_usd,
                           set_at=precise(now))
    item.save()
    return item


def record_reading(provider: str, total_credits: Decimal, total_usage: Decimal, now: datetime,
                   kept: ProviderBalance | None) -> ProviderBalance:
    """What the provider's API says is left (bought less used), keeping the admin's `low_usd`."""
    item = ProviderBalance(BALANCES_PK, provider, source=API, balance_usd=total_credits - total_usage,
                           low_usd=kept.low_usd if kept is not None else None, set_at=precise(now),
                           total_credits_usd=total_credits, total_usage_usd=total_usage)
    item.save()
    return item
