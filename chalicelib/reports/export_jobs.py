"""The export job store: one record per export too large to answer inline (reports/models.py's ExportJob),
created under a cap (a slot per export being written), claimed step by step by its runs (exports.py), saved only
by the run that holds it."""
from __future__ import annotations

from datetime import datetime, timedelta
from functools import partial

from pynamodb.exceptions import DoesNotExist

from chalicelib import aws, clock
from chalicelib.clock import iso, parse_iso
from chalicelib.errors import NotFound, TollgateError
from chalicelib.ledger import Principal
from chalicelib.observability import logger
from chalicelib.reports.export_format import KEEP_DAYS, ExportSpec, new_export_id, shown_state
from chalicelib.reports.models import JOBS_PK, ExportJob, ExportSlot

MAX_ACTIVE = 3  # exports queued or running at once for one account (or for all accounts)
STALE_AFTER = {"queued": timedelta(hours=6),  # Lambda keeps a throttled asynchronous invocation up to 6 h
               "running": timedelta(minutes=20)}  # a run saves progress every 10 s and lasts 15 min at most


class TooManyExports(TollgateError):
    status = 429
    error_type = "rate_limit_error"


def create(spec: ExportSpec, now: datetime) -> ExportJob:
    """A queued export, if one of the scope's MAX_ACTIVE slots is free (else 429). The job is saved before its
    slot is taken, so a slot never names a job that is not there yet."""
    stamp = iso(now)
    job = ExportJob(JOBS_PK, new_export_id(now), account=spec.account, spec=spec.to_json(), state="queued",
                    days_total=len(spec.windows()), created_at=stamp, updated_at=stamp,
                    expires_at=now + timedelta(days=KEEP_DAYS + 1))
    job.save(condition=ExportJob.day.does_not_exist())
    holders = _take_slot(spec.account, job.export_id, now)
    if holders is not None:
        scope = f"account {spec.account!r}" if spec.account else "every account"
        refused = TooManyExports(f"{MAX_ACTIVE} exports of {scope} are being written already ({', '.join(holders)}); "
                                 "wait for one to finish (GET /api/exports/{export_id})")
        job.state, job.error, job.finished_at = "failed", refused.message[:1000], stamp  # never started; expires
        job.save()
        raise refused
    return job


def _take_slot(account: str | None, export_id: str, now: datetime) -> list[str] | None:
    """Put the export in a free slot of its scope: None when it got one, else the exports holding them all.

    A slot is free when it was never taken or its export is over (ready, failed, stale or gone). Each is taken
    by a conditional write on what was read, so of concurrent requests only one gets each slot."""
    holders = []
    for n in range(MAX_ACTIVE):
        key = f"slot|{n}" + (f"|{account}" if account is not None else "")
        try:
            slot = ExportSlot.get(JOBS_PK, key, consistent_read=True)
        except DoesNotExist:
            slot = None
        if slot is not None and _in_progress(find(slot.holder), now):
            holders.append(slot.holder)
            continue
        taken = ExportSlot(JOBS_PK, key, holder=export_id, taken_at=iso(now))
        condition = ExportSlot.day.does_not_exist() if slot is None else ExportSlot.holder == slot.holder
        if aws.conditional(partial(taken.save, condition=condition)):
            return None
        holders.append("one just asked for")  # another request took the slot between the read and the write
    return holders


def _in_progress(job: ExportJob | None, now: datetime) -> bool:
    """Whether an export still holds its slot: queued or running, and not stale."""
    return job is not None and job.state in STALE_AFTER and \
        shown_state(job.state, job.updated_at, now, STALE_AFTER[job.state])[0] != "failed"


def find(export_id: str) -> ExportJob | None:
    """The export by its id, read consistently; None if there is none."""
    try:
        return ExportJob.get(JOBS_PK, export_id, consistent_read=True)
    except DoesNotExist:
        return None


def visible(principal: Principal, export_id: str, now: datetime) -> ExportJob:
    """The export, if the key may see it (its own account's, or any for a key of every account) and it is kept."""
    try:
        job = ExportJob.get(JOBS_PK, export_id, consistent_read=True)
    except DoesNotExist:
        job = None
    if job is None or (principal.account is not None and job.account != principal.account):
        raise NotFound(f"no export {export_id!r}" + (f" in account {principal.account!r}" if principal.account else ""))
    if now >= available_until(job):
        raise NotFound(f"export {export_id!r} expired at {iso(available_until(job))}; ask for it again")
    return job


def available_until(job: ExportJob) -> datetime:
    return parse_iso(job.created_at) + timedelta(days=KEEP_DAYS)


def claim(export_id: str, step: int) -> ExportJob | None:
    """The export, now `running` under step + 1, if its step was still `step`; None when another run took it
    (a duplicated or retried invocation), it is over, or it is gone."""
    job = ExportJob(JOBS_PK, export_id)
    claimed = aws.conditional(lambda: job.update(
        actions=[ExportJob.state.set("running"), ExportJob.step.set(step + 1),
                 ExportJob.updated_at.set(iso(clock.now()))],
        condition=(ExportJob.step == step) & ExportJob.state.is_in("queued", "running")))
    return job if claimed else None


def save(job: ExportJob, actions: list) -> None:
    """Update the export as long as this run still holds it (its step)."""
    job.update(actions=actions, condition=ExportJob.step == job.step)


def fail(job: ExportJob, exc: Exception) -> None:
    """Mark the export failed with why (an incomplete upload is deleted by the bucket's lifecycle)."""
    message = exc.message if isinstance(exc, TollgateError) else f"{type(exc).__name__}: {exc}"
    try:
        save(job, [ExportJob.state.set("failed"), ExportJob.error.set(message[:1000]),
                    ExportJob.finished_at.set(iso(clock.now())), ExportJob.updated_at.set(iso(clock.now())),
                    ExportJob.carry.remove()])
    except Exception:  # the original failure is the one to report
        logger.exception("export could not be marked failed", extra={"export_id": job.export_id})
