"""Large exports (CONTRACT §4): up to the inline limit the answer itself, beyond it 202 and a job that writes the file
to S3 (moto) and shows its progress; in AWS run after run of the export function, locally a thread and a file the
stack serves. Every call exactly once, scoped to the key's account, within the range asked for."""
import csv
import io
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import botocore.client
import pytest
import requests

from chalicelib.errors import NotFound
from chalicelib.ledger import calllog
from chalicelib.ledger.models import CallRecord
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import reload_settings

DAY = datetime.now(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)  # today, 00:00 UTC
EARLIER = datetime.now(timezone.utc) - timedelta(hours=3)  # calls from here on are in the last 24 hours


@pytest.fixture
def small_inline(monkeypatch, atomic_moto):
    """An inline limit of 2 KB (5 MB in use): a few calls make a job."""
    monkeypatch.setenv("TOLLGATE_EXPORT_INLINE_BYTES", "2048")
    reload_settings()


@pytest.fixture
def lambda_jobs(monkeypatch, small_inline):
    """Jobs as in AWS: the API and each run invoke the export function (moto's Lambda without Docker takes the
    invocation); the test runs each invocation it recorded, as Lambda would."""
    from moto.core.config import default_user_config

    monkeypatch.setitem(default_user_config["lambda"], "use_docker", False)
    monkeypatch.setenv("TOLLGATE_EXPORT_FUNCTION", "tollgate-dev-export_calls")
    reload_settings()
    invoked, original = [], botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        if operation == "Invoke":
            assert params["InvocationType"] == "Event" and params["FunctionName"] == "tollgate-dev-export_calls"
            invoked.append(json.loads(params["Payload"]))
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    return invoked


def log_calls(count, first, step, account="acme", **fields):
    """`count` calls from `first`, one every `step`; their ids, oldest first."""
    ids = []
    with CallRecord.batch_write() as batch:
        for n in range(count):
            call_id = f"call_{account}_{first:%Y%m%d%H%M%S}_{n:05d}"
            batch.save(calllog.new_record(
                call_id, first + n * step, account, provider="openai", endpoint="chat/completions",
                model=fields.get("model", "gpt-4o"), key_id=f"key-{account}", user=fields.get("user", f"user-{n % 7}"),
                status=200, input_tokens=100 + n, output_tokens=10, cost_usd=Decimal("0.0125"), priced=True,
                latency_ms=200))
            ids.append(call_id)
    return ids


def get(gateway, path, key=ADMIN_KEY):
    response = gateway.client.http.get(path, headers={"X-Dashboard-Key": key})
    return response.status_code, response.headers, response.body


def get_json(gateway, path, key=ADMIN_KEY):
    status, _, body = get(gateway, path, key)
    return status, json.loads(body)


def wait_until_ready(gateway, export_id, key=ADMIN_KEY, seconds=60):
    seen = []
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        status, view = get_json(gateway, f"/api/exports/{export_id}", key)
        assert status == 200, view
        seen.append(view)
        if view["state"] in ("ready", "failed"):
            return view, seen
        time.sleep(0.05)
    raise AssertionError(f"export not ready in {seconds}s: {seen[-1]}")


def parsed(fmt, content):
    if fmt == "json":
        return json.loads(content)["calls"]
    return list(csv.DictReader(io.StringIO(content.decode())))


def dashboard_key(gateway, account):
    status, body = gateway.admin("post", "/admin/dashboard-keys", {"account": account})
    assert status == 201
    return body["key"]


# --- inline and job ----------------------------------------------------------------------------------------------
def test_a_small_export_is_the_answer_itself(gateway, upstream):
    ids = log_calls(3, DAY - timedelta(days=1) + timedelta(hours=12), timedelta(minutes=1))
    status, headers, body = get(gateway, "/api/export?format=json&days=2")
    assert status == 200 and headers["Content-Type"] == "application/json"
    assert headers["Content-Disposition"].startswith('attachment; filename="tollgate-calls-')
    document = json.loads(body)
    assert [c["call_id"] for c in document["calls"]] == ids  # oldest first
    assert document["range"]["days"] == 2 and document["calls"][0]["cost_usd"] == "0.0125"



def test_inline_exports_leave_nothing_of_moto_behind(gateway, upstream):
    """Issue #25: each inline export left one moto Item per call alive (moto's copies of what a Query answered)."""
    import gc

    from moto.dynamodb.models.dynamo_type import Item

    def live_items():
        gc.collect()
        return sum(1 for o in gc.get_objects() if type(o) is Item)

    log_calls(40, DAY - timedelta(days=1) + timedelta(hours=12), timedelta(minutes=1))
    counts = []
    for _ in range(4):
        status, _, body = get(gateway, "/api/export?format=json&days=2")
        assert status == 200 and len(json.loads(body)["calls"]) == 40
        counts.append(live_items())
    assert counts[-1] == counts[0], counts  # +40 an export before

