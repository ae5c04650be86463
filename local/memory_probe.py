"""Where the local stack's memory goes: with TOLLGATE_TRACEMALLOC=<frames>, the first SIGUSR2 starts tracing its
allocations and each SIGUSR2 writes what grew since the one before to TOLLGATE_DATA_DIR/memory/<n>.txt (no HTTP
route for it).

moto shares the stack's process, so each allocation still alive is put to one owner, by its traceback: moto
(which holds the tables, streams, queues and files as Python objects), our code (the innermost frame of
`chalicelib/`, `local/` or `app.py`: caches, logs, export buffers, per-request objects), or the library that made
it (botocore, uvicorn, httpx…). The dump also counts live objects by type and threads, and what moto stores as
DynamoDB counts it (items and bytes per table), so growth can be set against the data it holds.
"""
from __future__ import annotations

import gc
import linecache
import os
import signal
import sys
import threading
import tracemalloc
from collections import Counter
from pathlib import Path
from typing import Any

from local import heap

TOP = 25  # sites listed per dump
ROOT = str(Path(__file__).resolve().parent.parent) + "/"
SELF = (__file__, tracemalloc.__file__)
OURS = tuple(ROOT + name for name in ("chalicelib/", "local/", "app.py"))


def install(env: dict[str, str], data_dir: Path) -> "Probe | None":
    """Answer SIGUSR2 if TOLLGATE_TRACEMALLOC names a number of frames (else nothing): the first signal starts
    tracing, each signal writes a dump (tracing slows every allocation, so it starts only when asked)."""
    raw = (env.get("TOLLGATE_TRACEMALLOC") or "").strip()
    if not raw:
        return None
    frames = int(raw)  # 0: dumps without tracing (RSS, objects by type, moto's data), at no cost meanwhile
    probe = Probe(data_dir / "memory", frames)
    # the dump takes seconds: a thread of its own, so the signal handler returns at once
    signal.signal(signal.SIGUSR2, lambda *_: threading.Thread(target=probe.dump, name="memory-probe").start())
    return probe


def owner(frames: list[tuple[str, int]]) -> tuple[str, str]:
    """(owner, site) of an allocation, from its traceback's (file, line), innermost first."""
    if any(f[0] in SELF for f in frames):
        return "probe", ""  # this module's own, and tracing's: left out
    moto = next((f for f in frames if "/moto/" in f[0]), None)
    if moto is not None:
        return "moto", _short(moto)
    ours = next((f for f in frames if f[0].startswith(OURS)), None)
    if ours is not None:
        return "ours", _short(ours)
    library = next((f for f in frames if "site-packages/" in f[0]), None)
    if library is not None:
        return library[0].split("site-packages/", 1)[1].split("/", 1)[0], _short(library)
    return "python", _short(frames[0]) if frames else "?"


def _short(frame: tuple[str, int]) -> str:
    filename, line = frame
    for marker in ("site-packages/", ROOT, "/lib/python3.13/"):
        if marker in filename:
            filename = filename.split(marker, 1)[1]
            break
    return f"{filename}:{line}"


def moto_holds() -> dict[str, tuple[int, int]]:
    """What moto stores, as DynamoDB counts it: (items, bytes) per table, (records, -) per stream, (objects,
    bytes) per bucket, (messages, bytes) per queue. Read between moto's writes (the lock that runs them one
    at a time: the rollup updates items while a dump reads them)."""
    from local.moto_tuning import _write_lock

    with _write_lock:
        return _moto_holds()


def _moto_holds() -> dict[str, tuple[int, int]]:
    held: dict[str, tuple[int, int]] = {}
    modules = sys.modules
    if "moto.dynamodb.models" in modules:
        for backend in _backends(modules["moto.dynamodb.models"].dynamodb_backends):
            for name, table in backend.tables.items():
                items = list(table.all_items())
                held[f"table {name}"] = (len(items), sum(item.size() for item in items))
                if table.stream_shard is not None:
                    held[f"stream {name}"] = (len(table.stream_shard.items), 0)
    if "moto.s3.models" in modules:
        for backend in _backends(modules["moto.s3.models"].s3_backends):
            for name, bucket in backend.buckets.items():
                keys = list(bucket.keys.values())
                held[f"bucket {name}"] = (len(keys), sum(getattr(key, "size", 0) for key in keys))
    if "moto.sqs.models" in modules:
        for backend in _backends(modules["moto.sqs.models"].sqs_backends):
            for name, queue in backend.queues.items():
                held[f"queue {name}"] = (len(queue._messages), sum(len(m.body) for m in queue._messages))
    return held


def _backends(by_account: Any) -> list[Any]:
    found = []
    for account in list(by_account.keys()):
        regions = by_account[account]
        found += [regions[region] for region in list(regions.keys())]
    return found


