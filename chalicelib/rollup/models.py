"""The rollup's items in the aggregates table, as pynamodb models: the aggregates, with their keys and the `by_kind`
index (chalicelib/rollup/store.py reads and writes the items themselves, whose counters have computed names), and
the quarantine's entries (chalicelib/rollup/quarantine.py)."""
from __future__ import annotations

from pynamodb.attributes import NumberAttribute, TTLAttribute, UnicodeAttribute
from pynamodb.indexes import GlobalSecondaryIndex, IncludeProjection
from pynamodb.models import Model

from chalicelib.ledger import TableMeta, table_settings
from chalicelib.rollup.layout import INDEXED_COUNTERS


class AggregatesByKind(GlobalSecondaryIndex):
    """`kind` + `day_id` → every scope of one kind over a range of days, day counters only (group_by)."""

    class Meta:
        index_name = "by_kind"
        projection = IncludeProjection(list(INDEXED_COUNTERS))

    kind = UnicodeAttribute(hash_key=True)
    day_id = UnicodeAttribute(range_key=True)


class Aggregate(Model):
    """One scope's counters for one UTC day, written by the stream rollup (see chalicelib/rollup/fold.py).

    Key: `pk` = `<kind>#<scope id>` (e.g. `model#gpt-4o`, `global#all`) + `day`: a scope's days are one
    Query. Counters are sparse attributes with computed names, so they are read and written through
    aggstore with the low-level client; this model fixes the keys and the index. `hw|<lane>` holds the
    last stream sequence number applied per call-log partition (exactly-once). Kept forever, but for a
    session's items, which expire with its calls (`expires_at`).
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    kind = UnicodeAttribute()
    day_id = UnicodeAttribute()
    expires_at = TTLAttribute(null=True)

    by_kind = AggregatesByKind()


class QuarantineEntry(Model):
    """A stream record the rollup could not fold, kept for a person to look at (chalicelib/rollup/quarantine.py).

    Key: `pk` = `quarantine#calls` (one partition: one Query lists or counts them) + `day` =
    `<stream label>#<sequence number>`, so a redelivered record overwrites its own entry. No `kind`: the by_kind
    index and the reports never see them. Kept until an operator deletes it.
    """

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)
    stream = UnicodeAttribute()  # the stream's label
    sequence_number = UnicodeAttribute()
    event_name = UnicodeAttribute()
    reason = UnicodeAttribute()
    image = UnicodeAttribute()  # JSON of the image as the stream delivered it, cut at IMAGE_BYTES_MAX
    image_bytes = NumberAttribute()  # its whole length
    quarantined_at = UnicodeAttribute()
    # enough to find the call in the call log, when the image names it
    call_account = UnicodeAttribute(null=True)
    call_sk = UnicodeAttribute(null=True)
    call_call_id = UnicodeAttribute(null=True)