def test_an_export_slow_to_read_is_a_job_too(gateway, upstream, monkeypatch, atomic_moto):
    """API Gateway answers 504 at 29 s: an export still being read after INLINE_SECONDS goes to a job, however
    small it turns out (a long range with a narrow filter reads much and keeps little)."""
    from chalicelib.reports import exports

    log_calls(3, EARLIER, timedelta(minutes=1))
    monkeypatch.setattr(exports, "INLINE_SECONDS", -1)
    status, answer = get_json(gateway, "/api/export?days=30&model=gpt-4o")
    assert status == 202 and wait_until_ready(gateway, answer["export_id"])[0]["progress"]["calls_written"] == 3


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_large_export_is_a_job_whose_file_holds_every_call_once(gateway, upstream, small_inline, fmt):
    first = DAY - timedelta(days=2)
    ids = log_calls(150, first, timedelta(minutes=15)) + log_calls(40, first, timedelta(hours=1), account="globex")
    status, answer = get_json(gateway, f"/api/export?format={fmt}&days=3")
    assert status == 202, answer
    assert answer["state"] == "queued" and answer["status_url"] == f"/api/exports/{answer['export_id']}"
    assert answer["range"]["days"] == 3 and answer["format"] == fmt
    view, seen = wait_until_ready(gateway, answer["export_id"])
    assert view["state"] == "ready", view
    assert {v["state"] for v in seen} <= {"queued", "running", "ready"}
    assert view["progress"] == {"calls_written": 190, "days_done": 3, "days_total": 3,
                                "bytes_written": view["size_bytes"], "percent": 100}
    assert view["file_name"].endswith(f".{fmt}") and view["filters"] == {}
    expires = datetime.strptime(view["expires_at"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(minutes=59) < expires - datetime.now(timezone.utc) <= timedelta(hours=1)  # a presigned S3 URL
    download = requests.get(view["download_url"], timeout=10)
    assert download.status_code == 200 and len(download.content) == view["size_bytes"]
    assert download.headers["Content-Disposition"] == f'attachment; filename="{view["file_name"]}"'
    rows = parsed(fmt, download.content)
    assert sorted(r["call_id"] for r in rows) == sorted(ids) and len(rows) == len(ids)  # every call once
    assert [r["ts"] for r in rows] == sorted(r["ts"] for r in rows)  # oldest first


def test_the_job_shows_its_progress_and_resumes_run_after_run(gateway, upstream, lambda_jobs, monkeypatch):
    """In AWS a run hands over before its timeout: its parts, the last call written and what it had not uploaded
    yet are on the record, and the next run goes on from there. A duplicated or retried invocation does nothing."""
    import moto.s3.models

    from app import app as chalice_app
    from chalicelib.reports import exports

    monkeypatch.setattr(moto.s3.models, "S3_UPLOAD_PART_MIN_SIZE", 1024)
    monkeypatch.setattr(exports, "PART_BYTES", 8 * 1024)  # several parts
    monkeypatch.setattr(exports, "CARRY_MAX", 4 * 1024)  # some hand-overs wait for a part to go

    class FortyChecks:  # each run's deadline passes at its 40th look, not by the clock
        def __init__(self, *args, **kwargs):
            self.checks = 0

        def passed(self):
            self.checks += 1
            return self.checks >= 40

    monkeypatch.setattr(exports, "Deadline", FortyChecks)
    ids = log_calls(300, DAY - timedelta(days=3), timedelta(minutes=13))
    status, answer = get_json(gateway, "/api/export?format=csv&days=4&model=gpt-4o")
    assert status == 202 and lambda_jobs == [{"export_id": answer["export_id"], "step": 0}]
    runs, middle = 0, []
    while lambda_jobs:
        event = lambda_jobs.pop(0)
        outcome = exports.run(event, seconds_left=3)
        runs += 1
        middle.append(get_json(gateway, f"/api/exports/{answer['export_id']}")[1])
        if runs == 2:  # a duplicated delivery, and a retry of a run that went on already: both skipped
            assert exports.run(event)["skipped"] and exports.run({**event, "step": 0})["skipped"]
    assert runs > 4 and outcome["state"] == "ready"
    running = [v for v in middle if v["state"] == "running"]
    assert running and all(0 < v["progress"]["calls_written"] < 300 for v in running)
    assert [v["progress"]["calls_written"] for v in running] == sorted(v["progress"]["calls_written"] for v in running)
    assert any(v["progress"]["days_done"] < v["progress"]["days_total"] == 4 for v in running)
    view = middle[-1]
    assert view["state"] == "ready" and view["progress"]["calls_written"] == 300
    assert view["filters"] == {"model": "gpt-4o"}
    rows = parsed("csv", requests.get(view["download_url"], timeout=10).content)
    assert [r["call_id"] for r in rows] == ids  # every call once, in order, across every hand-over
    head = boto3.client("s3").head_object(Bucket="tollgate-dev-archive", Key=f"exports/{answer['export_id']}.csv")
    assert int(head["ETag"].strip('"').rsplit("-", 1)[1]) > 3  # a multipart upload of several parts
    assert "export_calls" in chalice_app.handler_map


def test_the_export_function_runs_a_job_as_lambda_invokes_it(gateway, upstream, lambda_jobs):
    from chalice.test import Client

    from app import app as chalice_app

    log_calls(20, EARLIER, timedelta(seconds=30))
    status, answer = get_json(gateway, "/api/export?format=json&hours=24")
    assert status == 202
    with Client(chalice_app, stage_name="local") as client:
        outcome = client.lambda_.invoke("export_calls", lambda_jobs.pop()).payload
    assert outcome == {"export_id": answer["export_id"], "step": 1, "state": "ready"}
    assert get_json(gateway, f"/api/exports/{answer['export_id']}")[1]["progress"]["calls_written"] == 20


# --- scope, ids, ranges ------------------------------------------------------------------------------------------
def test_an_account_key_exports_only_its_account_and_sees_only_its_exports(gateway, upstream, small_inline):
    acme_ids = log_calls(30, EARLIER, timedelta(minutes=1))
    log_calls(30, EARLIER, timedelta(minutes=1), account="globex")
    acme, globex = dashboard_key(gateway, "acme"), dashboard_key(gateway, "globex")
    status, answer = get_json(gateway, "/api/export?format=csv&hours=24", key=acme)
    assert status == 202
    view, _ = wait_until_ready(gateway, answer["export_id"], key=acme)
    assert view["filters"] == {"account": "acme"}
    rows = parsed("csv", requests.get(view["download_url"], timeout=10).content)
    assert sorted(r["call_id"] for r in rows) == sorted(acme_ids) and {r["account"] for r in rows} == {"acme"}
    assert get_json(gateway, f"/api/exports/{answer['export_id']}", key=globex)[0] == 404  # another account's
    assert get_json(gateway, f"/api/exports/{answer['export_id']}")[0] == 200  # a key of every account
    everyone = get_json(gateway, "/api/export?format=csv&hours=24")[1]["export_id"]
    assert get_json(gateway, f"/api/exports/{everyone}", key=acme)[0] == 404  # holds other accounts' calls
    assert wait_until_ready(gateway, everyone)[0]["progress"]["calls_written"] == 60
    assert get_json(gateway, "/api/export?account=globex", key=acme)[0] == 403
    assert get_json(gateway, "/api/export", key="tgd-nope")[0] == 401
    assert get_json(gateway, f"/api/exports/{answer['export_id']}", key="")[0] == 401


@pytest.mark.parametrize("export_id, status", [("nope", 400), ("exp_" + "0" * 31 + "g", 400), ("x" * 300, 400),
                                               ("exp_" + "0" * 32, 404)])
def test_an_export_id_is_checked_then_looked_up(gateway, upstream, export_id, status):
    code, body = get_json(gateway, f"/api/exports/{export_id}")
    assert code == status and body["error"]["message"]


@pytest.mark.parametrize("inline", [True, False])
def test_start_and_end_are_whole_utc_days_both_included(gateway, upstream, monkeypatch, atomic_moto, inline):
    if not inline:
        monkeypatch.setenv("TOLLGATE_EXPORT_INLINE_BYTES", "512")
        reload_settings()
    start, end = DAY - timedelta(days=3), DAY - timedelta(days=2)
    microsecond = timedelta(microseconds=1)
    edges = {"before": start - microsecond, "first": start, "last": end + timedelta(days=1) - microsecond,
             "after": end + timedelta(days=1)}
    ids = {name: log_calls(1, at, timedelta(0), user=name)[0] for name, at in edges.items()}
    status, headers, body = get(gateway, f"/api/export?format=json&start={start:%Y-%m-%d}&end={end:%Y-%m-%d}")
    if not inline:
        assert status == 202
        view, _ = wait_until_ready(gateway, json.loads(body)["export_id"])
        assert view["range"] == {"start": f"{start:%Y-%m-%d}", "end": f"{end:%Y-%m-%d}",
                                 "from": f"{start:%Y-%m-%d}T00:00:00Z", "to": f"{end:%Y-%m-%d}T23:59:59Z"}
        assert view["progress"]["days_total"] == 2
        body = requests.get(view["download_url"], timeout=10).content
    else:
        assert status == 200 and f'tollgate-calls-{start:%Y-%m-%d}-{end:%Y-%m-%d}.json' in headers["Content-Disposition"]
    assert [c["call_id"] for c in json.loads(body)["calls"]] == [ids["first"], ids["last"]]


def test_every_range_form_is_taken_and_a_bad_one_is_a_400(gateway, upstream):
    log_calls(2, EARLIER, timedelta(minutes=1))
    month = f"{DAY:%Y-%m}"
    for query in ("hours=6", "days=7", f"month={month}", f"start={DAY:%Y-%m-%d}"):
        assert get(gateway, f"/api/export?{query}")[0] == 200, query
    for query in ("hours=0", "days=367", "end=2026-01-01", "hours=2&days=2", "month=2026-1", "format=xlsx"):
        status, body = get_json(gateway, f"/api/export?{query}")
        assert status == 400 and body["error"]["message"], query


# --- failure, limits, expiry -------------------------------------------------------------------------------------
def test_a_job_that_fails_says_why(gateway, upstream, small_inline):
    log_calls(30, EARLIER, timedelta(minutes=1))
    bucket = boto3.resource("s3").Bucket("tollgate-dev-archive")
    bucket.objects.all().delete()
    bucket.delete()  # nowhere to write
    status, answer = get_json(gateway, "/api/export?hours=24")
    view, _ = wait_until_ready(gateway, answer["export_id"])
    assert view["state"] == "failed" and "NoSuchBucket" in view["error"] and "download_url" not in view


def test_at_most_three_exports_of_a_scope_are_written_at_once(gateway, upstream, lambda_jobs):
    log_calls(30, EARLIER, timedelta(minutes=1))
    for _ in range(3):
        assert get(gateway, "/api/export?hours=24")[0] == 202  # queued: the test runs no invocation
    status, body = get_json(gateway, "/api/export?hours=24")
    assert status == 429 and "wait for one to finish" in body["error"]["message"]
    acme = dashboard_key(gateway, "acme")
    assert get(gateway, "/api/export?hours=24", key=acme)[0] == 202  # another scope


def test_an_export_is_kept_three_days_and_a_stopped_job_shows_as_failed(gateway, upstream, lambda_jobs):
    from chalicelib.ledger.auth import Principal
    from chalicelib.reports import exports

    log_calls(30, EARLIER, timedelta(minutes=1))
    export_id = get_json(gateway, "/api/export?hours=24")[1]["export_id"]
    admin, now = Principal(kind="admin"), datetime.now(timezone.utc)
    assert exports.status(admin, export_id, now + timedelta(hours=5))["state"] == "queued"
    stopped = exports.status(admin, export_id, now + timedelta(hours=7))
    assert stopped["state"] == "failed" and "has not started" in stopped["error"]
    with pytest.raises(NotFound, match="expired"):
        exports.status(admin, export_id, now + timedelta(days=3, minutes=1))


# --- the local stack ---------------------------------------------------------------------------------------------
def test_the_local_stack_serves_the_file_itself(gateway, upstream, small_inline, monkeypatch, tmp_path):
    from starlette.testclient import TestClient

    from app import app as chalice_app
    from local.server import build_app

    monkeypatch.setenv("TOLLGATE_EXPORT_DOWNLOAD_URL", "http://testserver/exports")
    reload_settings()
    ids = log_calls(40, EARLIER, timedelta(minutes=1))
    answer = get_json(gateway, "/api/export?format=csv&hours=24")[1]
    view, _ = wait_until_ready(gateway, answer["export_id"])
    assert view["download_url"] == f"http://testserver/exports/{answer['export_id']}.csv"
    assert view["expires_at"] == view["available_until"]  # the stack's link lasts as long as the export
    with TestClient(build_app(chalice_app, tmp_path)) as stack:
        download = stack.get(view["download_url"])
        assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
        assert sorted(r["call_id"] for r in parsed("csv", download.content)) == sorted(ids)
        for missing in (f"{answer['export_id']}.json", "exp_" + "0" * 32 + ".csv", "nope.csv"):
            assert stack.get(f"/exports/{missing}").status_code == 404, missing
        assert stack.get("/exports/..%2Fapp.py").status_code in (403, 404)  # never a file of the stack
