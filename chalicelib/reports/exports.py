"""Exports of the call log (CONTRACT §4): a small one is the answer itself, a large one a job that writes a file.

`GET /api/export` reads the range's calls day by day, page by page, into memory while they fit
TOLLGATE_EXPORT_INLINE_BYTES (5 MB) and a few seconds: then they are the answer, as before. Otherwise it
writes an export record (an item of the aggregates table under `pk = export#jobs`, which TTL deletes),
starts the job and answers 202 `{"export_id", "state", "status_url"}`.

The job (`run`) reads the same calls again and streams them into an S3 multipart upload in the archive
bucket (`exports/<export_id>.<csv|json>`, which the bucket's lifecycle deletes), PART_BYTES at a time,
so a gigabyte never sits in memory, and records its progress as it goes. In AWS it is the `export_calls`
function, invoked asynchronously. Before its timeout a run saves where it is (the upload's parts, the key
of the last call written, the few bytes not uploaded yet) and invokes the function again, so an export of
any size finishes; a duplicated or retried invocation finds the run it names taken and does nothing.
Without TOLLGATE_EXPORT_FUNCTION (the local stack, tests) the job is a thread of this process.

`GET /api/exports/{export_id}` shows the state, progress and, when ready, a download link: a presigned S3
URL valid an hour, or (TOLLGATE_EXPORT_DOWNLOAD_URL, the local stack) a path the stack serves itself.
An account-scoped key starts and sees only exports of its own account; any other export is a 404 to it.
"""
from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timedelta
from typing import Any, Iterator

from chalice import Response

from chalicelib import aws, clock
from chalicelib.clock import iso
from chalicelib.errors import InvalidRequest, TollgateError
from chalicelib.ledger import Principal, scoped_account
from chalicelib.ledger import call_view, calls_of_day, filters
from chalicelib.ledger import CallRecord
from chalicelib.observability import logger
from chalicelib.query import Query
from chalicelib.reports import export_jobs
from chalicelib.reports.export_format import (
    FILTERS,
    PREFIX,
    Deadline,
    ExportSpec,
    ExportWriter,
    Window,
    check_export_id,
    fits_one_response,
    progress_view,
    shown_state,
)
from chalicelib.reports.models import ExportJob
from chalicelib.settings import get_settings

LINK_SECONDS = 3600  # a presigned download link works this long
PART_BYTES = 16 * 1024 * 1024  # each uploaded part but the last (S3 wants 5 MB at least)
MAX_PARTS = 4096  # 64 GiB; the parts' ETags stay well inside a 400 KB item
CARRY_MAX = 64 * 1024  # a run hands over only while what it has not uploaded fits the record
INLINE_SECONDS = 8.0  # reading longer than this for an inline answer: a job instead (API Gateway cuts at 29 s)
RUN_MARGIN_SECONDS = 120.0  # a run hands over this long before its Lambda timeout ...
RUN_MINIMUM_SECONDS = 60.0  # ... but runs at least this long
HEARTBEAT_SECONDS = 10.0  # progress is saved at least this often while calls are read

class ExportTooLarge(TollgateError):
    status = 400
    error_type = "invalid_request_error"


# --- GET /api/export ----------------------------------------------------------------------------------------
def export(principal: Principal, params: Query, now: datetime | None = None) -> Response | tuple:
    """The calls of the range as a download; too large for one answer: 202 and a job."""
    now = now or clock.now()
    spec = ExportSpec.from_params(params, now, scoped_account(principal, params.get("account")))
    body = _inline(spec, get_settings().export_inline_bytes)
    if body is not None:
        return Response(body=body, status_code=200, headers={
            "Content-Type": spec.content_type, "Content-Disposition": spec.content_disposition})
    job = export_jobs.create(spec, now)
    try:
        _launch(job.export_id, 0)
    except Exception as exc:  # the export shows why it never started; the caller gets a 500
        job.state, job.error, job.finished_at = "failed", f"the export job could not be started: {exc}"[:1000], iso(now)
        job.save()
        raise
    return 202, {"export_id": job.export_id, "state": job.state, "status_url": f"/api/exports/{job.export_id}",
                 "format": spec.format, "range": spec.range_view()}


