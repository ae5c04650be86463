"""The local stand-in for Lambda's stream event source: read moto's DynamoDB stream, call the handler.

Same event shape as Lambda (epoch ApproximateCreationDateTime, eventSourceARN added, userIdentity
kept), same contract as the deployed mapping (infra/resources.json: ReportBatchItemFailures,
BisectBatchOnFunctionError, MaximumRetryAttempts, an on-failure destination): on `batchItemFailures`
the shard is read again from that record, in a batch half as large each time it fails; a record that
still fails alone after MAX_ATTEMPTS is handed to `dead_letter` with the reason, logged in one line,
and skipped, so no batch is read again forever. A shard whose delivery failed waits before it is read
again (BACKOFF_SECONDS, doubling while it keeps failing, at most BACKOFF_MAX_SECONDS): never a hot loop.
MAX_ATTEMPTS is 3 here, 50 in AWS: locally a poisoned record is set aside in seconds, not hours.
"""
from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

BATCH_SIZE = 100
MAX_ATTEMPTS = 3  # deliveries of a one-record batch before it goes to the dead letter
BACKOFF_SECONDS = 0.5  # the wait after a failed delivery, doubled for each failure in a row on the shard
BACKOFF_MAX_SECONDS = 30.0
REASON_CHARS = 500

DeadLetter = Callable[[dict[str, Any], str], None]


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    event = {k: v for k, v in record.items() if k != "dynamodb"}
    return event | {"dynamodb": dynamodb, "eventSourceARN": stream_arn}


def log_only(record: dict[str, Any], reason: str) -> None:
    """No dead-letter queue: the pump's log line says which record it was (the call log still holds the call)."""


def one_line(reason: str) -> str:
    """A reason as one bounded log line: a multi-line error (a traceback) never floods the log."""
    return " | ".join(line.strip() for line in reason.splitlines() if line.strip())[:REASON_CHARS] or "?"


def describe(record: dict[str, Any]) -> str:
    """Where a record was and which call it holds: enough to find it in the stream and in the call log."""
    image = record["dynamodb"].get("NewImage") or record["dynamodb"].get("OldImage") or {}
    call = " ".join(f"{name}={image[name]['S']}" for name in ("account", "call_id") if "S" in image.get(name, {}))
    return f"record {record['dynamodb']['SequenceNumber']} ({record.get('eventName')}{' ' + call if call else ''})"


def sqs_dead_letter(sqs: Any, queue_url: str) -> DeadLetter:
    """Dead-letter to an SQS queue: the record as the handler got it, the reason as a message attribute."""
    def send(record: dict[str, Any], reason: str) -> None:
        sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps(record, default=str),
                         MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000] or "?"}})
    return send


