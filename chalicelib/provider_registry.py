"""Providers as data: the built-in ones, and the OpenAI-compatible ones a providers file declares.

A provider is a name, a wire family (which adapter speaks to it), a default base URL, where its key comes from
and its genai-prices id, with optional per-model prices. Adding one needs no code: the proxy mounts its routes,
and pricing, rollups, budgets, reports and the dashboard take it like any other.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from chalicelib.errors import ConfigurationError

FAMILIES = ("openai", "anthropic", "gemini", "bedrock", "azure")
NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?$")
# Paths of the gateway's own that a provider's name would shadow.
RESERVED = frozenset({"api", "admin", "dashboard", "health", "exports", "ready", "openapi.json", "static", "v1"})
PROVIDERS_MAX = 50
MODELS_MAX = 500
PRICE_FIELDS = {"input_mtok", "output_mtok", "cache_read_mtok", "cache_write_mtok"}
PRICE_MAX = Decimal(10) ** 6  # USD per million tokens


@dataclass(frozen=True)
class Provider:
    name: str
    family: str  # the wire format it speaks: the adapter that serves it
    base_url: str | None  # as its SDK writes it; None: built from the region (Bedrock) or only from settings (Azure)
    price_provider: str | None  # genai-prices provider id; None: priced only from `prices`
    prices: Mapping[str, Mapping[str, Decimal]] = field(default_factory=dict)  # model → USD per Mtok by kind
    api_key_env: str | None = None  # a file provider's key variable (default TOLLGATE_<NAME>_API_KEY)
    built_in: bool = False

    @property
    def env_name(self) -> str:
        return self.name.upper().replace("-", "_")


BUILT_IN = (
    Provider("openai", "openai", "https://api.openai.com/v1", "openai", built_in=True),
    Provider("anthropic", "anthropic", "https://api.anthropic.com", "anthropic", built_in=True),
    Provider("openrouter", "openai", "https://openrouter.ai/api/v1", "openrouter", built_in=True),
    Provider("groq", "openai", "https://api.groq.com/openai/v1", "groq", built_in=True),
    Provider("gemini", "gemini", "https://generativelanguage.googleapis.com", "google", built_in=True),
    Provider("bedrock", "bedrock", None, "aws", built_in=True),
    Provider("azure", "azure", None, "azure", built_in=True),
)
BUILT_IN_NAMES = tuple(p.name for p in BUILT_IN)


def parse_providers(document: Any, where: str = "providers file") -> tuple[Provider, ...]:
    """The providers a file declares, checked whole: a bad file stops the start, naming what is wrong."""
    if not isinstance(document, dict) or not isinstance(document.get("providers"), list):
        raise ConfigurationError(f'{where}: expected {{"providers": [...]}}')
    entries = document["providers"]
    if len(entries) > PROVIDERS_MAX:
        raise ConfigurationError(f"{where}: at most {PROVIDERS_MAX} providers")
    seen: set[str] = set()
    providers = []
    for n, entry in enumerate(entries):
        provider = _provider(entry, f"{where}: providers[{n}]")
        if provider.name in seen:
            raise ConfigurationError(f"{where}: provider {provider.name!r} is declared twice")
        seen.add(provider.name)
        providers.append(provider)
    return tuple(providers)


def _provider(entry: Any, where: str) -> Provider:
    if not isinstance(entry, dict):
        raise ConfigurationError(f"{where}: must be an object")
    unknown = set(entry) - {"name", "base_url", "api_key_env", "price_provider", "prices"}
    if unknown:
        raise ConfigurationError(f"{where}: unknown fields {sorted(unknown)}")
    name = entry.get("name")
    if not isinstance(name, str) or not NAME.match(name):
        raise ConfigurationError(f"{where}: `name` must be 1-32 characters of lowercase a-z, 0-9 and -")
    if name in BUILT_IN_NAMES or name in RESERVED:
        raise ConfigurationError(f"{where}: `name` {name!r} is taken by the gateway")
    base_url = entry.get("base_url")
    if not isinstance(base_url, str) or not re.match(r"^https?://[^\s/?#]+(/[^\s?#]*)?$", base_url) or len(base_url) > 512:
        raise ConfigurationError(f"{where}: `base_url` must be an http(s) URL, e.g. http://127.0.0.1:11434/v1")
    key_env = entry.get("api_key_env")
    if key_env is not None and (not isinstance(key_env, str) or not re.match(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$", key_env)):
        raise ConfigurationError(f"{where}: `api_key_env` must be an environment variable's name")
    price_provider = entry.get("price_provider")
    if price_provider is not None and (not isinstance(price_provider, str) or not NAME.match(price_provider)):
        raise ConfigurationError(f"{where}: `price_provider` must be a genai-prices provider id")
    return Provider(name, "openai", base_url.rstrip("/"), price_provider, _prices(entry.get("prices", {}), where),
                    key_env)


def _prices(prices: Any, where: str) -> dict[str, dict[str, Decimal]]:
    if not isinstance(prices, dict) or len(prices) > MODELS_MAX:
        raise ConfigurationError(f"{where}: `prices` must map at most {MODELS_MAX} models to their prices")
    table = {}
    for model, price in prices.items():
        if not isinstance(model, str) or not 0 < len(model) <= 256:
            raise ConfigurationError(f"{where}: a model name in `prices` must be 1-256 characters")
        if not isinstance(price, dict) or not price or set(price) - PRICE_FIELDS:
            raise ConfigurationError(f"{where}: prices of {model!r} take {sorted(PRICE_FIELDS)}")
        table[model] = {kind: _amount(value, f"{where}: prices of {model!r}: {kind}") for kind, value in price.items()}
    return table


def _amount(value: Any, where: str) -> Decimal:
    """A price as a decimal string (or an integer): a float would already have lost digits."""
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise ConfigurationError(f'{where} must be a decimal string, e.g. "0.05"')
    try:
        amount = Decimal(value)
    except InvalidOperation:
        raise ConfigurationError(f"{where} is not a number: {value!r}") from None
    if not amount.is_finite() or not 0 <= amount <= PRICE_MAX or len(amount.as_tuple().digits) > 12:
        raise ConfigurationError(f"{where} must be between 0 and {PRICE_MAX}, with at most 12 significant digits")
    return amount


def read_providers_file(path: str) -> tuple[Provider, ...]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigurationError(f"providers file {path!r} cannot be read: {exc.strerror}") from None
    try:
        document = json.loads(text)
    except ValueError as exc:
        raise ConfigurationError(f"providers file {path!r} is not JSON: {exc}") from None
    return parse_providers(document, f"providers file {path!r}")


@lru_cache(maxsize=4)
def declared(path: str | None) -> dict[str, Provider]:
    """The built-ins, then those of the providers file at `path` (read once)."""
    return {p.name: p for p in BUILT_IN + (read_providers_file(path) if path else ())}


def providers() -> dict[str, Provider]:
    """Every provider of this stage (`TOLLGATE_PROVIDERS_FILE`)."""
    from chalicelib.settings import get_settings  # settings itself reads the registry to know whose keys to read

    return declared(get_settings().providers_file)


def names() -> tuple[str, ...]:
    return tuple(providers())


def get(name: str) -> Provider | None:
    return providers().get(name)
