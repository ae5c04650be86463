"""The call log: one record per call, written once (retry, then spill to SQS), read back newest first,
re-priced in place by the reprice job."""
from __future__ import annotations

import heapq
import json
import re
import secrets
import zlib
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, Iterable, Iterator

from botocore.exceptions import ParamValidationError
from pynamodb.exceptions import PutError, TransactWriteError

from chalicelib import aws, clock
from chalicelib.clock import day_of, precise, utc_today
from chalicelib.errors import InvalidRequest
from chalicelib.ledger import reservations
from chalicelib.ledger.models import CallRecord
from chalicelib.money import money
from chalicelib.observability import MetricUnit, logger, metrics
from chalicelib.settings import get_settings

DAY_SHARDS = 32  # a day's calls spread over this many `by_day` partitions: 10,000 calls/s is ~312 writes/s each
SHARD_READERS = 8  # threads that read a day's shards at once


CALL_ID = re.compile(r"call_([0-9a-f]{12})[0-9a-f]{20}")


def new_call_id(ts: datetime) -> str:
    """`call_` + the call's millisecond (12 hex digits) + 80 random bits: the id alone finds the record."""
    millis = int(ts.timestamp()) * 1000 + ts.microsecond // 1000
    return f"call_{millis:012x}{secrets.token_hex(10)}"


def _sort_key_prefix(call_id: str) -> str | None:
    """The start of the call's sort key (its timestamp to the millisecond), read back from its id."""
    match = CALL_ID.fullmatch(call_id)
    if not match:
        return None
    try:
        ts = datetime.fromtimestamp(int(match.group(1), 16) / 1000, timezone.utc)
    except (OverflowError, OSError, ValueError):
        return None
    return precise(ts)[:23]



def day_shard(day: str, call_id: str) -> str:
    """The call's `by_day` key: `<day>#<nn>`, nn a stable hash of the id, so a day's writes spread over
    DAY_SHARDS partitions (one takes at most 1,000 writes/s) and the id alone names its shard."""
    return f"{day}#{zlib.crc32(call_id.encode()) % DAY_SHARDS:02d}"


def new_record(call_id: str, ts: datetime, account: str, **fields: Any) -> CallRecord:
    """A call record with its derived keys (sort key, day, day shard) and expiry filled in."""
    stamp = precise(ts)
    return CallRecord(
        account,
        f"{stamp}#{call_id}",
        call_id=call_id,
        ts=stamp,
        day=stamp[:10],
        day_shard=day_shard(stamp[:10], call_id),
        expires_at=ts + timedelta(days=get_settings().call_ttl_days),
        **fields,
    )


def _put_once(record: CallRecord) -> bool:
    """Put unless the call is already logged; True if it was written now, False if it was there."""
    return aws.conditional(lambda: record.save(condition=CallRecord.call_id.does_not_exist()))


def write(record: CallRecord) -> str:
    """Log a call; never raises. botocore retries throttles and 5xx, then the record spills to SQS.

    Returns "written", "spilled" or "logged" (both stores failed: the full record went to the
    structured log, the last durable place left, and a metric counts it).
    """
    try:
        _put_once(record)
        return "written"
    except PutError as exc:
        logger.warning("call log write failed, spilling", extra={"error": exc.cause_response_code or str(exc)})
    return spill(record)


HOLDS_FIELD = "tollgate_holds"  # beside the record's attributes in a spilled message: the holds its write settles


def spill(record: CallRecord, holds: tuple[reservations.Hold, ...] = ()) -> str:
    """Send the record to the spill queue, with the hard budgets' holds its write must settle (the replay settles
    them in the same transaction as its put)."""
    serialized = record.serialize()
    if holds:
        serialized[HOLDS_FIELD] = reservations.holds_payload(holds)
    payload = json.dumps(serialized)
    queue_url = get_settings().spill_queue_url
    try:
        if not queue_url:
            raise RuntimeError("no spill queue configured")
        aws.client("sqs").send_message(QueueUrl=queue_url, MessageBody=payload)
        metrics.add_metric(name="CallLogSpilled", unit=MetricUnit.Count, value=1)
        return "spilled"
    except Exception as exc:  # the last resort must not fail the caller: the record goes to the log
        logger.error("call record not stored; replay it from this log line",
                     extra={"call_record": payload, "error": str(exc)})
        metrics.add_metric(name="CallLogLost", unit=MetricUnit.Count, value=1)
        return "logged"


SPILL_RECEIVES_MAX = 5  # a spilled record still not written after this many receives is dead-lettered


