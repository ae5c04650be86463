"""Provider adapters: everything that differs between the OpenAI, Anthropic and OpenRouter wire formats."""
from __future__ import annotations

from chalicelib.errors import NotFound
from chalicelib.gateway.providers.anthropic import AnthropicAdapter
from chalicelib.gateway.providers.base import Endpoint, ProviderAdapter
from chalicelib.gateway.providers.openai import OpenAIAdapter, OpenRouterAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    a.name: a for a in (OpenAIAdapter(), AnthropicAdapter(), OpenRouterAdapter())
}


def get_adapter(provider: str) -> ProviderAdapter:
    try:
        return ADAPTERS[provider]
    except KeyError:
        raise NotFound(f"unknown provider {provider!r}") from None


__all__ = ["ADAPTERS", "Endpoint", "ProviderAdapter", "get_adapter"]
