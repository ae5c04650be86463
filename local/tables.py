"""The tables, created in moto for the local stack, the tests and the bench; in AWS they come from infra/."""
from __future__ import annotations

from chalicelib.ledger.models import Alert, ApiKey, AuditEntry, Budget, CallRecord, CreditEntry, Delivery
from chalicelib.rollup.models import Aggregate

ALL_MODELS = (CallRecord, ApiKey, Aggregate, Budget, Alert, Delivery, CreditEntry, AuditEntry)


def create_tables() -> None:
    """Create the tables that are missing."""
    for model in ALL_MODELS:
        if not model.exists():
            model.create_table(wait=True)
