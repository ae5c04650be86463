"""Reports: the JSON API's reads over aggregate items and the call log, and the OpenAPI document.

Imports the rollup's layout and store, the ledger and the root.

Its face: the modules and names below are what other packages may import (the architecture test
holds them to it); each loads on first use, so importing the package loads none of its modules."""
from __future__ import annotations

from chalicelib.faces import lazy

MODULES = ("aggregates", "calls", "exports", "forecast", "openapi", "people", "providers", "usage")
NAMES = {  # name: the module that holds it
    "Totals": "aggregates",
    "has_time_buckets": "aggregates",
    "percentile": "aggregates",
}
__all__ = [*MODULES, *NAMES]


__getattr__ = lazy(__name__, MODULES, NAMES)