def _inline(spec: ExportSpec, limit: int) -> str | None:
    """The whole export if it fits `limit` bytes (and one Lambda response) and is read in INLINE_SECONDS."""
    writer, started = ExportWriter(spec), time.monotonic()
    pieces = [writer.head()]
    size = len(pieces[0].encode())
    for _, record in _calls(spec, spec.windows()):
        if record is not None:
            pieces.append(writer.row(call_view(record)))
            size += len(pieces[-1].encode())
        if size > limit or time.monotonic() - started > INLINE_SECONDS:
            return None
    pieces.append(writer.tail())
    body = "".join(pieces)
    return body if fits_one_response(body) else None


def _launch(export_id: str, step: int) -> None:
    """Start (step 0) or continue a job: an asynchronous invocation of the export function in AWS, a thread
    of this process otherwise."""
    function = get_settings().export_function
    if function:
        aws.client("lambda").invoke(FunctionName=function, InvocationType="Event",
                                    Payload=json.dumps({"export_id": export_id, "step": step}).encode())
        return
    threading.Thread(target=_run_here, args=({"export_id": export_id, "step": step},), daemon=True,
                     name=f"export {export_id}").start()


def _run_here(event: dict[str, Any]) -> None:
    try:
        run(event)
    except Exception:  # recorded on the export as its error; the log has the rest
        logger.exception("export job failed", extra={"export_id": event["export_id"]})


# --- GET /api/exports/{export_id} -----------------------------------------------------------------------------
def status(principal: Principal, export_id: str, now: datetime | None = None) -> dict[str, Any]:
    """An export's state and progress, and a download link once it is ready."""
    now = now or clock.now()
    job = export_jobs.visible(principal, check_export_id(export_id), now)
    spec = ExportSpec.from_json(job.spec)
    state, stale = shown_state(job.state, job.updated_at, now, export_jobs.STALE_AFTER.get(job.state, timedelta.max))
    view: dict[str, Any] = {
        "export_id": job.export_id, "state": state, "format": spec.format, "range": spec.range_view(),
        "filters": {**({"account": spec.account} if spec.account else {}), **spec.filters},
        "progress": progress_view(job.days_done, job.days_total, job.calls_written, job.bytes_written, state),
        "created_at": job.created_at, "updated_at": job.updated_at,
        "available_until": iso(export_jobs.available_until(job)),
    }
    if job.finished_at:
        view["finished_at"] = job.finished_at
    if state == "ready":
        url, expires = _download_link(job, spec, now)
        view.update(file_name=spec.file_name, size_bytes=job.size_bytes, download_url=url, expires_at=iso(expires))
    if state == "failed":
        view["error"] = job.error or stale
    return view


def _download_link(job: ExportJob, spec: ExportSpec, now: datetime) -> tuple[str, datetime]:
    settings = get_settings()
    if settings.export_download_url:  # the local stack serves the file itself, as long as it keeps it
        return f"{settings.export_download_url.rstrip('/')}/{job.export_id}.{spec.format}", export_jobs.available_until(job)
    import boto3
    from botocore.config import Config

    # SigV4 always (a client's default may presign with SigV2, which buckets made since 2020 refuse)
    s3 = boto3.client("s3", region_name=settings.region, endpoint_url=settings.aws_endpoint,
                      config=Config(signature_version="s3v4"))
    url = s3.generate_presigned_url("get_object", Params={"Bucket": settings.archive_bucket,
                                                          "Key": _file_key(job.export_id, spec)},
                                    ExpiresIn=LINK_SECONDS)
    return url, now + timedelta(seconds=LINK_SECONDS)


def _file_key(export_id: str, spec: ExportSpec) -> str:
    return f"{PREFIX}{export_id}.{spec.format}"


