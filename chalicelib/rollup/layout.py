"""The aggregate item layout, owned here: keys, counter names, resolutions and where each counter is stored. Pure.

A reader sees one *day view* per scope and UTC day: a dict of counters named by where they apply:
`calls` (the day), `h07|calls` (07:00-08:00), `m0705|calls` (07:05-07:10), `b|model|gpt-4o|cost` (the day's
share of one breakdown value), `h07|b|provider|openai|cost` (an hour's share), `lat|12` (a latency histogram
bucket), `err|timeout` (errors by type, per day), `refused` and `ref|budget_exceeded` (the gateway's own refusals,
kept apart from the provider's errors).

Stored, a day view is split into small items (an hour's or a 5-minute bucket's counters stored without
their time prefix, which the sort key gives, so one projection reads the same counters of every bucket) so that none grows with volume or with the number of values
(each at most a few KB, far below 64 KB), all under the scope's partition key `pk` = `<kind>#<stored name>`,
told apart by the sort key (the `day` attribute):
- `2026-11-26`: the day's own counters, latency histogram, errors by type and split by provider;
- `h|2026-11-26T07`: one hour's counters and histogram, and its split by provider;
- `m|2026-11-26T0705`: one 5-minute bucket's counters and histogram;
- `b|model|2026-11-26|gpt-4o`: one breakdown value's day counters (one item per value, so a thousand
  accounts are a thousand small items, not one large one);
- `bh|model|2026-11-26T07|gpt-4o`: one value's hour counters (models, whose number callers choose).
Scopes that many call-log partitions (lanes) write to are write-sharded: each lane writes to one of
SHARDS items (sort key + `~<shard>`), so no item holds more than its share of the lanes' marks, and a
reader sums the shards it finds in the same Query. Only day items carry `kind` and `day_id`, the keys
of the sparse `by_kind` index.

Every item keeps `hw|<lane hash>`: the last stream sequence number applied per lane (exactly once).
Every other module spells a key or a counter name through these functions, never by hand.
"""
from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, Iterable

from chalicelib.caller_names import GLOBAL_ID
from chalicelib.money import sums_exactly

SEP = "|"
TOKEN_KINDS = ("in", "cr", "cw", "out", "rs")  # input, cache read, cache write, output, reasoning
SCOPE_KINDS = ("global", "account", "team", "key", "user", "provider", "model", "operation")
# Day breakdowns per value: an account's and a team's split. All traffic's split by account, model, … is the
# `by_kind` index over those scopes' own day items, so the global scope writes none.
DAY_BREAKDOWNS = {"account": ("provider", "model", "key", "team", "operation", "user"),
                  "team": ("model", "operation", "user")}
BREAKDOWN_SCOPES = ("global", "account", "team")  # the scopes with hour breakdowns
HOUR_BREAKDOWNS = ("provider", "model")
IN_OWN_ITEM = ("provider",)  # breakdowns few enough to live in the day or hour item (providers are the gateway's)
HOURLESS_KINDS = ("user",)  # day items only: a user's cost is asked per day, and users are many
SHARDED_KINDS = ("global", "provider", "model", "team", "operation")  # written by many accounts' lanes
SHARDS = 16
# Two rollups read the call log's stream, each writing its own items (issue #30: an UpdateItem is billed on the
# whole item, so an item must be written once for many calls). The summary's: all traffic's items and its split by
# provider (a few), which every batch touches, folded from short batches so /api/summary and the providers' error
# and quota alerts see a call within a minute. The detail: every other scope's (accounts, keys, users, teams, models,
# operations, sessions), thousands of small items that a short batch holds one or two calls of, folded from batches
# of minutes. Each item is written by one tier only, with its own marks.
SUMMARY, DETAIL = "summary", "detail"
TIERS = (SUMMARY, DETAIL)
SUMMARY_KINDS = ("global", "provider")
# `calls` counts every call logged; `errors` the provider's (upstream) errors; `refused` the calls the gateway itself
# turned away (chalicelib/errors.py REFUSALS), which never reached a provider and carry no latency.
CORE_COUNTERS = ("calls", "errors", "refused", *TOKEN_KINDS, "cost", "unpriced", "drift")  # drift: the calls whose
# stated cost drifts from our estimate (not in breakdowns)
# The day counters copied to the by_kind index: fixed names keep it small. `refused` too, so all traffic's split
# by provider, model, key… counts the gateway's refusals in their group. A projection is fixed at the index's
# creation (DynamoDB cannot change it): a stage whose index lacks `refused` upgrades in two deploys (OPERATIONS.md).
INDEXED_COUNTERS = ("calls", "errors", "refused", *TOKEN_KINDS, "cost", "unpriced")
DAY = ""  # the prefix of the day's own counters
NAME_BYTES_MAX = 128  # a longer name (UTF-8) is stored as its short form
SHORT_PREFIX_BYTES = 96  # what a short form keeps of the name: 96 + "…" (3) + 16 hex ≤ NAME_BYTES_MAX
LANE_PREFIX = f"hw{SEP}"
ERROR_PREFIX = f"err{SEP}"
REFUSED_PREFIX = f"ref{SEP}"
HISTOGRAMS = ("lat", "ttft")  # counters named `<histogram>|<bucket>`
KEY_ATTRIBUTES = ("pk", "day", "kind", "day_id", "expires_at")
HOUR_ITEM, FIVE_MINUTE_ITEM, DAY_BREAKDOWN_ITEM, HOUR_BREAKDOWN_ITEM = "h", "m", "b", "bh"
SESSION_ITEM = "s"  # a session's totals: under `session#<id>` by account, and under its user by session id
SHARD_MARK = "~"
END = "\uffff"


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

    def day_id(self, day: str, shard: int | None = None) -> str:
        """A day item's sort key in the `by_kind` index: with its write shard, so shards are distinct entries
        (one entry cannot be split across partitions, and a hot scope's day is written by every batch)."""
        return f"{day}#{self.stored_id}" + ("" if shard is None else f"{SHARD_MARK}{shard:02d}")