class _Unwritable(Exception):
    """A spilled message no retry can write (not a call record, or refused by DynamoDB); says why."""


def replay_bodies(messages: Iterable[str | dict[str, Any]]) -> dict[str, Any]:
    """Write spilled records; a record already in the table counts as a duplicate, not a second call.

    `messages` are SQS messages as Lambda or ReceiveMessage gives them (or bare bodies). One that can
    never be written, or is still not written after SPILL_RECEIVES_MAX receives, goes to the spill
    queue's dead-letter queue with the reason. Returns `replayed` and `duplicates`, and when there are
    any, `dead_lettered` and `retry` (ids of messages to receive again: Lambda's batchItemFailures).
    A bare body that fails for a reason that may pass raises: there is nothing to receive again.
    """
    counts: dict[str, Any] = {"replayed": 0, "duplicates": 0}
    for message in messages:
        body, message_id, receives = _spilled(message)
        try:
            counts[_write_spilled(body)] += 1
            continue
        except _Unwritable as exc:
            reason = str(exc)
        except Exception as exc:  # throttling, an outage: received again later, up to SPILL_RECEIVES_MAX
            if message_id is None:
                raise
            if receives < SPILL_RECEIVES_MAX:
                logger.warning("spilled call record not written yet", extra={"error": f"{type(exc).__name__}: {exc}"})
                counts.setdefault("retry", []).append(message_id)
                continue
            reason = f"still not written after {receives} receives: {type(exc).__name__}: {exc}"
        _dead_letter(body, reason, receives)
        counts["dead_lettered"] = counts.get("dead_lettered", 0) + 1
    return counts


def _spilled(message: str | dict[str, Any]) -> tuple[str, str | None, int]:
    """(body, message id, receives so far) of an SQS message as Lambda (`body`) or ReceiveMessage (`Body`) has it."""
    if isinstance(message, str):
        return message, None, 1
    if "Body" in message:
        body, message_id, attributes = message["Body"], message.get("MessageId"), message.get("Attributes", {})
    else:
        body, message_id, attributes = message["body"], message.get("messageId"), message.get("attributes", {})
    return body, message_id, int(attributes.get("ApproximateReceiveCount", 1))


def _write_spilled(body: str) -> str:
    """"replayed" or "duplicates"; _Unwritable when no retry can help, anything else when one may."""
    try:
        raw = json.loads(body)
        holds = reservations.holds_of_payload(raw.pop(HOLDS_FIELD, []))
        record = CallRecord.from_raw_data(raw)
    except Exception as exc:  # parsing is pure: what fails once fails every time
        raise _Unwritable(f"not a call record: {type(exc).__name__}: {exc}") from exc
    if record.day_shard is None and record.day and record.call_id:  # spilled before `by_day` was sharded
        record.day_shard = day_shard(record.day, record.call_id)
    try:
        written = reservations.write_settled(record, holds) if holds else _put_once(record)
        return "replayed" if written else "duplicates"
    except (PutError, TransactWriteError) as exc:
        if exc.cause_response_code == "ValidationException" or isinstance(exc.cause, ParamValidationError):
            raise _Unwritable(f"DynamoDB refused it: {exc.cause_response_code or type(exc.cause).__name__}: "
                             f"{exc.cause_response_message or exc.cause}") from exc
        raise
    except (ValueError, TypeError, ParamValidationError) as exc:  # cannot be serialized (a lone surrogate, a null key)
        raise _Unwritable(f"it cannot be sent to DynamoDB: {type(exc).__name__}: {exc}") from exc


def _dead_letter(body: str, reason: str, receives: int) -> None:
    """Move a spilled record to the dead-letter queue of the spill queue (its redrive policy names it), with why."""
    reason = "".join(c if c.isprintable() else "?" for c in reason)[:1000] or "?"
    sqs, queue_url = aws.client("sqs"), get_settings().spill_queue_url
    policy = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["RedrivePolicy"])["Attributes"].get(
        "RedrivePolicy") if queue_url else None
    if not policy:
        logger.error("spilled call record cannot be written and there is no dead-letter queue; replay it from "
                     "this log line", extra={"call_record": body, "reason": reason})
        metrics.add_metric(name="CallLogLost", unit=MetricUnit.Count, value=1)
        return
    _, _, _, _, owner, name = json.loads(policy)["deadLetterTargetArn"].split(":", 5)
    target = sqs.get_queue_url(QueueName=name, QueueOwnerAWSAccountId=owner)["QueueUrl"]
    sqs.send_message(QueueUrl=target, MessageBody=body, MessageAttributes={
        "reason": {"DataType": "String", "StringValue": reason},
        "receives": {"DataType": "Number", "StringValue": str(receives)}})
    logger.error("spilled call record dead-lettered", extra={"reason": reason})
    metrics.add_metric(name="CallLogDeadLettered", unit=MetricUnit.Count, value=1)


