"""The ledger: the tables, the one record per call, keys and who is calling, budgets as stored, the signals the
alerts read, the audit trail, archive, GDPR.

The bottom stage: it imports only the root modules (settings, errors, aws, clock, money, names).

Its face: the modules and names below are what other packages may import (the architecture test
holds them to it); each loads on first use, so importing the package loads none of its modules."""
from __future__ import annotations

from chalicelib.faces import lazy

MODULES = ("archive", "audit", "auth", "calllog", "dead_letters", "fallback_rules", "gdpr", "key_limits", "keys",
           "provider_balances", "rate_limits", "reservations", "signals")
NAMES = {  # name: the module that holds it
    "Alert": "models",
    "ApiKey": "models",
    "Budget": "models",
    "BudgetHold": "models",
    "BudgetLedger": "models",
    "BudgetSpec": "budgets",
    "CallRecord": "models",
    "CreditEntry": "models",
    "DEFAULT_ON": "fallback_rules",
    "DEFAULT_THRESHOLDS": "budgets",
    "Delivery": "models",
    "FallbackRule": "fallback_rules",
    "ProviderBalance": "models",
    "Principal": "auth",
    "RateLimit": "rate_limits",
    "RateWindow": "models",
    "ScopeLimit": "models",
    "SignalNote": "models",
    "Target": "fallback_rules",
    "TableMeta": "models",
    "WindowSpend": "models",
    "all_budgets": "budgets",
    "budget_cache": "budgets",
    "call_view": "calllog",
    "calls_of_day": "calllog",
    "fallback_cache": "fallback_rules",
    "filters": "calllog",
    "note_costly_session": "signals",
    "note_expensive_call": "signals",
    "ledger_period": "budgets",
    "period_bounds": "budgets",
    "scoped_account": "auth",
    "spec_of": "budgets",
    "table_settings": "models",
}
__all__ = [*MODULES, *NAMES]


__getattr__ = lazy(__name__, MODULES, NAMES)