def scope_id_of_day_id(day_id: str) -> str:
    """The stored scope id in a `by_kind` index entry's `day_id` (as `query_kind` gives it: shards summed)."""
    return day_id.split("#", 1)[1]


def unsharded_day_id(kind: str, day_id: str) -> str:
    """An index entry's `day_id` without its write shard: what all of a scope's shards of one day share."""
    return day_id.rsplit(SHARD_MARK, 1)[0] if kind in SHARDED_KINDS else day_id


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
    """(value, counter) from what follows a dimension's head; a histogram bucket's counter is `lat|12`, so its
    value is never read as `gpt-4o|lat`."""
    value, _, counter = rest.rpartition(SEP)
    head, _, histogram = value.rpartition(SEP)
    if histogram in HISTOGRAMS and counter.isdigit() and head:
        return head, f"{histogram}{SEP}{counter}"
    return value, counter


def latency_counter(prefix: str, bucket: int) -> str:
    return f"{prefix}lat{SEP}{bucket}"


def ttft_counter(prefix: str, bucket: int) -> str:
    """A time-to-first-token histogram bucket (streamed calls only)."""
    return f"{prefix}ttft{SEP}{bucket}"


def error_counter(error_type: str) -> str:
    return f"{ERROR_PREFIX}{stored_name(error_type)}"


def refusal_counter(error_type: str) -> str:
    """Refused calls of one type (a type of REFUSALS: a fixed set, so readers can name each)."""
    return f"{REFUSED_PREFIX}{error_type}"


def watermark(lane: str) -> str:
    """The attribute holding a lane's last applied stream sequence number: short, since hot items hold many."""
    digest = hashlib.sha256(lane.encode("utf-8", "surrogatepass")).digest()[:9]
    return f"{LANE_PREFIX}{base64.urlsafe_b64encode(digest).decode()}"


def lane_of(stream: str | None, account: str) -> str:
    """A call's lane: its stream and call-log partition, inside which sequence numbers order records."""
    return stored_name(f"{stream}{SEP}{account}" if stream else account)


def tier_of(kind: str) -> str:
    """Which rollup writes a scope kind's items (sessions are `session` and `user` items: the detail's)."""
    return SUMMARY if kind in SUMMARY_KINDS else DETAIL


def shard_of(kind: str, lane: str) -> int | None:
    """Which of a scope's write shards a lane writes to (None: the scope is not sharded). Fixed per lane,
    so a redelivered record meets its own marks again."""
    if kind not in SHARDED_KINDS:
        return None
    return int.from_bytes(hashlib.sha256(lane.encode("utf-8", "surrogatepass")).digest()[:4], "big") % SHARDS


@dataclass(frozen=True)
class Part:
    """Which item of a day view a counter is stored in: the day's own (`kind` ""), an hour's (`h`, `hour`),
    a 5-minute bucket's (`m`, `hour`, `minute`), a breakdown value's for the day (`b`) or for an hour (`bh`)."""

    kind: str = ""
    hour: int | None = None
    dim: str | None = None
    value: str | None = None
    minute: int | None = None

    def sort_key(self, day: str, shard: int | None) -> str:
        if self.kind == HOUR_ITEM:
            key = f"{HOUR_ITEM}{SEP}{day}T{self.hour:02d}"
        elif self.kind == FIVE_MINUTE_ITEM:
            key = f"{FIVE_MINUTE_ITEM}{SEP}{day}T{self.hour:02d}{self.minute:02d}"
        elif self.kind == DAY_BREAKDOWN_ITEM:
            key = f"{DAY_BREAKDOWN_ITEM}{SEP}{self.dim}{SEP}{day}{SEP}{self.value}"
        elif self.kind == SESSION_ITEM:
            return f"{SESSION_ITEM}{SEP}{self.value}"  # no day: a session lives as long as its calls
        elif self.kind == HOUR_BREAKDOWN_ITEM:
            key = f"{HOUR_BREAKDOWN_ITEM}{SEP}{self.dim}{SEP}{day}T{self.hour:02d}{SEP}{self.value}"
        else:
            key = day
        return key if shard is None else f"{key}{SHARD_MARK}{shard:02d}"


