"""Keep the local stack's tables between runs: snapshot them to TOLLGATE_DATA_DIR, load them at start."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterator


def _items(region: str, table: str) -> Iterator[dict[str, Any]]:
    """Each item of `table` as DynamoDB JSON, read from moto in this process one at a time, each under moto's write
    lock (never half-updated). A snapshot every 10 s used to Scan the whole table through HTTP and boto3 and dump it
    as one string: three copies of the data at once, and RSS grew ~20 KB a call with the peaks (bench/memory.py)."""
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.dynamodb.models import dynamodb_backends

    from local.moto_tuning import _stored, _write_lock

    stored = dynamodb_backends[DEFAULT_ACCOUNT_ID][region].get_table(table)
    with _write_lock:
        items = _stored(stored, list(stored.items.values()))
    for item in items:
        with _write_lock:
            yield item.to_json()["Attributes"]


def snapshot(dynamodb: Any, tables: list[str], data_dir: Path) -> int:
    """Write each table's items as DynamoDB JSON; atomic per table so a crash never leaves half a file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for table in tables:
        target = data_dir / f"{table}.json"
        temporary = target.with_suffix(".json.tmp")
        with temporary.open("w") as out:
            out.write("[")
            for n, item in enumerate(_items(dynamodb.meta.region_name, table)):
                out.write(("," if n else "") + json.dumps(item))
                total += 1
            out.write("]")
        os.replace(temporary, target)
    return total


def restore(dynamodb: Any, tables: list[str], data_dir: Path) -> int:
    """Load snapshots into freshly created tables; returns the number of items loaded."""
    total = 0
    for table in tables:
        source = data_dir / f"{table}.json"
        if not source.exists():
            continue
        items = json.loads(source.read_text())
        for start in range(0, len(items), 25):
            requests = [{"PutRequest": {"Item": item}} for item in items[start:start + 25]]
            dynamodb.batch_write_item(RequestItems={table: requests})
        total += len(items)
    return total
