"""The reports' own items, as pynamodb models: export jobs and their slots, kept in the aggregates table under
their own partition (`pk = export#jobs`), which has no `kind`, so no report reads them as aggregates."""
from __future__ import annotations

from pynamodb.attributes import (
    BinaryAttribute,
    ListAttribute,
    NumberAttribute,
    TTLAttribute,
    UnicodeAttribute,
)
from pynamodb.models import Model

from chalicelib.ledger import TableMeta, table_settings

JOBS_PK = "export#jobs"  # the aggregates table's partition of export records (IAM narrows grants to it)


class ExportJob(Model):
    """An export too large to answer inline: what it covers (`spec`, JSON of an ExportSpec), its state and
    progress, and where its next run resumes. Key: `pk` = JOBS_PK + the export id (the table's sort key is
    named `day`); ids start with their time, so recent exports are one Query."""

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)  # the export id
    account = UnicodeAttribute(null=True)  # the one account whose calls it holds; null: every account
    spec = UnicodeAttribute()
    state = UnicodeAttribute()  # queued | running | ready | failed
    step = NumberAttribute(default=0)  # runs started; a run's invocation names the step it takes over
    days_total = NumberAttribute(default=0)
    days_done = NumberAttribute(default=0)
    calls_written = NumberAttribute(default=0)
    bytes_written = NumberAttribute(default=0)
    created_at = UnicodeAttribute()
    updated_at = UnicodeAttribute()
    finished_at = UnicodeAttribute(null=True)
    size_bytes = NumberAttribute(null=True)
    error = UnicodeAttribute(null=True)
    # where the next run resumes
    upload_id = UnicodeAttribute(null=True)
    parts = ListAttribute(of=UnicodeAttribute, null=True)  # ETags of the parts uploaded, in order
    uploaded_bytes = NumberAttribute(null=True)
    carry = BinaryAttribute(null=True, legacy_encoding=False)  # written, not uploaded yet (≤ CARRY_MAX)
    resume_day = NumberAttribute(null=True)  # the window to go on with
    resume_after = UnicodeAttribute(null=True)  # JSON: the exclusive start key there (the last call written)
    expires_at = TTLAttribute(null=True)

    @property
    def export_id(self) -> str:
        return self.day


class ExportSlot(Model):
    """One of the MAX_ACTIVE places a scope's exports are written in at once (reports/export_jobs.py): the cap holds
    at any concurrency because a place is taken by a conditional write. Key: `pk` = JOBS_PK + `slot|<n>` (every
    account's exports) or `slot|<n>|<account>`; `holder` is the export in it, free again once that one is over."""

    class Meta(TableMeta):
        table_name = table_settings.aggregates_table

    pk = UnicodeAttribute(hash_key=True)
    day = UnicodeAttribute(range_key=True)  # slot|<n>[|<account>]
    holder = UnicodeAttribute()  # the export id
    taken_at = UnicodeAttribute()
