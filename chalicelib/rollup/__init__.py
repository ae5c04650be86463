"""The rollup: call-log stream records folded into aggregate items, exactly once (DynamoDB Streams → Lambda).

On the ledger beside the gateway: it imports the ledger and the root, nothing of the gateway, the reports or the
alerting. Each batch's facts go to listeners the wiring registers (app.py).

Its face: the modules and names below are what other packages may import (the architecture test
holds them to it); each loads on first use, so importing the package loads none of its modules."""
from __future__ import annotations

from chalicelib.faces import lazy

MODULES = ("handler", "merge", "quarantine", "rebuild", "store")
NAMES = {  # name: the module that holds it
    "BREAKDOWN_SCOPES": "layout",
    "BUCKETS_PER_DOUBLING": "histogram",
    "Batch": "handler",
    "CORE_COUNTERS": "layout",
    "DAY": "layout",
    "DAY_BREAKDOWNS": "layout",
    "DAY_BREAKDOWN_ITEM": "layout",
    "DETAIL": "layout",
    "ERROR_PREFIX": "layout",
    "HOURLESS_KINDS": "layout",
    "HOUR_BREAKDOWNS": "layout",
    "HOUR_BREAKDOWN_ITEM": "layout",
    "HOUR_ITEM": "layout",
    "INDEXED_COUNTERS": "layout",
    "IN_OWN_ITEM": "layout",
    "SEP": "layout",
    "SESSION_ITEM": "layout",
    "SUMMARY": "layout",
    "Scope": "layout",
    "TIERS": "layout",
    "TOKEN_KINDS": "layout",
    "breakdown_head": "layout",
    "bucket_of": "histogram",
    "five_minute_prefix": "layout",
    "hour_prefix": "layout",
    "latency_counter": "layout",
    "percentile": "histogram",
    "refusal_counter": "layout",
    "scope_id_of_day_id": "layout",
    "session_account": "layout",
    "session_of_user": "layout",
    "split_breakdown": "layout",
    "stored_name": "layout",
    "ttft_counter": "layout",
}
__all__ = [*MODULES, *NAMES]


__getattr__ = lazy(__name__, MODULES, NAMES)
