"""The proxy function's init: what every first call does anyway, done before GET /ready (chalicelib/gateway/serve.py).

The Lambda Web Adapter sends no invocation before /ready answers, so this runs in Lambda's init phase (full CPU,
up to 10 s) with the collector paused, instead of in the first caller's call. It also makes the work smaller:
the DynamoDB and SSM clients share one botocore session (chalicelib/aws.py), so the endpoint data and the
DynamoDB model load once instead of once per pynamodb model. What stays for the first call: its key's read
(which key is unknown until it arrives) and its provider key's read from SSM.
"""
from __future__ import annotations

from chalicelib import aws, clock, secret_store
from chalicelib.ledger import ApiKey, Budget, CallRecord, ScopeLimit, budget_cache, rate_limits
from chalicelib.observability import logger
from chalicelib.settings import get_settings


def warm() -> None:
    """Clients, the budgets and rate limits, the price data: in init, once."""
    settings = get_settings()
    aws.share_session(*(model._get_connection().connection for model in (ApiKey, Budget, ScopeLimit, CallRecord)),
                      aws.transactions())
    if settings.provider_key_parameters:
        secret_store.secrets.client()
    try:  # a Scan and a Query; still fresh for the first call if it follows within the caches' seconds
        budget_cache.budgets()
        rate_limits.limit_cache.items()
    except Exception as exc:  # noqa: BLE001 - the first call reads them again, and answers the error if it lasts
        logger.warning("init could not read the budgets and rate limits",
                       extra={"error": f"{type(exc).__name__}: {exc}"})
    _load_prices()


def _load_prices() -> None:
    """genai-prices and pydantic (~70 ms of imports) and the price data they build on first use."""
    from chalicelib.gateway import pricing
    from chalicelib.gateway.tokens import TokenUsage

    pricing.price_call("openai", "gpt-4o-mini", TokenUsage(input_tokens=1), clock.now())
