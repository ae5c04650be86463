"""Provider adapters: one a wire family, one instance a provider of the registry (chalicelib/provider_registry.py)."""
from __future__ import annotations

from functools import lru_cache

from chalicelib import provider_registry
from chalicelib.errors import NotFound
from chalicelib.gateway.providers.anthropic import AnthropicAdapter
from chalicelib.gateway.providers.base import Endpoint, ProviderAdapter
from chalicelib.gateway.providers.openai import (
    AzureAdapter,
    CompatibleAdapter,
    GroqAdapter,
    OpenAIAdapter,
    OpenRouterAdapter,
)

# Built-in providers whose adapter is their own; the others get their family's.
_OWN = {"openai": OpenAIAdapter, "openrouter": OpenRouterAdapter, "groq": GroqAdapter, "azure": AzureAdapter}
_FAMILY = {"openai": CompatibleAdapter, "anthropic": AnthropicAdapter}


def _family_adapter(family: str) -> type[ProviderAdapter]:
    """Gemini's and Bedrock's adapters load only when a call needs them."""
    if family == "gemini":
        from chalicelib.gateway.providers.gemini import GeminiAdapter
        return GeminiAdapter
    if family == "bedrock":
        from chalicelib.gateway.providers.bedrock import BedrockAdapter
        return BedrockAdapter
    return _FAMILY[family]


@lru_cache(maxsize=None)
def get_adapter(provider: str) -> ProviderAdapter:
    entry = provider_registry.get(provider)
    if entry is None:
        raise NotFound(f"unknown provider {provider!r}")
    adapter_class = _OWN.get(provider) or _family_adapter(entry.family)
    return adapter_class(entry.name, entry.price_provider)


__all__ = ["Endpoint", "ProviderAdapter", "get_adapter"]
