"""genai-prices, imported without the parts Tollgate never runs: its price updater's HTTP client (httpx2) and pydantic.

Tollgate prices from the data genai-prices ships (`genai_prices.data`: its dataclasses, built directly) with
genai-prices' own lookup and arithmetic. What it leaves out is what only turns downloaded price JSON into
that data: httpx2, loaded on first use instead, and pydantic's validation. Together ~90 ms of the proxy
function's init (bench/coldstart.py), so `ensure()` runs before anything imports genai_prices.
"""
from __future__ import annotations

import importlib
import sys
import types


class _OnFirstUse(types.ModuleType):
    """Stands in `sys.modules` for a module until one of its names is used, then imports it and answers from it.

    genai-prices' price updater imports httpx2, a second HTTP client, which Tollgate never runs. The standard
    library's LazyLoader cannot defer it on Python 3.13, whose import statement reads the module's `__spec__`,
    and so loads it."""

    def __getattr__(self, name: str):
        if sys.modules.get(self.__name__) is self:
            del sys.modules[self.__name__]
        return getattr(importlib.import_module(self.__name__), name)


class PydanticStandIn(types.ModuleType):
    """What `genai_prices.types` takes from pydantic while it is imported: markers in type annotations (Tag,
    Discriminator, Field, ConfigDict), read only by pydantic's validation, and two TypeAdapters that validate
    raw price data (the updater's downloads). Pydantic with pydantic-core's schema types, annotated-types and
    typing-inspection, and building one adapter, are ~70 ms of imports that pricing never uses."""

    class _Marker:
        def __init__(self, *args, **kwargs) -> None:
            pass

    class TypeAdapter(_Marker):
        def validate_python(self, *args, **kwargs):
            raise RuntimeError("genai-prices was imported without pydantic (chalicelib/gateway/genai_lean.py): "
                               "it prices from its bundled data but cannot validate raw price data")

    Tag = Discriminator = Field = ConfigDict = _Marker


def ensure() -> None:
    """Import genai-prices lean, unless it is imported already (then as it was). pydantic, if anything loaded it,
    stays as it was in `sys.modules`: only genai-prices' types module holds the stand-in."""
    if "genai_prices" in sys.modules:
        return
    if "httpx2" not in sys.modules:
        sys.modules["httpx2"] = _OnFirstUse("httpx2")
    pydantic = sys.modules.get("pydantic")
    sys.modules["pydantic"] = PydanticStandIn("pydantic")
    try:
        importlib.import_module("genai_prices")  # with genai_prices.types
    finally:
        if pydantic is None:
            del sys.modules["pydantic"]
        else:
            sys.modules["pydantic"] = pydantic
