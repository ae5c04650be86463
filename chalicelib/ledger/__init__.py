"""The ledger: the tables, the one record per call, keys and who is calling, budgets as stored, the signals the
alerts read, the audit trail, archive, GDPR.

The bottom stage: it imports only the root modules (settings, errors, aws, clock, money, names).
"""
