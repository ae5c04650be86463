"""The ledger: the tables, the one record per call, keys and who is calling, the audit trail, archive, GDPR.

Lowest stage: it imports only the root modules (settings, errors, aws, clock, money, names).
"""
