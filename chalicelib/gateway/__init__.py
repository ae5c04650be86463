"""The gateway: the streaming proxy (an ASGI app), provider wire formats, token usage, pricing, hard limits.

The top stage: it reads budgets (alerting) to enforce hard limits and writes the call log (ledger).
"""