def open_file(name: str, now: datetime | None = None) -> tuple[Iterator[bytes], dict[str, str]] | None:
    """A ready export's file as (chunks, headers), by its name `<export_id>.<csv|json>`; None if there is
    none. For the local stack, whose links point at itself (the id is as hard to guess as a presigned URL)."""
    export_id, _, extension = name.partition(".")
    try:
        job = export_jobs.find(check_export_id(export_id))
    except InvalidRequest:
        return None
    if job is None:
        return None
    spec = ExportSpec.from_json(job.spec)
    if job.state != "ready" or extension != spec.format or (now or clock.now()) >= export_jobs.available_until(job):
        return None
    try:
        found = aws.client("s3").get_object(Bucket=get_settings().archive_bucket, Key=_file_key(export_id, spec))
    except aws.client("s3").exceptions.NoSuchKey:  # the local stack keeps files only while it runs
        return None
    return found["Body"].iter_chunks(1024 * 1024), {
        "Content-Type": found["ContentType"], "Content-Length": str(found["ContentLength"]),
        "Content-Disposition": found.get("ContentDisposition") or spec.content_disposition}


# --- the job --------------------------------------------------------------------------------------------------
def run(event: Any, seconds_left: float | None = None) -> dict[str, Any]:
    """One run of an export job: take over the step the event names, write on until done or until the
    deadline (`seconds_left` of the Lambda invocation, less RUN_MARGIN_SECONDS), then hand over."""
    event = event if isinstance(event, dict) else {}
    export_id, step = check_export_id(event.get("export_id")), event.get("step", 0)
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise InvalidRequest("`step` must be a whole number")
    job = export_jobs.claim(export_id, step)
    if job is None:
        logger.info("export run skipped: its step was taken or the export is over",
                    extra={"export_id": export_id, "step": step})
        return {"export_id": export_id, "step": step, "skipped": True}
    try:
        outcome = _write(job, Deadline(seconds_left, RUN_MARGIN_SECONDS, RUN_MINIMUM_SECONDS))
    except ExportTooLarge as exc:  # the caller's to fix, not an operator's: recorded, not raised
        export_jobs.fail(job, exc)
        return {"export_id": export_id, "step": job.step, "state": "failed"}
    except Exception as exc:
        export_jobs.fail(job, exc)
        raise
    if outcome == "continue":
        _launch(export_id, job.step)
    return {"export_id": export_id, "step": job.step, "state": "running" if outcome == "continue" else "ready"}