def day_of_sort_key(sort_key: str) -> str:
    """The UTC day an item belongs to, from its sort key."""
    if sort_key[:1].isdigit():
        return sort_key[:10]
    family, _, rest = sort_key.partition(SEP)
    if family not in (HOUR_ITEM, FIVE_MINUTE_ITEM):
        rest = rest.split(SEP, 1)[1]
    return rest[:10]


def sort_key_range(family: str, first_day: str, last_day: str) -> tuple[str, str]:
    """The sort keys of one family of items (`day`, `h`, `b|<dim>`, `bh|<dim>`) over days: one Query each."""
    if family == "day":
        return first_day, f"{last_day}{SHARD_MARK}{END}"
    return f"{family}{SEP}{first_day}", f"{family}{SEP}{last_day}{END}"


def families(kind: str) -> list[str]:
    """Every family of items a scope of `kind` has: what a recalculation clears."""
    out = ["day"] if kind in HOURLESS_KINDS else ["day", HOUR_ITEM, FIVE_MINUTE_ITEM]
    out += [f"{DAY_BREAKDOWN_ITEM}{SEP}{dim}" for dim in DAY_BREAKDOWNS.get(kind, ()) if dim not in IN_OWN_ITEM]
    if kind in BREAKDOWN_SCOPES:
        out += [f"{HOUR_BREAKDOWN_ITEM}{SEP}{dim}" for dim in HOUR_BREAKDOWNS if dim not in IN_OWN_ITEM]
    return out


def split_view_name(name: str) -> tuple[str, str]:
    """(family, name as stored in that family's items) of a day view's counter."""
    head, _, rest = name.partition(SEP)
    if head == "b":
        dim = rest.split(SEP, 1)[0]
        return ("day", name) if dim in IN_OWN_ITEM else (f"{DAY_BREAKDOWN_ITEM}{SEP}{dim}", name)
    if not _is_time_prefix(head):
        return "day", name
    if head[0] == "m":
        return FIVE_MINUTE_ITEM, rest
    if rest.startswith(f"b{SEP}") and (dim := rest.split(SEP, 2)[1]) not in IN_OWN_ITEM:
        return f"{HOUR_BREAKDOWN_ITEM}{SEP}{dim}", rest
    return HOUR_ITEM, rest


def view_prefix(sort_key: str) -> str:
    """The time prefix an item's stored counters take in the day view: `h07|`, `m0705|` or "" (the day's)."""
    family, _, rest = sort_key.partition(SEP)
    if family == HOUR_BREAKDOWN_ITEM:
        rest = rest.split(SEP, 1)[1]
    if family in (HOUR_ITEM, HOUR_BREAKDOWN_ITEM):
        return f"h{rest[11:13]}{SEP}"
    if family == FIVE_MINUTE_ITEM:
        return f"m{rest[11:15]}{SEP}"
    return DAY


def time_bound(family: str, at: datetime) -> str:
    """A sort key bound at the hour or 5-minute bucket holding `at`, for a family of time items."""
    if family == FIVE_MINUTE_ITEM:
        return f"{family}{SEP}{at:%Y-%m-%dT%H}{at.minute - at.minute % 5:02d}"
    return f"{family}{SEP}{at:%Y-%m-%dT%H}"


def _is_time_prefix(head: str) -> bool:
    return head[:1] in ("h", "m") and head[1:].isdigit() and len(head) in (3, 5)


def is_counter(name: str) -> bool:
    """Whether an item attribute is a counter a day view sums (not a key or a lane's mark)."""
    return name not in KEY_ATTRIBUTES and not name.startswith(LANE_PREFIX)


def session_account(sort_key: str) -> str:
    """The (stored) account of a session's item under its id, from its sort key `s|<account>`."""
    return sort_key.split(SEP, 1)[1]


def session_of_user(account: str, session: str) -> str:
    """How a user's session item names it (stored names): by account first, so a tenant reads only its own."""
    return f"{account}{SEP}{session}"


@sums_exactly
def day_views(items: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Stored items of one scope (shards, hours, buckets, breakdown values) summed back into one view per day,
    oldest first; each counter named as the day view names it (`h07|calls`)."""
    views: dict[str, dict[str, Any]] = {}
    for item in items:
        day, prefix = day_of_sort_key(item["day"]), view_prefix(item["day"])
        view = views.setdefault(day, {"day": day})
        for name, value in item.items():
            if is_counter(name) and isinstance(value, (int, Decimal)):
                view[prefix + name] = view.get(prefix + name, 0) + value
    return [views[day] for day in sorted(views)]