def spill_backlog() -> int | None:
    """Approximate number of spilled records waiting; None when there is no queue."""
    queue_url = get_settings().spill_queue_url
    if not queue_url:
        return None
    attributes = aws.client("sqs").get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"])


def set_price(record: CallRecord, cost_usd: Decimal | None, source: str | None, version: str | None,
              at: datetime, estimated_cost_usd: Decimal | None = None, price_drift: bool | None = None) -> bool:
    """Re-price one logged call in place: cost, priced, price source and version, `repriced_at`, and our
    estimate beside a stated cost with its drift flag.

    Conditional on the call still being logged with the price it was read with, so an erased or
    expired call is not brought back and a concurrent change is not overwritten. True if written;
    False if the condition failed (read the call again to retry). The stream carries the change
    (MODIFY, both images) to the rollup.
    """
    condition = CallRecord.call_id.exists() & _holds(CallRecord.cost_usd, record.cost_usd) & _holds(
        CallRecord.price_source, record.price_source)
    actions = [CallRecord.priced.set(cost_usd is not None), CallRecord.repriced_at.set(precise(at))]
    for attribute, value in ((CallRecord.cost_usd, cost_usd), (CallRecord.price_source, source),
                             (CallRecord.price_version, version), (CallRecord.estimated_cost_usd, estimated_cost_usd),
                             (CallRecord.price_drift, price_drift)):
        actions.append(attribute.remove() if value is None else attribute.set(value))
    return aws.conditional(lambda: record.update(actions=actions, condition=condition))


def _holds(attribute: Any, value: Any) -> Any:
    return attribute.does_not_exist() if value is None else attribute == value


def find_call(call_id: str, account: str | None = None) -> CallRecord | None:
    """One call by id: one Query on the account, or on its `by_day` shard for every account (the id holds the
    time, and names the shard)."""
    prefix = _sort_key_prefix(call_id)
    if prefix is None:
        return None
    sort_key = CallRecord.sk.startswith(prefix)
    matches = CallRecord.call_id == call_id
    if account:
        found = CallRecord.query(account, sort_key, filter_condition=matches)
    else:
        found = CallRecord.by_day.query(day_shard(prefix[:10], call_id), sort_key, filter_condition=matches)
    return next(iter(found), None)


def filters(**fields: str | None):
    """A filter condition for queries of calls: each named call attribute equal to its value (None: any)."""
    condition = None
    for name, value in fields.items():
        if value:
            clause = getattr(CallRecord, name) == value
            condition = clause if condition is None else condition & clause
    return condition


def calls_of_day(day: str, range_condition: Any = None, filter_condition: Any = None, newest_first: bool = True,
                 limit: int | None = None, page_size: int | None = None) -> Iterator[CallRecord]:
    """Every account's calls of a UTC day in sort-key order, at most `limit`: one Query per `by_day` shard, the
    first pages read concurrently, the rest as the merge needs them."""
    def first_page(shard: int) -> Iterator[CallRecord]:
        found = iter(CallRecord.by_day.query(f"{day}#{shard:02d}", range_condition, filter_condition=filter_condition,
                                             scan_index_forward=not newest_first, limit=limit, page_size=page_size))
        head = next(found, None)
        return iter(()) if head is None else _chain(head, found)

    with ThreadPoolExecutor(SHARD_READERS) as pool:
        shards = list(pool.map(first_page, range(DAY_SHARDS)))
    merged = heapq.merge(*shards, key=lambda record: record.sk, reverse=newest_first)
    for count, record in enumerate(merged, start=1):
        yield record
        if limit is not None and count >= limit:
            return


def _chain(head: CallRecord, rest: Iterator[CallRecord]) -> Iterator[CallRecord]:
    yield head
    yield from rest


