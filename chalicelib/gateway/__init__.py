"""The gateway: the streaming proxy (an ASGI app), provider wire formats, token usage, pricing, hard limits.

The first step of the flow, on the ledger beside the rollup: it authenticates, reads budgets, counts refused keys
and writes the call log there, and imports nothing of the rollup, the reports or the alerting.

Its face: the modules and names below are what other packages may import (the architecture test
holds them to it); each loads on first use, so importing the package loads none of its modules."""
from __future__ import annotations

from chalicelib.faces import lazy

MODULES = ("fallbacks", "reprice")
NAMES = {  # name: the module that holds it
    "same_wire_family": "fallbacks",
}
__all__ = [*MODULES, *NAMES]


__getattr__ = lazy(__name__, MODULES, NAMES)
