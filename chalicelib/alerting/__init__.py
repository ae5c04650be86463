"""Alerting: budget math, alert rules, the alert state machine, notification channels, digests, credits.

The top stage: it may import every stage below. It reads the reports' aggregate math, the rollup's store, and the
ledger's budgets and signals; its rollup listeners (expensive calls, costly sessions, budgets) are wired in app.py.

Its face: the modules and names below are what other packages may import (the architecture test
holds them to it); each loads on first use, so importing the package loads none of its modules."""
from __future__ import annotations

from chalicelib.faces import lazy

MODULES = ("alert_store", "budget_store", "credits", "digest", "listeners", "measure", "notify", "provider_balances")
NAMES = {  # name: the module that holds it
}
__all__ = [*MODULES, *NAMES]


__getattr__ = lazy(__name__, MODULES, NAMES)
