"""The proxy function's init: what every first call does anyway, done before GET /ready (chalicelib/gateway/serve.py).

The Lambda Web Adapter sends no invocation before /ready answers, so this runs in Lambda's init phase (full CPU,
up to 10 s) with the collector paused, instead of in the first caller's call. It also makes the work smaller:
the DynamoDB and SSM clients share one botocore session (chalicelib/aws.py), so the endpoint data and the
DynamoDB model load once instead of once per pynamodb model. The reads (budgets, rate limits, the provider
keys from SSM) wait on the network in threads while this one loads the price data, so their round trips
cost the init little. What stays for the first call: its key's read (which key is unknown until it arrives).
"""
from __future__ import annotations

import sys
import threading
from typing import Callable

from chalicelib import aws, clock, secret_store
from chalicelib.ledger import ApiKey, Budget, CallRecord, ScopeLimit, budget_cache, rate_limits
from chalicelib.observability import logger
from chalicelib.settings import get_settings


OPTIONAL_IMPORTS = ("sniffio",)  # httpcore tries `import sniffio` for every lock it sets up; the zip has none


def settle_optional_imports() -> None:
    """An optional module that is absent is marked so in sys.modules: a failed import searches every path entry
    again each time (~0.1 ms), a marked one fails at once."""
    for name in OPTIONAL_IMPORTS:
        try:
            __import__(name)
        except ImportError:
            sys.modules[name] = None  # type: ignore[assignment]


def warm() -> None:
    """Clients, the budgets and rate limits, the provider keys, the price data: in init, once."""
    settle_optional_imports()
    settings = get_settings()
    aws.share_session(*(model._get_connection().connection for model in (ApiKey, Budget, ScopeLimit, CallRecord)),
                      aws.transactions())
    if settings.provider_key_parameters:
        secret_store.secrets.client()
    # a Scan, a Query, a GetParameter per provider key; still fresh for the first call if it follows within
    # the caches' seconds (the keys' five minutes)
    reads = [threading.Thread(target=_read, args=(budget_cache.budgets, "the budgets"), name="init-budgets"),
             threading.Thread(target=_read, args=(rate_limits.limit_cache.items, "the rate limits"),
                              name="init-rate-limits")]
    reads += [threading.Thread(target=_read, args=(lambda p=provider: secret_store.provider_key(p),
                                                   f"the {provider} key"), name=f"init-{provider}-key")
              for provider in settings.provider_key_parameters]
    for read in reads:
        read.start()
    _load_prices()
    for read in reads:
        read.join()


def _read(read: Callable[[], object], what: str) -> None:
    try:
        read()
    except Exception as exc:  # noqa: BLE001 - the first call reads it again, and answers the error if it lasts
        logger.warning(f"init could not read {what}", extra={"error": f"{type(exc).__name__}: {exc}"})


def _load_prices() -> None:
    """genai-prices (chalicelib/gateway/genai_lean.py) and the price data it builds on first use."""
    from chalicelib.gateway import pricing
    from chalicelib.gateway.tokens import TokenUsage

    pricing.price_call("openai", "gpt-4o-mini", TokenUsage(input_tokens=1), clock.now())
