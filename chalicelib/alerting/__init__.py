"""Alerting: budgets, alert rules, the alert state machine, notification channels, digests, credits.

Imports reports' aggregate reads, the rollup's store, the ledger and the root; never the gateway.
"""