def recent_calls(
    account: str | None = None,
    limit: int = 50,
    provider: str | None = None,
    model: str | None = None,
    before: str | None = None,
    days_with_calls: Iterable[str] | None = None,
) -> Iterator[CallRecord]:
    """Newest calls first, optionally of one account, older than the `before` cursor (a sort key).

    One account: one Query on the table. All accounts: `calls_of_day` (a Query per shard) per UTC day, walking
    back from today (or the cursor's day) until `limit` calls or the retention period is covered; only the
    `days_with_calls` when the caller knows them (the aggregates do), so empty days cost no Query.
    """
    condition = filters(provider=provider, model=model)
    range_condition = CallRecord.sk < before if before else None
    if account:
        yield from CallRecord.query(account, range_condition, filter_condition=condition,
                                    scan_index_forward=False, limit=limit, page_size=max(limit, 25))
        return
    start = clock.midnight(before[:10]) if before else clock.now()
    remaining = limit
    known = set(days_with_calls) if days_with_calls is not None else None
    for days_back in range(get_settings().call_ttl_days + 1):
        day = day_of(start - timedelta(days=days_back))
        if known is not None and day not in known:
            continue
        for record in calls_of_day(day, range_condition, condition, limit=remaining, page_size=max(remaining, 25)):
            yield record
            remaining -= 1
        if remaining <= 0:
            return


def calls_between(start: datetime, end: datetime, limit: int = 2000) -> list[CallRecord]:
    """Every account's calls whose time falls in [start, end], newest first, at most `limit`: `calls_of_day` per
    UTC day, bounded by the sort key (a call's time) rather than a count of calls."""
    found: list[CallRecord] = []
    first = start.astimezone(timezone.utc).date()
    day = end.astimezone(timezone.utc).date()
    while day >= first and len(found) < limit:
        found += calls_of_day(day.isoformat(), CallRecord.sk.between(precise(start), precise(end) + "#~"),
                              limit=limit - len(found))
        day -= timedelta(days=1)
    return found


def oldest_logged_day() -> date:
    """The oldest UTC day whose calls are all still in the call log: TTL may delete a call from
    `call_ttl_days` after it was logged, so the day before this one may be partly gone already."""
    return utc_today() - timedelta(days=get_settings().call_ttl_days - 1)


def within_retention(first: date, what: str) -> None:
    oldest = oldest_logged_day()
    if first < oldest:
        raise InvalidRequest(
            f"{first.isoformat()} is outside the call log's retention: calls are kept "
            f"{get_settings().call_ttl_days} days (TOLLGATE_CALL_TTL_DAYS), so days before {oldest.isoformat()} may "
            f"have expired and cannot be {what} from it; the oldest day that can be is {oldest.isoformat()}")


def _money_or_none(value) -> str | None:
    return None if value is None else money(value)


def call_view(record: CallRecord) -> dict[str, Any]:
    """A call as the API shows it: token kinds disjoint (input excludes cache), money as strings."""
    return {
        "call_id": record.call_id, "ts": record.ts, "provider": record.provider, "model": record.model,
        "endpoint": record.endpoint, "operation": record.operation, "account": record.account,
        "team": record.team, "key_id": record.key_id, "user": record.user, "session": record.session,
        "tags": dict(record.tags.as_dict()) if record.tags else {}, "status": record.status,
        "error_type": record.error_type, "input_tokens": record.input_tokens,
        "cache_read_tokens": record.cache_read_tokens, "cache_write_tokens": record.cache_write_tokens,
        "cache_write_1h_tokens": record.cache_write_1h_tokens, "output_tokens": record.output_tokens,
        "reasoning_tokens": record.reasoning_tokens, "input_audio_tokens": record.input_audio_tokens or 0,
        "output_audio_tokens": record.output_audio_tokens or 0, "web_searches": record.web_searches or 0,
        "input_image_tokens": record.input_image_tokens or 0, "output_image_tokens": record.output_image_tokens or 0,
        "images": record.images or 0,
        "service_tier": record.service_tier, "speed": record.speed, "usage_reported": record.usage_reported,
        "cost_usd": _money_or_none(record.cost_usd), "priced": record.priced,
        "price_source": record.price_source, "price_version": record.price_version,
        "repriced_at": record.repriced_at, "provider_cost_usd": _money_or_none(record.provider_cost_usd),
        "estimated_cost_usd": _money_or_none(record.estimated_cost_usd), "price_drift": record.price_drift,
        "latency_ms": record.latency_ms, "upstream_latency_ms": record.upstream_latency_ms,
        "ttft_ms": record.ttft_ms, "output_tokens_per_s": record.output_tokens_per_s, "stream": record.stream,
        "attempts": attempts_view(record.attempts),
    }


def attempts_view(attempts) -> list[dict[str, Any]] | None:
    """Every try of a call that fell back, in order (the last answered or failed the call); None: one try."""
    if not attempts:
        return None
    return [{"provider": a.provider, "model": a.model, "status": a.status, "error_type": a.error_type,
             "latency_ms": a.latency_ms} for a in attempts]
