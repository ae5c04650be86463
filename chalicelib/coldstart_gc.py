"""Cold start: the garbage collector rests while an entry point (app.py, chalicelib/gateway/serve.py) loads its modules.

Importing builds a few hundred thousand objects that live as long as the process, and the collector, run by
allocation counts, walks the growing heap again and again as they pile up: ~30 ms of each cold import
(bench/coldstart.py, bench/footprint.py). Importing this module pauses it; `loaded()` moves everything made so
far to the permanent generation, so no collection walks that module-level state again (the few hundred
objects of cyclic garbage the imports leave stay with it), and lets the collector run as before.
"""
from __future__ import annotations

import gc

gc.disable()


def loaded() -> None:
    """The entry point's modules are in: freeze them and collect as usual from here on."""
    gc.freeze()
    gc.enable()
