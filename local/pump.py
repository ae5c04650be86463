"""The local stand-in for Lambda's stream event source: read moto's DynamoDB stream, call the handler.

Same event shape as Lambda (epoch ApproximateCreationDateTime, eventSourceARN added, userIdentity
kept), same partial-batch contract: on `batchItemFailures` the shard is read again from that record.
"""
from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any, Callable

BATCH_SIZE = 100


def lambda_record(record: dict[str, Any], stream_arn: str) -> dict[str, Any]:
    dynamodb = dict(record["dynamodb"])
    created = dynamodb.get("ApproximateCreationDateTime")
    if hasattr(created, "timestamp"):
        dynamodb["ApproximateCreationDateTime"] = int(created.timestamp())
    event = {k: v for k, v in record.items() if k != "dynamodb"}
    return event | {"dynamodb": dynamodb, "eventSourceARN": stream_arn}


class StreamPump:
    """Polls every shard of one stream; checkpoints (last applied sequence per shard) go to a file."""

    def __init__(self, streams: Any, stream_arn: str, handler: Callable[[dict, Any], dict],
                 checkpoint_file: Path) -> None:
        self.streams, self.stream_arn, self.handler = streams, stream_arn, handler
        self.checkpoint_file = checkpoint_file
        self.iterators: dict[str, str] = {}
        self.checkpoints: dict[str, str] = {}
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
            for shard in self._shards():
                if shard not in self.iterators:
                    seq = self.checkpoints.get(shard)
                    self.iterators[shard] = (self._iterator(shard, "AFTER_SEQUENCE_NUMBER", seq) if seq
                                             else self._iterator(shard, "TRIM_HORIZON"))
                response = self.streams.get_records(ShardIterator=self.iterators[shard], Limit=BATCH_SIZE)
                records = response["Records"]
                if not records:
                    self.iterators[shard] = response["NextShardIterator"]
                    continue
                handed += len(records)
                result = self.handler({"Records": [lambda_record(r, self.stream_arn) for r in records]}, None)
                failures = (result or {}).get("batchItemFailures") or []
                if failures:
                    failed = failures[0]["itemIdentifier"]
                    self.iterators[shard] = self._iterator(shard, "AT_SEQUENCE_NUMBER", failed)
                else:
                    self.iterators[shard] = response["NextShardIterator"]
                    self.checkpoints[shard] = records[-1]["dynamodb"]["SequenceNumber"]
            self._save()
        return handed

    def drain(self, max_passes: int = 50) -> None:
        for _ in range(max_passes):
            if not self.run_once():
                return

    def _save(self) -> None:
        self.checkpoint_file.parent.mkdir(parents=True, exist_ok=True)
        self.checkpoint_file.write_text(json.dumps({"stream_arn": self.stream_arn, "shards": self.checkpoints}))
