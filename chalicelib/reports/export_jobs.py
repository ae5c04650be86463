"""The export job store: one record per export too large to answer inline (reports/models.py's ExportJob),
created under a cap, claimed step by step by its runs (exports.py), saved only by the run that holds it."""
from __future__ import annotations

from datetime import datetime, timedelta

from pynamodb.exceptions import DoesNotExist

from chalicelib import aws, clock
from chalicelib.clock import iso, parse_iso
from chalicelib.errors import NotFound, TollgateError
from chalicelib.ledger.auth import Principal
from chalicelib.observability import logger
from chalicelib.reports.export_format import KEEP_DAYS, ExportSpec, first_id_after, new_export_id, shown_state
from chalicelib.reports.models import JOBS_PK, ExportJob

MAX_ACTIVE = 3  # exports queued or running at once for one account (or for all accounts)
STALE_AFTER = {"queued": timedelta(hours=6),  # Lambda keeps a throttled asynchronous invocation up to 6 h
               "running": timedelta(minutes=20)}  # a run saves progress every 10 s and lasts 15 min at most


class TooManyExports(TollgateError):
    status = 429
    error_type = "rate_limit_error"


def create(spec: ExportSpec, now: datetime) -> ExportJob:
    active = [job for job in ExportJob.query(
        JOBS_PK, ExportJob.day >= first_id_after(now - STALE_AFTER["queued"]),
        filter_condition=ExportJob.state.is_in("queued", "running")
        & (ExportJob.account == spec.account if spec.account else ExportJob.account.does_not_exist()))
        if shown_state(job.state, job.updated_at, now, STALE_AFTER[job.state])[0] != "failed"]
    if len(active) >= MAX_ACTIVE:
        raise TooManyExports(f"{len(active)} exports of {'account ' + repr(spec.account) if spec.account else 'every account'}"
                             f" are being written already ({', '.join(j.export_id for j in active)}); wait for one "
                             "to finish (GET /api/exports/{export_id})")
    stamp = iso(now)
    job = ExportJob(JOBS_PK, new_export_id(now), account=spec.account, spec=spec.to_json(), state="queued",
                    days_total=len(spec.windows()), created_at=stamp, updated_at=stamp,
                    expires_at=now + timedelta(days=KEEP_DAYS + 1))
    job.save(condition=ExportJob.day.does_not_exist())
    return job


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