def _write(job: ExportJob, deadline: Deadline) -> str:
    """Write the export from where the last run stopped: "done", or "continue" once the deadline passed."""
    spec = ExportSpec.from_json(job.spec)
    windows, writer = spec.windows(), ExportWriter(spec, rows_before=job.calls_written)
    s3, bucket, key = aws.client("s3"), get_settings().archive_bucket, _file_key(job.export_id, spec)
    pending, upload_id = bytearray(job.carry or b""), job.upload_id
    if upload_id is None:  # the first run
        upload_id = s3.create_multipart_upload(Bucket=bucket, Key=key, ContentType=spec.content_type,
                                               ContentDisposition=spec.content_disposition)["UploadId"]
        pending += writer.head().encode()
    parts, uploaded, calls = list(job.parts or []), int(job.uploaded_bytes or 0), int(job.calls_written)
    first, after = int(job.resume_day or 0), json.loads(job.resume_after) if job.resume_after else None
    days_done, saved = first, time.monotonic()

    def upload(data: bytes) -> None:
        nonlocal uploaded
        if len(parts) >= MAX_PARTS:
            raise ExportTooLarge(f"the export is larger than {MAX_PARTS * PART_BYTES // 2**30} GB: ask for a shorter "
                                 "range or add filters")
        answer = s3.upload_part(Bucket=bucket, Key=key, UploadId=upload_id, PartNumber=len(parts) + 1, Body=data)
        parts.append(answer["ETag"])
        uploaded += len(data)

    def progress() -> list:
        return [ExportJob.days_done.set(days_done), ExportJob.calls_written.set(calls),
                ExportJob.bytes_written.set(uploaded + len(pending)), ExportJob.updated_at.set(iso(clock.now()))]

    def hand_over(resume_day: int, last: CallRecord | None) -> str:
        export_jobs.save(job, [*progress(), ExportJob.upload_id.set(upload_id), ExportJob.parts.set(parts),
                    ExportJob.uploaded_bytes.set(uploaded), ExportJob.resume_day.set(resume_day),
                    ExportJob.resume_after.set(json.dumps(_start_key(last, spec))) if last else
                    ExportJob.resume_after.remove(),
                    ExportJob.carry.set(bytes(pending)) if pending else ExportJob.carry.remove()])
        return "continue"

    for index, record in _calls(spec, windows, first, after):
        if record is None:  # the end of a day
            days_done = index + 1
            export_jobs.save(job, progress())
            saved = time.monotonic()
            if deadline.passed() and len(pending) <= CARRY_MAX:
                return hand_over(index + 1, None)
            continue
        pending += writer.row(call_view(record)).encode()
        calls += 1
        if len(pending) >= PART_BYTES:
            upload(bytes(pending))
            pending = bytearray()
        if time.monotonic() - saved >= HEARTBEAT_SECONDS:
            export_jobs.save(job, progress())
            saved = time.monotonic()
        if deadline.passed() and len(pending) <= CARRY_MAX:
            return hand_over(index, record)
    pending += writer.tail().encode()
    if pending or not parts:  # the last part may be small, not empty
        upload(bytes(pending))
    s3.complete_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id, MultipartUpload={
        "Parts": [{"PartNumber": n, "ETag": etag} for n, etag in enumerate(parts, start=1)]})
    pending = bytearray()
    now = iso(clock.now())
    export_jobs.save(job, [*progress(), ExportJob.state.set("ready"), ExportJob.size_bytes.set(uploaded),
                ExportJob.finished_at.set(now), ExportJob.parts.remove(), ExportJob.carry.remove(),
                ExportJob.resume_day.remove(), ExportJob.resume_after.remove()])
    logger.info("export ready", extra={"export_id": job.export_id, "calls": calls, "bytes": uploaded,
                                       "runs": job.step})
    return "done"


# --- reading the calls ----------------------------------------------------------------------------------------
def _calls(spec: ExportSpec, windows: list[Window], first: int = 0,
           after: dict[str, Any] | None = None) -> Iterator[tuple[int, CallRecord | None]]:
    """(window index, call) for each call of the export, oldest first, then (index, None) at the end of each
    day; from window `first`, after the call whose key is `after` there."""
    condition = filters(**{FILTERS[name]: value for name, value in sorted(spec.filters.items())})
    for index in range(first, len(windows)):
        window = windows[index]
        in_window = CallRecord.sk.between(window.low, window.high)
        start = after if index == first else None
        if spec.account:
            found = CallRecord.query(spec.account, in_window, filter_condition=condition, scan_index_forward=True,
                                     last_evaluated_key=start)
        else:
            found = _every_account(window, condition, start)
        for record in found:
            yield index, record
        yield index, None


def _every_account(window: Window, condition: Any, after: dict[str, Any] | None) -> Iterator[CallRecord]:
    """A window's calls of every account, oldest first, after the call whose key is `after`: `by_day`'s shards
    merged, so a run resumes from the last sort key written (no one shard's start key marks that place)."""
    low = after["sk"]["S"] if after else window.low
    for record in calls_of_day(window.day, CallRecord.sk.between(low, window.high), condition, newest_first=False):
        if after is None or record.sk != low:
            yield record


def _start_key(record: CallRecord, spec: ExportSpec) -> dict[str, Any]:
    """The exclusive start key that resumes a day's query after `record` (the table's key; its `sk` alone for
    every account's)."""
    return {"account": {"S": record.account}, "sk": {"S": record.sk}}
