"""The gateway: the streaming proxy (an ASGI app), provider wire formats, token usage, pricing, hard limits.

The first step of the flow, on the ledger beside the rollup: it authenticates, reads budgets, counts refused keys
and writes the call log there, and imports nothing of the rollup, the reports or the alerting.
"""
