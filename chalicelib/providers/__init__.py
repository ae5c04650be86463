"""Provider adapters: everything that differs between the OpenAI, Anthropic and OpenRouter wire formats."""
from __future__ import annotations

from ..errors import NotFound
from .anthropic import AnthropicAdapter
from .base import Endpoint, ProviderAdapter
from .openai import OpenAIAdapter, OpenRouterAdapter

ADAPTERS: dict[str, ProviderAdapter] = {
    a.name: a for a in (OpenAIAdapter(), AnthropicAdapter(), OpenRouterAdapter())
}


def get_adapter(provider: str) -> ProviderAdapter:
    try:
        return ADAPTERS[provider]
    except KeyError:
        raise NotFound(f"unknown provider {provider!r}") from None


__all__ = ["ADAPTERS", "Endpoint", "ProviderAdapter", "get_adapter"]
