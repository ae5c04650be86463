"""The archive in (moto) S3, versioned as in AWS: TTL-expired calls land under their day and user, a redelivered
batch adds versions, and a GDPR erasure deletes every version of the user's records and nothing else's."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import pytest

from chalicelib.ledger import archive, calllog
from chalicelib.ledger.models import CallRecord
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import as_ttl_expiry, stream_records

BUCKET = "tollgate-dev-archive"


@pytest.fixture
def versioned(aws_env):
    boto3.client("s3").put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def _expire(n, user, days_ago=100):
    """A call logged `days_ago` days ago that TTL has just removed (its stream record, as Lambda delivers it)."""
    record = calllog.new_record(f"call_{n:06d}", datetime.now(timezone.utc) - timedelta(days=days_ago), "acme",
                                provider="openai", endpoint="chat/completions", model="gpt-4o", key_id="key-acme",
                                user=user, status=200, latency_ms=50, input_tokens=10, output_tokens=5,
                                cost_usd=Decimal("0.001"), priced=True)
    assert calllog.write(record) == "written"
    CallRecord.get(record.account, record.sk).delete()
    return record


def _archive(records):
    from app import rollup_calls

    expiries = [as_ttl_expiry(r) for r in records if r["eventName"] == "REMOVE"]
    assert rollup_calls({"Records": expiries}, None) == {"batchItemFailures": []}


def _versions(prefix="calls/"):
    listed = boto3.client("s3").list_object_versions(Bucket=BUCKET, Prefix=prefix)
    return listed.get("Versions", []) + listed.get("DeleteMarkers", [])


def _lines(key):
    return boto3.client("s3").get_object(Bucket=BUCKET, Key=key)["Body"].read().decode().splitlines()


def test_expired_calls_are_archived_by_day_and_user(versioned):
    carol = [_expire(1, "carol"), _expire(2, "carol", days_ago=101)]
    dave, nobody = _expire(3, "dave"), _expire(4, None)
    _archive(stream_records())
    keys = sorted(v["Key"] for v in _versions())
    assert len(keys) == 4  # carol's two days, dave, and the calls without a user
    for call, user in ((carol[0], "carol"), (carol[1], "carol"), (dave, "dave")):
        [key] = [k for k in keys if k.startswith(f"calls/day={call.day}/user={archive.user_digest(user)}/")]
        assert [line for line in _lines(key) if call.call_id in line]
    [plain] = [k for k in keys if "/user=" not in k]
    assert plain.startswith(f"calls/day={nobody.day}/") and nobody.call_id in _lines(plain)[0]
    assert not any("carol" in k or "dave" in k for k in keys)  # names stay out of keys (and S3 access logs)


def test_erasing_a_user_deletes_every_version_of_their_archived_calls_and_only_theirs(versioned, client):
    first = _expire(1, "carol")
    _expire(2, "carol", days_ago=120), _expire(3, "dave"), _expire(4, None)
    records = stream_records()
    _archive(records)
    _archive(records)  # Lambda redelivers the batch: every object gets a second version
    s3 = boto3.client("s3")
    carol_prefix = f"calls/day={first.day}/user={archive.user_digest('carol')}/"
    [carol_key] = {v["Key"] for v in _versions(carol_prefix)}
    s3.delete_object(Bucket=BUCKET, Key=carol_key)  # someone deleted one by hand: a delete marker hides it
    carol_versions = [v for v in _versions() if f"user={archive.user_digest('carol')}/" in v["Key"]]
    assert len(carol_versions) == 5  # 2 days × 2 versions + the delete marker
    others = {(v["Key"], v["VersionId"]) for v in _versions()} - {(v["Key"], v["VersionId"]) for v in carol_versions}
    live = CallRecord(  # carol still has a call in the call log too
        "acme", "2099-01-01T00:00:00.000000Z#call_x", day="2099-01-01", call_id="call_x", ts="2099-01-01T00:00:00.000000Z",
        provider="openai", endpoint="chat/completions", key_id="key-acme", user="carol", status=200, latency_ms=1)
    live.save()

    response = client.http.delete("/admin/users/carol", headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    assert response.status_code == 200
    body = response.json_body
    assert body["deleted"] == 1 and body["archive_versions_deleted"] == 5
    assert not [v for v in _versions() if f"user={archive.user_digest('carol')}/" in v["Key"]]
    assert {(v["Key"], v["VersionId"]) for v in _versions()} == others  # dave's and the rest untouched
    assert client.http.delete("/admin/users/carol", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json_body[
        "archive_versions_deleted"] == 0


def test_erasure_deletes_in_batches_and_lists_every_day(versioned, monkeypatch):
    monkeypatch.setattr(archive, "DELETE_BATCH", 3)  # DeleteObjects' limit is 1,000: the same loop, smaller
    s3 = boto3.client("s3")
    for day in ("2026-01-01", "2026-02-01"):
        for n in range(4):
            s3.put_object(Bucket=BUCKET, Key=f"calls/day={day}/user={archive.user_digest('erin')}/{n}-{n}.jsonl",
                          Body=b"{}\n")
    s3.put_object(Bucket=BUCKET, Key="calls/day=2026-01-02/1-1.jsonl", Body=b"{}\n")
    assert archive.erase_user("erin") == 8
    assert [v["Key"] for v in _versions()] == ["calls/day=2026-01-02/1-1.jsonl"]
