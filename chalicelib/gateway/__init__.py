"""The gateway: the streaming proxy (an ASGI app), provider wire formats, token usage, pricing, hard limits.

The first step of the flow, on the ledger beside the rollup: it authenticates, reads budgets, counts refused keys
and writes the call log there, and imports nothing of the rollup, the reports or the alerting.

Its face: the modules and names below are what other packages may import (the architecture test
holds them to it); each loads on first use, so importing the package loads none of its modules."""
from __future__ import annotations

import importlib
from typing import Any

MODULES = ("reprice",)
NAMES = {  # name: the module that holds it
}
__all__ = [*MODULES, *NAMES]


def __getattr__(name: str) -> Any:
    if name in NAMES:
        return getattr(importlib.import_module(f"{__name__}.{NAMES[name]}"), name)
    if name in MODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