class Probe:
    """Snapshots of the traced heap; each dump compares with the one before (the first with tracing's start)."""

    def __init__(self, directory: Path, frames: int = 25) -> None:
        self.directory, self.frames = directory, frames
        self.lock = threading.Lock()
        self.previous: tracemalloc.Snapshot | None = None
        self.types: Counter[str] = Counter()
        self.held: dict[str, tuple[int, int]] = {}
        self.dumps = 0

    def dump(self) -> Path:
        try:
            return self._dump()
        except Exception as exc:  # whoever waits for the dump gets why there is none, not a silence
            self.dumps += 1
            self.directory.mkdir(parents=True, exist_ok=True)
            target = self.directory / f"{self.dumps}.txt"
            target.write_text(f"dump {self.dumps} failed: {type(exc).__name__}: {exc}\n")
            return target

    def _dump(self) -> Path:
        with self.lock:
            if self.frames and not tracemalloc.is_tracing():
                tracemalloc.start(self.frames)
            snapshot = tracemalloc.take_snapshot() if self.frames else None
            unreachable = gc.collect()  # what only a full collection frees is not growth: counted apart
            types = Counter(type(o).__name__ for o in gc.get_objects())
            held = moto_holds()
            lines = self._report(snapshot, types, held)
            lines.insert(1, f"a full garbage collection freed {unreachable} unreachable objects first")
            self.previous, self.types, self.held = snapshot, types, held
            self.dumps += 1
            self.directory.mkdir(parents=True, exist_ok=True)
            target = self.directory / f"{self.dumps}.txt"
            written = target.with_suffix(".tmp")
            written.write_text("\n".join(lines) + "\n")
            os.replace(written, target)  # whole, for whoever waits on the name
            return target

    def _report(self, snapshot: tracemalloc.Snapshot | None, types: Counter[str],
                held: dict[str, tuple[int, int]]) -> list[str]:
        rss_kb = _status_kb("VmRSS")
        trimmed_kb = rss_kb - (_status_kb("VmRSS") if heap.release_free_memory() else rss_kb)
        traced, peak = tracemalloc.get_traced_memory()
        lines = [f"dump {self.dumps + 1}: RSS {rss_kb / 1024:.1f} MB, of which {trimmed_kb / 1024:.1f} MB free in "
                 f"malloc's arenas (given back now), traced {traced / 2**20:.1f} MB (peak {peak / 2**20:.1f}), "
                 f"threads {threading.active_count()}, fds {len(os.listdir('/proc/self/fd'))}"]
        by_owner: Counter[str] = Counter()
        by_site: Counter[tuple[str, str]] = Counter()
        counts: Counter[tuple[str, str]] = Counter()
        stats = [] if snapshot is None else (snapshot.compare_to(self.previous, "traceback") if self.previous
                                             is not None else snapshot.statistics("traceback"))
        for stat in stats:
            size = getattr(stat, "size_diff", stat.size)
            count = getattr(stat, "count_diff", stat.count)
            if not size and not count:
                continue
            who, site = owner([(frame.filename, frame.lineno) for frame in reversed(stat.traceback)])  # oldest last
            if who == "probe":
                continue
            by_owner[who] += size
            by_site[who, site] += size
            counts[who, site] += count
        lines.append("growth by owner (KB): " + ", ".join(f"{who} {size / 1024:+.0f}" for who, size
                                                         in by_owner.most_common()))
        lines.append(f"top {TOP} sites by growth (KB, blocks):")
        for (who, site), size in sorted(by_site.items(), key=lambda kv: -abs(kv[1]))[:TOP]:
            code = linecache.getline(_full(site), int(site.rsplit(":", 1)[1])).strip() if ":" in site else ""
            lines.append(f"  {size / 1024:+9.1f} {counts[who, site]:+8d}  {who:10} {site}  {code[:80]}")
        lines.append("live objects by type, growth:")
        grown = Counter({name: types[name] - self.types.get(name, 0) for name in types})
        lines += [f"  {count:+8d} {name}" for name, count in grown.most_common(15) if count]
        lines.append("moto holds (items or records, bytes as AWS counts them), growth:")
        for name, (items, size) in sorted(held.items()):
            before = self.held.get(name, (0, 0))
            lines.append(f"  {name}: {items} ({items - before[0]:+d}), {size / 1024:.0f} KB ({(size - before[1]) / 1024:+.0f})")
        return lines


def _full(site: str) -> str:
    name = site.rsplit(":", 1)[0]
    for candidate in sys.path:
        path = Path(candidate) / name
        if path.is_file():
            return str(path)
    return name


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0
