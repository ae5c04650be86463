"""Providers' prepaid balances: an admin records one (`PUT /admin/provider-balances/{provider}`), the scheduled
evaluation reads OpenRouter's remaining credit from its API (one request a run, the answer cached in the table),
and each balance becomes a reading for the low-balance rule (chalicelib/alerting/decide.py)."""
from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from chalicelib import secret_store
from chalicelib.alerting.rules import BalanceReading, Rules
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import ProviderBalance, provider_balances
from chalicelib.money import AMOUNT_MAX
from chalicelib.observability import logger
from chalicelib.reports import providers
from chalicelib.settings import get_settings

PROVIDER = re.compile(r"[a-z0-9-]{1,64}")
OPENROUTER = "openrouter"
CREDITS_TIMEOUT_S = 5.0
CREDITS_BODY_MAX = 64 * 1024


def parse_amount(value: Any, name: str, required: bool = True) -> Decimal | None:
    """An amount in USD, zero or more: a JSON number (read as Decimal, never float) or a decimal string."""
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
        raise InvalidRequest(f"`{name}` must be an amount in USD such as 12.50 or \"12.50\"")
    try:
        number = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidRequest(f"`{name}` must be an amount in USD such as 12.50 or \"12.50\"") from None
    if not number.is_finite() or number < 0 or number >= AMOUNT_MAX or number.as_tuple().exponent < -12:
        raise InvalidRequest(f"`{name}` must be from 0 to below {AMOUNT_MAX:,}, with at most 12 decimal places")
    return number + 0  # no negative zero


def put_balance(provider: str, body: Any, now: datetime) -> dict[str, Any]:
    """Record a prepaid balance as at now: `{"balance_usd", "low_usd"?}`; OpenRouter's own API then corrects it."""
    if not PROVIDER.fullmatch(provider):
        raise InvalidRequest("the provider is a name of lowercase letters, digits and '-' (1 to 64)")
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object: {\"balance_usd\", \"low_usd\"}")
    unknown = sorted(str(k)[:64] for k in body if k not in ("balance_usd", "low_usd"))
    if unknown:
        raise InvalidRequest(f"unknown field(s) {', '.join(unknown)}; allowed: balance_usd, low_usd")
    if "balance_usd" not in body:
        raise InvalidRequest("`balance_usd` is required: the prepaid balance left now")
    balance = parse_amount(body["balance_usd"], "balance_usd")
    low = parse_amount(body.get("low_usd"), "low_usd", required=False)
    item = provider_balances.record(provider, balance, low, now)
    return {"provider": provider, **providers.balance_view(item, now)}


def balances_view(now: datetime) -> dict[str, Any]:
    """`GET /admin/provider-balances`: every balance as it stands now."""
    return {"balances": [{"provider": p, **providers.balance_view(item, now)}
                         for p, item in sorted(provider_balances.all_balances().items())]}


def reads_openrouter() -> bool:
    """OpenRouter's credit is read where its key is configured and its endpoint is this deployment's choice: a
    key in SSM (AWS), or a base URL set beside a key from env (the local stack's and the tests' mock upstream)."""
    settings = get_settings()
    if OPENROUTER in settings.provider_key_parameters:
        return True
    return OPENROUTER in settings.provider_keys and OPENROUTER in settings.base_urls


def refresh_openrouter(now: datetime, kept: ProviderBalance | None) -> ProviderBalance | None:
    """One `GET {base}/credits`; its `{"data": {"total_credits", "total_usage"}}` cached as OpenRouter's balance.
    A failed read keeps the last one (logged): a provider's API down must not stop the evaluation."""
    import httpx  # here: only the evaluator's OpenRouter read needs it

    url = f"{get_settings().base_url(OPENROUTER)}/credits"
    try:
        response = httpx.get(url, headers={"Authorization": f"Bearer {secret_store.provider_key(OPENROUTER)}"},
                             timeout=httpx.Timeout(CREDITS_TIMEOUT_S))
        credits = _credits(response.status_code, response.content)
    except (httpx.HTTPError, ValueError) as exc:
        logger.warning("openrouter credits not read", extra={"error": type(exc).__name__, "detail": str(exc)[:200]})
        return kept
    return provider_balances.record_reading(OPENROUTER, *credits, now, kept)


def _credits(status: int, body: bytes) -> tuple[Decimal, Decimal]:
    """(total_credits, total_usage) from OpenRouter's answer, or ValueError saying what is wrong with it."""
    if status != 200:
        raise ValueError(f"status {status}")
    if len(body) > CREDITS_BODY_MAX:
        raise ValueError("answer too large")
    try:
        parsed = json.loads(body, parse_float=Decimal)
    except RecursionError:
        raise ValueError("answer nested too deep") from None
    data = parsed.get("data") if isinstance(parsed, dict) else None
    if not isinstance(data, dict):
        raise ValueError("no `data` object")
    values = []
    for name in ("total_credits", "total_usage"):
        value = data.get(name)
        if isinstance(value, bool) or not isinstance(value, (int, Decimal)) or not 0 <= value < AMOUNT_MAX:
            raise ValueError(f"`{name}` is no amount")
        values.append(Decimal(value))
    return values[0], values[1]


def readings(now: datetime, rules: Rules) -> list[BalanceReading]:
    """Every known balance as it stands now (OpenRouter's read first, where it is read), with its low mark: the
    admin's `low_usd`, else the rules' `provider_low_usd`."""
    balances = provider_balances.all_balances()
    if reads_openrouter():
        if (read := refresh_openrouter(now, balances.get(OPENROUTER))) is not None:
            balances[OPENROUTER] = read
    default_low = Decimal(str(rules.provider_low_usd))
    found = []
    for provider, item in sorted(balances.items()):
        left, _ = providers.balance_now(item, now)
        found.append(BalanceReading(provider, left, item.low_usd if item.low_usd is not None else default_low,
                                    item.source))
    return found