class StreamPump:
    """Polls every shard of one stream; checkpoints (last applied sequence per shard) go to a file."""

    def __init__(self, streams: Any, stream_arn: str, handler: Callable[[dict, Any], dict],
                 checkpoint_file: Path, dead_letter: DeadLetter = log_only,
                 backoff_seconds: float = BACKOFF_SECONDS) -> None:
        self.streams, self.stream_arn, self.handler = streams, stream_arn, handler
        self.checkpoint_file, self.dead_letter, self.backoff_seconds = checkpoint_file, dead_letter, backoff_seconds
        self.iterators: dict[str, str] = {}
        self.checkpoints: dict[str, str] = {}
        self.batch_sizes: dict[str, int] = {}  # per shard: halved on each failure, back up on success
        self.attempts: dict[str, tuple[str, int]] = {}  # per shard: (record failing alone, deliveries so far)
        self.failures: dict[str, int] = {}  # per shard: failed deliveries in a row
        self.not_before: dict[str, float] = {}  # per shard: when it may be read again (time.monotonic)
        self.waiting: set[str] = set()  # the shards the last pass skipped, backing off
        self.lock = threading.Lock()
        saved = json.loads(checkpoint_file.read_text()) if checkpoint_file.exists() else {}
        if saved.get("stream_arn") == stream_arn:
            self.checkpoints = saved.get("shards", {})

    def start_at_latest(self) -> None:
        """Skip what is already in the stream (e.g. items a restore just wrote)."""
        for shard in self._shards():
            if shard not in self.checkpoints:
                self.iterators[shard] = self._iterator(shard, "LATEST")

    def _shards(self) -> list[str]:
        description = self.streams.describe_stream(StreamArn=self.stream_arn)["StreamDescription"]
        return [shard["ShardId"] for shard in description["Shards"]]

    def _iterator(self, shard: str, kind: str, seq: str | None = None) -> str:
        args = {"StreamArn": self.stream_arn, "ShardId": shard, "ShardIteratorType": kind}
        if seq:
            args["SequenceNumber"] = seq
        return self.streams.get_shard_iterator(**args)["ShardIterator"]

    def run_once(self) -> int:
        """One pass over every shard; returns the number of records handed to the handler."""
        handed = 0
        with self.lock:
            self.waiting = set()
            for shard in self._shards():
                if time.monotonic() < self.not_before.get(shard, 0.0):
                    self.waiting.add(shard)  # backing off after a failed delivery
                    continue
                if shard not in self.iterators:
                    seq = self.checkpoints.get(shard)
                    self.iterators[shard] = (self._iterator(shard, "AFTER_SEQUENCE_NUMBER", seq) if seq
                                             else self._iterator(shard, "TRIM_HORIZON"))
                size = self.batch_sizes.get(shard, BATCH_SIZE)
                response = self.streams.get_records(ShardIterator=self.iterators[shard], Limit=size)
                records = [lambda_record(r, self.stream_arn) for r in response["Records"]]
                if not records:
                    self.iterators[shard] = response["NextShardIterator"]
                    continue
                handed += len(records)
                failed, reason = self._deliver(records)
                if failed is None:
                    self.iterators[shard] = response["NextShardIterator"]
                    self._done(shard, records[-1])
                    self.batch_sizes[shard] = min(BATCH_SIZE, size * 2)
                    self.failures.pop(shard, None)
                else:
                    self._back_off(shard)
                    self._failed(shard, records, failed, reason)
            self._save()
        return handed

    def _deliver(self, records: list[dict[str, Any]]) -> tuple[str | None, str]:
        """(the first record not applied, or None; why): a handler that raises failed the whole batch."""
        try:
            result = self.handler({"Records": records}, None)
        except Exception as exc:  # what Lambda calls a function error: bisect and retry
            return records[0]["dynamodb"]["SequenceNumber"], f"{type(exc).__name__}: {exc}"
        failures = (result or {}).get("batchItemFailures") or []
        if not failures:
            return None, ""
        return failures[0]["itemIdentifier"], "the handler reported it as not applied"

    def _failed(self, shard: str, records: list[dict[str, Any]], failed: str, reason: str) -> None:
        """Keep what came before `failed`; retry from it with half the batch, or dead-letter it when alone."""
        sequence = [r["dynamodb"]["SequenceNumber"] for r in records]
        position = sequence.index(failed) if failed in sequence else 0
        if position:
            self._done(shard, records[position - 1])
        self.batch_sizes[shard] = max(1, min(self.batch_sizes.get(shard, BATCH_SIZE), len(records) - position) // 2)
        if len(records) - position == 1:
            previous, count = self.attempts.get(shard, ("", 0))
            count = count + 1 if previous == failed else 1
            self.attempts[shard] = (failed, count)
            if count >= MAX_ATTEMPTS:
                print(f"[stream-pump] {describe(records[position])} dead-lettered after {count} deliveries alone: "
                      f"{one_line(reason)}", file=sys.stderr, flush=True)
                self.dead_letter(records[position], reason)
                self._done(shard, records[position])
                self.iterators[shard] = self._iterator(shard, "AFTER_SEQUENCE_NUMBER", failed)
                self.batch_sizes[shard] = BATCH_SIZE
                return
        self.iterators[shard] = self._iterator(shard, "AT_SEQUENCE_NUMBER", failed)

    def _back_off(self, shard: str) -> None:
        """Wait before reading a shard whose delivery failed: BACKOFF_SECONDS, doubling while it keeps failing."""
        failures = self.failures[shard] = self.failures.get(shard, 0) + 1
        delay = min(BACKOFF_MAX_SECONDS, self.backoff_seconds * 2 ** (failures - 1))
        self.not_before[shard] = time.monotonic() + delay

    def _done(self, shard: str, record: dict[str, Any]) -> None:
        self.checkpoints[shard] = record["dynamodb"]["SequenceNumber"]
        self.attempts.pop(shard, None)

    def drain(self, max_passes: int = 50, max_seconds: float = 60.0) -> None:
        """Pass over the shards until nothing is left, waiting out back-offs: at most `max_passes` passes and
        `max_seconds` (a stack stopping does not wait on a shard that keeps failing)."""
        deadline = time.monotonic() + max_seconds
        for _ in range(max_passes):
            if not self.run_once():
                if not self.waiting:
                    return
                wait = max(0.0, min(self.not_before[shard] for shard in self.waiting) - time.monotonic())
                if time.monotonic() + wait > deadline:
                    return
                time.sleep(wait)

    def _save(self) -> None:
        self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        self.checkpoint_file.write_text(json.dumps({"stream_arn": self.stream_arn, "shards": self.checkpoints}))


def drain_spill_queue(max_messages: int = 1000) -> dict[str, int]:
    """Pull spilled records from SQS and log them: in AWS the spill queue triggers `replay_spill`; locally this polls.

    Never raises for a message: one that cannot be written is dead-lettered and deleted; one that may
    be written later is left in the queue, to be received again after its visibility timeout (and
    dead-lettered after SPILL_RECEIVES_MAX receives). Returns the counts of replay_bodies, `retry` as
    a number. Only failing to read the queue itself raises.
    """
    from chalicelib.ledger import calllog  # here: the models bind their endpoint when first imported

    queue_url = calllog.get_settings().spill_queue_url
    totals: dict[str, int] = {"replayed": 0, "duplicates": 0}
    if not queue_url:
        return totals
    sqs = calllog.aws.client("sqs")
    seen = 0
    while seen < max_messages:
        messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10,
                                       MessageSystemAttributeNames=["ApproximateReceiveCount"]).get("Messages", [])
        if not messages:
            break
        for message in messages:
            try:
                counts = calllog.replay_bodies([message])
            except Exception as exc:  # the dead-letter queue failed: the message stays for the next run
                calllog.logger.warning("spilled call record left in the queue", extra={"error": f"{type(exc).__name__}: {exc}"})
                counts = {"retry": [message["MessageId"]]}
            for name, count in counts.items():
                totals[name] = totals.get(name, 0) + (len(count) if name == "retry" else count)
            if "retry" not in counts:
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
        seen += len(messages)
    return totals
