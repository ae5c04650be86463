"""Keep the local stack's tables between runs: snapshot them to TOLLGATE_DATA_DIR, load them at start."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def _items(dynamodb: Any, table: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table):
        items.extend(page["Items"])
    return items


def snapshot(dynamodb: Any, tables: list[str], data_dir: Path) -> int:
    """Write each table's items as DynamoDB JSON; atomic per table so a crash never leaves half a file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    total = 0
    for table in tables:
        items = _items(dynamodb, table)
        target = data_dir / f"{table}.json"
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(items))
        os.replace(temporary, target)
        total += len(items)
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
