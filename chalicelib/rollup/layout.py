"""The aggregate item layout, owned here: keys, counter names and resolutions. Pure.

One item holds one scope's counters for one UTC day:
- key: `pk` = `<kind>#<stored name>` (`model#gpt-4o`, `global#all`) and `day`; in the `by_kind` index,
  `kind` and `day_id` = `<day>#<stored name>`;
- counters, named by where they apply: `calls` (the day), `h07|calls` (07:00-08:00), `m0705|calls`
  (07:05-07:10), `b|model|gpt-4o|cost` (the day's share of one breakdown value; on global and account
  items only), `lat|12` (a latency histogram bucket), `err|timeout` (errors by type, per day);
- `hw|<lane>`: the last stream sequence number applied per call-log partition (exactly once);
- `dims`: the breakdown values present, so a reader can project just their counters.

Every other module spells a key or a counter name through these functions, never by hand.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

SEP = "|"
TOKEN_KINDS = ("in", "cr", "cw", "out", "rs")  # input, cache read, cache write, output, reasoning
SCOPE_KINDS = ("global", "account", "team", "key", "provider", "model", "operation")
BREAKDOWN_SCOPES = ("global", "account")
DAY_BREAKDOWNS = {"global": ("provider", "model", "account", "team", "operation"),
                  "account": ("provider", "model", "key", "team", "operation")}
HOUR_BREAKDOWNS = ("provider", "model")
GLOBAL_ID = "all"
CORE_COUNTERS = ("calls", "errors", *TOKEN_KINDS, "cost", "unpriced")
INDEXED_COUNTERS = CORE_COUNTERS  # the day counters copied to the by_kind index: fixed names keep it small
DAY = ""  # the prefix of the day's own counters
NAME_BYTES_MAX = 128  # a longer name (UTF-8) is stored as its short form
SHORT_PREFIX_BYTES = 96  # what a short form keeps of the name: 96 + "…" (3) + 16 hex ≤ NAME_BYTES_MAX
LANE_PREFIX = f"hw{SEP}"
ERROR_PREFIX = f"err{SEP}"


def stored_name(value: str) -> str:
    """The name a scope or a breakdown value has in aggregate keys and attribute names.

    Up to NAME_BYTES_MAX UTF-8 bytes: the name itself. Longer, or not valid Unicode (a lone
    surrogate): its first bytes, "…" and 16 hex digits of its SHA-256, the same for the same name,
    so reports and budgets that name the scope find it. A short form is its own short form.
    """
    try:
        if len(value.encode()) <= NAME_BYTES_MAX:
            return value
    except UnicodeEncodeError:
        pass
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    printable = value.encode("utf-8", "replace")[:SHORT_PREFIX_BYTES].decode("utf-8", "ignore")
    return f"{printable}…{digest}"


@dataclass(frozen=True)
class Scope:
    """What an aggregate item counts: a kind (`model`) and the id a person or a call names (`gpt-4o`)."""

    kind: str
    scope_id: str

    @classmethod
    def everything(cls) -> Scope:
        return cls("global", GLOBAL_ID)

    @classmethod
    def of_pk(cls, pk: str) -> Scope:
        kind, _, scope_id = pk.partition("#")
        return cls(kind, scope_id)

    @property
    def stored_id(self) -> str:
        return stored_name(self.scope_id)

    @property
    def pk(self) -> str:
        return f"{self.kind}#{self.stored_id}"

    @property
    def is_everything(self) -> bool:
        return self.kind == "global"

    @property
    def has_breakdowns(self) -> bool:
        return self.kind in BREAKDOWN_SCOPES

    def day_id(self, day: str) -> str:
        """The item's sort key in the `by_kind` index."""
        return f"{day}#{self.stored_id}"


def scope_id_of_day_id(day_id: str) -> str:
    """The stored scope id in a `by_kind` index entry's `day_id`."""
    return day_id.split("#", 1)[1]


def hour_prefix(ts: datetime) -> str:
    """The counters of the hour holding `ts`: `h07|`."""
    return f"h{ts.hour:02d}{SEP}"


def five_minute_prefix(ts: datetime) -> str:
    """The counters of the 5-minute bucket holding `ts`: `m0705|`."""
    return f"m{ts.hour:02d}{ts.minute - ts.minute % 5:02d}{SEP}"


def breakdown_head(prefix: str, dim: str, value: str | None = None) -> str:
    """`<prefix>b|<dim>|` (every value of a dimension), or `<prefix>b|<dim>|<value>|` (one value's counters)."""
    head = f"{prefix}b{SEP}{dim}{SEP}"
    return head if value is None else f"{head}{value}{SEP}"


def split_breakdown(rest: str) -> tuple[str, str]:
    """(value, counter) from what follows a dimension's head."""
    value, _, counter = rest.rpartition(SEP)
    return value, counter


def latency_counter(prefix: str, bucket: int) -> str:
    return f"{prefix}lat{SEP}{bucket}"


def error_counter(error_type: str) -> str:
    return f"{ERROR_PREFIX}{stored_name(error_type)}"


def dim_entry(dim: str, value: str) -> str:
    """An element of an item's `dims` set."""
    return f"{dim}{SEP}{value}"


def split_dim_entry(entry: str) -> tuple[str, str]:
    dim, _, value = entry.partition(SEP)
    return dim, value


def watermark(lane: str) -> str:
    """The attribute holding a lane's last applied stream sequence number."""
    return f"{LANE_PREFIX}{lane}"


def lane_of(stream: str | None, account: str) -> str:
    """A call's lane: its stream and call-log partition, inside which sequence numbers order records."""
    return stored_name(f"{stream}{SEP}{account}" if stream else account)
