"""Alerting: budget math, alert rules, the alert state machine, notification channels, digests, credits.

The top stage: it may import every stage below. It reads the reports' aggregate math, the rollup's store, and the
ledger's budgets and signals; its rollup listeners (expensive calls, costly sessions, budgets) are wired in app.py.
"""
