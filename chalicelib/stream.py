"""The call-log stream handler: new calls and erasures become aggregate deltas; TTL expiry is archived."""
from __future__ import annotations

from typing import Any, Iterable

from datetime import datetime, timezone

from . import aggstore, archive, limits
from .api import call_view
from .models import CallRecord
from .observability import MetricUnit, flush_metrics, logger, metrics
from .rollup import Fact

TTL_PRINCIPAL = "dynamodb.amazonaws.com"


def is_ttl_expiry(record: Any) -> bool:
    identity = record.to_dict().get("userIdentity") or {}
    return identity.get("type") == "Service" and identity.get("principalId") == TTL_PRINCIPAL


def stream_label(record: Any) -> str:
    """The stream's label (its creation time): a recreated table or a restarted local stack gets a new one."""
    return record.event_source_arn.rsplit("/stream/", 1)[-1]


def handle_records(records: Iterable[Any]) -> dict[str, list[dict[str, str]]]:
    """Lambda's partial-batch answer: empty, or the first record whose effects are not all durable.

    INSERT adds a call, REMOVE by a person (erasure) subtracts it, REMOVE by TTL only archives it:
    expiry must not change the totals. MODIFY carries no new call and is ignored.
    """
    facts: list[Fact] = []
    expired: list[tuple[str, dict[str, Any]]] = []
    for record in records:
        seq, stream = int(record.sequence_number), stream_label(record)
        if record.event_name == "INSERT" and record.new_image:
            facts.append(Fact.from_call(CallRecord.from_raw_data(record.new_image), +1, seq, stream))
        elif record.event_name == "REMOVE" and record.old_image:
            call = CallRecord.from_raw_data(record.old_image)
            if is_ttl_expiry(record):
                expired.append((record.sequence_number, call_view(call) | {"day": call.day}))
            else:
                facts.append(Fact.from_call(call, -1, seq, stream))
    if expired:
        archive.archive_expired(expired)
    failed = aggstore.apply(facts)
    if facts and failed is None:
        limits.refresh_touched([f for f in facts if f.sign > 0], datetime.now(timezone.utc).replace(tzinfo=None))
    metrics.add_metric(name="RollupRecords", unit=MetricUnit.Count, value=len(facts))
    flush_metrics()
    if failed is None:
        return {"batchItemFailures": []}
    logger.warning("rollup batch partly applied; asking for a retry", extra={"from_sequence": failed})
    return {"batchItemFailures": [{"itemIdentifier": str(failed)}]}
