"""The stream rollup against moto: real stream records, redeliveries, crashes mid-batch, erasure and TTL."""
import json
import random
from collections import defaultdict
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import botocore.endpoint
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.ledger import calllog
from chalicelib.ledger.models import CallRecord
from local.tables import create_tables
from tests.integration.conftest import DynamoFaults, as_ttl_expiry, install_faults, reload_settings, stream_records
from tests.integration.helpers import expected_counters, handler, stored_counters

START = datetime(2026, 11, 20, 23, 0, tzinfo=timezone.utc)  # calls straddle two UTC days
# A failure about the service, not the record, so the batch is retried (botocore does not retry this one
# itself). A record DynamoDB refuses (ValidationException) is quarantined instead: tests/integration/test_poison.py.
NOT_THE_RECORD = "AccessDeniedException"


def log_call(n, account="acme", model="gpt-4o", minutes=0, cost="0.001", user=None, status=200, latency=80, **more):
    record = calllog.new_record(
        f"call_{n:06d}", START + timedelta(minutes=minutes), account, provider="openai", endpoint="chat/completions",
        model=model, key_id=f"key-{account}", user=user, status=status, latency_ms=latency,
        error_type=None if status < 400 else "server_error", input_tokens=n, output_tokens=2 * n,
        cost_usd=None if cost is None else Decimal(cost), priced=cost is not None, **more)
    assert calllog.write(record) == "written"
    return record


def test_stream_records_become_aggregates_and_a_replay_changes_nothing(aws_env):
    calls = [log_call(i, account=f"a{i % 2}", minutes=i * 20) for i in range(1, 7)]
    records = stream_records()
    assert [r["eventName"] for r in records] == ["INSERT"] * 6
    assert handler(records) == {"batchItemFailures": []}
    assert stored_counters() == expected_counters(calls)
    assert handler(records) == {"batchItemFailures": []}  # redelivered whole
    assert handler(records[2:5]) == {"batchItemFailures": []}  # and in part
    assert stored_counters() == expected_counters(calls)


def test_a_failed_item_write_reports_the_first_record_not_applied(aws_env, dynamo_faults):
    calls = [log_call(i, minutes=i) for i in range(1, 5)]
    records = stream_records()
    dynamo_faults.fail("UpdateItem", times=1, code=NOT_THE_RECORD, after=2)
    result = handler(records)
    assert result == {"batchItemFailures": [{"itemIdentifier": records[0]["dynamodb"]["SequenceNumber"]}]}
    dynamo_faults.clear()
    assert handler(records) == {"batchItemFailures": []}  # Lambda retries from there
    assert stored_counters() == expected_counters(calls)


def test_each_record_is_read_once_and_the_listeners_get_its_fact(aws_env):
    """What app.py's listeners (expensive calls, costly sessions, budgets) get instead of stream records: every
    call logged (a quarantined one too), what folded, what was erased, and the sessions' new totals."""
    from chalice.app import DynamoDBEvent

    from chalicelib.rollup.handler import handle_records
    from chalicelib.rollup.store import SessionTotal

    log_call(1, user="bob", session="chat", cost="0.25")
    erased = log_call(2, cost="0.5")
    log_call(3, cost="2000000000")  # more than a call can add: quarantined, but logged all the same
    erased.delete()
    batches = []
    assert handle_records(DynamoDBEvent({"Records": stream_records()}, None), [batches.append]) == {
        "batchItemFailures": []}
    [batch] = batches
    assert [(f.call_id, f.sign) for f in batch.facts] == [
        ("call_000001", 1), ("call_000002", 1), ("call_000003", 1), ("call_000002", -1)]
    assert [f.call_id for f in batch.logged] == ["call_000001", "call_000002", "call_000003"]
    assert [f.call_id for f in batch.added] == ["call_000001", "call_000002"]
    assert batch.sessions == (SessionTotal("acme", "chat", "bob", Decimal("0.25")),)


def test_erasure_subtracts_and_ttl_expiry_archives_without_subtracting(aws_env):
    kept = log_call(1, user="bob")
    erased = log_call(2, user="alice")
    expired = log_call(3, user="carol")
    erased.delete()
    expired.delete()
    records = stream_records()
    records[-1] = as_ttl_expiry(records[-1])  # the last REMOVE came from TTL
    assert handler(records) == {"batchItemFailures": []}
    assert stored_counters() == expected_counters([kept, expired])
    s3 = boto3.client("s3")
    [obj] = s3.list_objects_v2(Bucket="tollgate-dev-archive")["Contents"]
    assert obj["Key"].startswith("calls/day=2026-11-20/")
    line = s3.get_object(Bucket="tollgate-dev-archive", Key=obj["Key"])["Body"].read().decode()
    assert '"call_id": "call_000003"' in line and line.count("\n") == 1


def test_writes_per_call_for_a_batch_of_100(aws_env, aws_calls):
    for i in range(100):
        log_call(i + 1, account=f"acct-{i % 5}", model=f"model-{i % 3}", minutes=(i * 37) % 3)  # as a stream batch:
    records = stream_records()  # a few minutes of one call-log partition
    aws_calls.clear()
    assert handler(records) == {"batchItemFailures": []}
    writes = aws_calls.count("UpdateItem")
    from chalicelib.rollup.fold import Fact, fold

    facts = [Fact.from_call(CallRecord.from_raw_data(r["dynamodb"]["NewImage"]), 1, int(r["dynamodb"]["SequenceNumber"]),
                            r["eventSourceARN"].rsplit("/stream/", 1)[-1]) for r in records]
    assert writes == len(fold(facts))  # one write per small item the batch touches, none twice
    assert writes / 100 <= 2  # 5 accounts, 3 models, one 5-minute bucket (make bench: the write units per call)
    assert [op for op in aws_calls if op != "UpdateItem"] == ["Scan"]  # the budgets, cached for hard limits


calls_strategy = st.lists(
    st.tuples(st.integers(0, 2), st.integers(0, 2), st.integers(0, 150), st.sampled_from(["0.001", "0.25", None]),
              st.sampled_from([200, 200, 200, 500]), st.integers(1, 60_000)),
    min_size=1, max_size=30)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(calls=calls_strategy, deletions=st.lists(st.sampled_from(["keep", "erase", "ttl"]), min_size=30, max_size=30),
       plan=st.lists(st.tuples(st.integers(1, 12), st.sampled_from(["ok", "ok", "redeliver", "crash"]),
                               st.integers(0, 8)), min_size=60, max_size=60))
def test_aggregates_equal_the_call_log_whatever_the_delivery(calls, deletions, plan, monkeypatch):
    with mock_aws():
        reload_settings()
        create_tables()
        boto3.client("s3").create_bucket(Bucket="tollgate-dev-archive")
        logged = [log_call(n + 1, account=f"a{a}", model=f"m{m}", minutes=minute, cost=cost, status=status,
                           latency=latency)
                  for n, (a, m, minute, cost, status, latency) in enumerate(calls)]
        fate = dict(zip((c.call_id for c in logged), deletions))
        for call in logged:
            if fate[call.call_id] != "keep":
                call.delete()
        records = [as_ttl_expiry(r) if r["eventName"] == "REMOVE" and fate[r["dynamodb"]["OldImage"]["call_id"]["S"]]
                   == "ttl" else r for r in stream_records()]

        faults = install_faults(DynamoFaults(), monkeypatch)
        position, steps = 0, iter(plan)
        while position < len(records):
            size, action, crash_after = next(steps, (12, "ok", 0))
            batch = records[position:position + size]
            if action == "crash":
                faults.fail("UpdateItem", times=1, code=NOT_THE_RECORD, after=crash_after)
            result = handler(batch)
            faults.clear()
            if result["batchItemFailures"]:
                failed = result["batchItemFailures"][0]["itemIdentifier"]
                position = next(i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == failed)
                continue
            if action == "redeliver":
                assert handler(batch) == {"batchItemFailures": []}
            position += size

        surviving = [c for c in logged if fate[c.call_id] != "erase"]
        assert stored_counters() == expected_counters(surviving)
        by_day = defaultdict(lambda: [0, Decimal(0)])
        for call in surviving:
            by_day[call.day][0] += 1
            by_day[call.day][1] += call.cost_usd or 0
        stored = stored_counters()
        for day, (count, cost) in by_day.items():
            assert stored[("global", "all", day)]["calls"] == count
            assert stored[("global", "all", day)].get("cost", 0) == cost


def test_a_new_stream_starts_new_lanes(aws_env):
    """A recreated table (or a restarted local stack) numbers its stream from scratch: nothing is skipped."""
    first = log_call(1)
    records = stream_records()
    assert handler(records) == {"batchItemFailures": []}
    second = log_call(2)
    [again] = [r for r in stream_records() if r["dynamodb"]["NewImage"]["call_id"]["S"] == "call_000002"]
    relabelled = {**again, "eventSourceARN": again["eventSourceARN"] + "-recreated",
                  "dynamodb": {**again["dynamodb"], "SequenceNumber": records[0]["dynamodb"]["SequenceNumber"]}}
    assert handler([relabelled]) == {"batchItemFailures": []}
    assert stored_counters() == expected_counters([first, second])


class Crash(BaseException):
    """The function dying mid-batch (timeout, out of memory): nothing in the handler can catch it."""


def test_crashes_in_a_fifth_of_deliveries_leave_aggregates_equal_to_the_log(aws_env, monkeypatch):
    """200 calls, batches of 40; 20 % of deliveries die after a random number of DynamoDB requests and
    Lambda hands the whole batch over again (a crash reports no batchItemFailures)."""
    rng = random.Random(7)
    logged = [log_call(n, account=f"a{n % 5}", model=f"m{n % 3}", minutes=(n % 4) * 30,
                       status=500 if n % 17 == 0 else 200) for n in range(1, 201)]
    records = stream_records()
    original = botocore.endpoint.Endpoint._do_get_response
    budget = {"left": None}

    def dying(self, request, operation_model, context):
        if budget["left"] is not None:
            if budget["left"] == 0:
                raise Crash()
            budget["left"] -= 1
        return original(self, request, operation_model, context)

    monkeypatch.setattr("botocore.endpoint.Endpoint._do_get_response", dying)
    deliveries = crashes = 0
    for start in range(0, len(records), 40):
        while True:
            deliveries += 1
            budget["left"] = rng.randrange(0, 14) if rng.random() < 0.2 else None
            try:
                result = handler(records[start:start + 40])
            except Crash:
                crashes += 1
                continue
            finally:
                budget["left"] = None
            assert result == {"batchItemFailures": []}
            break
    assert crashes >= 1 and deliveries == 5 + crashes
    assert stored_counters() == expected_counters(logged)
    global_days = [c for (kind, _, day), c in stored_counters().items() if kind == "global" and day[:1].isdigit()]
    assert len(global_days) == 2 and sum(c["calls"] for c in global_days) == len(list(CallRecord.scan())) == 200


def test_a_batch_from_many_accounts_keeps_every_expression_under_dynamodbs_limit(aws_env, monkeypatch):
    """100 accounts in one batch: the global item holds 100 lanes and 100 account breakdowns, more than
    one UpdateItem may say (4 KB per expression), so the batch is applied in parts."""
    from chalicelib.rollup import store

    logged = [log_call(n, account=f"tenant-{n:03d}") for n in range(1, 101)]
    sizes = []
    original = botocore.endpoint.Endpoint.make_request

    def measuring(self, operation_model, request_dict):
        if operation_model.name == "UpdateItem":
            body = json.loads(request_dict["body"])
            sizes.append((body["Key"]["pk"]["S"], max(len(body.get(part, "").encode())
                                                      for part in ("UpdateExpression", "ConditionExpression"))))
        return original(self, operation_model, request_dict)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", measuring)
    assert handler(stream_records()) == {"batchItemFailures": []}
    assert max(size for _, size in sizes) <= store.EXPRESSION_BYTES
    assert sum(1 for pk, _ in sizes if pk == "global#all") > 1
    assert stored_counters() == expected_counters(logged)


def test_the_summary_and_the_detail_fold_apart_each_exactly_once(aws_env, dynamo_faults, monkeypatch):
    """As deployed (issue #30): rollup_calls folds all traffic's items from short batches, rollup_details every
    other scope's from long ones, each redelivered and cut where its own mapping cuts; together they hold what one
    fold of the call log gives, and expiry is archived once."""
    from app import rollup_calls, rollup_details

    monkeypatch.setenv("TOLLGATE_ROLLUP_DETAIL_APART", "1")
    reload_settings()
    calls = [log_call(i, account=f"a{i % 3}", model=f"m{i % 2}", minutes=i * 7, user=f"u{i % 4}")
             for i in range(1, 13)]
    calls[0].delete()
    records = [as_ttl_expiry(r) if r["eventName"] == "REMOVE" else r for r in stream_records()]
    for start in range(0, len(records), 3):
        assert rollup_calls({"Records": records[start:start + 3]}, None) == {"batchItemFailures": []}
    assert {kind for kind, _, _ in stored_counters()} == {"global", "provider"}  # the summary's items alone
    assert rollup_calls({"Records": records[:5]}, None) == {"batchItemFailures": []}  # redelivered
    dynamo_faults.fail("UpdateItem", times=1, code=NOT_THE_RECORD, after=4)
    [failed] = rollup_details({"Records": records[:8]}, None)["batchItemFailures"]
    dynamo_faults.clear()
    position = next(i for i, r in enumerate(records) if r["dynamodb"]["SequenceNumber"] == failed["itemIdentifier"])
    assert rollup_details({"Records": records[position:]}, None) == {"batchItemFailures": []}
    assert rollup_details({"Records": records}, None) == {"batchItemFailures": []}  # redelivered whole
    assert stored_counters() == expected_counters(calls)
    [archived] = boto3.client("s3").list_objects_v2(Bucket="tollgate-dev-archive")["Contents"]
    assert archived["Key"].startswith("calls/day=2026-11-20/")


def merging(monkeypatch):
    """The detail tier apart and merged 5 minutes at a time, as in AWS, on a clock the test moves (`at["now"]`)."""
    from chalicelib import clock

    monkeypatch.setenv("TOLLGATE_ROLLUP_DETAIL_APART", "1")
    monkeypatch.setenv("TOLLGATE_ROLLUP_MERGE_MINUTES", "5")
    reload_settings()
    at = {"now": datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)}
    monkeypatch.setattr(clock, "now", lambda: at["now"])
    return at


def test_the_detail_merged_from_staged_batches_counts_each_call_once_and_writes_each_item_once(
        aws_env, dynamo_faults, monkeypatch):
    """Where the stage merges the detail (rollup/merge.py): rollup_details stages its batches in S3, and
    merge_details folds them once a chunk is settled, writing each item once per chunk. Batches staged twice
    (Lambda retried them), a merge that failed half-way and one run again, and a chunk that repeats records a
    merged one held all count each call once."""
    from app import merge_details, rollup_calls, rollup_details
    from chalicelib.rollup import DETAIL, handler as rollup_handler, merge
    from chalicelib.rollup.fold import fold
    from chalicelib.rollup.layout import tier_of

    at = merging(monkeypatch)

    def later(**delta):
        at["now"] += timedelta(**delta)

    calls = [log_call(i, account=f"a{i % 3}", model=f"m{i % 2}", minutes=i * 7, user=f"u{i % 4}")
             for i in range(1, 13)]
    records = stream_records()
    assert rollup_calls({"Records": records}, None) == {"batchItemFailures": []}
    for start in range(0, len(records), 3):
        assert rollup_details({"Records": records[start:start + 3]}, None) == {"batchItemFailures": []}
    later(seconds=30)
    assert rollup_details({"Records": records[:5]}, None) == {"batchItemFailures": []}  # retried: staged again
    assert {kind for kind, _, _ in stored_counters()} == {"global", "provider"}  # nothing of the detail's yet
    staged = boto3.client("s3").list_objects_v2(Bucket="tollgate-dev-archive", Prefix=merge.PREFIX)["Contents"]
    assert len(staged) == len({(merge._started_ms(o["Key"]), merge.group_of_key(o["Key"]), o["Key"][-16:])
                               for o in staged})

    for stray in ("notes.txt", "0000000000001-g99-0000001-0123456789abcdef", "0000000000002-gXX"):  # not ours: left
        boto3.client("s3").put_object(Bucket="tollgate-dev-archive", Key=merge.PREFIX + stray, Body=b"?")
    later(minutes=7)  # 7.5 minutes after the first batch: its chunk (5 minutes) is not settled for 30 s more
    tick = {"version": "0", "id": "t", "detail-type": "Scheduled Event", "source": "aws.events", "account": "1",
            "time": "2026-12-07T12:00:00Z", "region": "us-east-1", "resources": [], "detail": {}}
    assert merge_details(tick, None)["groups"] == []
    assert {kind for kind, _, _ in stored_counters()} == {"global", "provider"}

    later(seconds=30)
    told = []
    due = merge.due_groups(at["now"])
    assert len(due) == 3  # the accounts' groups; the others' marks moved on
    dynamo_faults.fail("UpdateItem", times=1, code=NOT_THE_RECORD, after=3)  # the lease, two writes, then refused
    first = [rollup_handler.merge_group(group, {DETAIL: [told.append]}) for group in due]
    dynamo_faults.clear()
    assert sum(m["chunks"] for m in first) == len(due) - 1  # one group's chunk stopped, its mark where it was
    writes = []
    original = botocore.endpoint.Endpoint.make_request

    def counting(self, operation_model, request_dict):
        body = request_dict["body"]
        body = body.decode() if isinstance(body, bytes) else body
        if operation_model.name == "UpdateItem" and merge.STATE_PK not in body:
            writes.append(json.loads(body)["Key"])
        return original(self, operation_model, request_dict)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", counting)
    later(minutes=1)
    rollup_handler.merge_due({DETAIL: [told.append]})  # the next tick folds that chunk again
    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", original)
    assert stored_counters() == expected_counters(calls)
    assert {f.call_id for batch in told for f in batch.added} == {c.call_id for c in calls}
    items = {key for key in fold([f for b in told for f in b.facts]) if tier_of(key.kind) == DETAIL}
    assert 0 < len(writes) <= len(items)  # the retried group's items: each written once, skipped by its marks

    later(minutes=1)
    assert rollup_details({"Records": records[4:]}, None) == {"batchItemFailures": []}  # a late retry, merged again
    later(minutes=9)
    assert merge_details(tick, None)["groups"]
    assert stored_counters() == expected_counters(calls)
    later(minutes=9)
    assert merge_details(tick, None)["groups"] == []  # all merged: marks moved past every object


def test_health_says_when_a_staged_batch_waits_past_the_merges_bound(aws_env, monkeypatch):
    """/health's `rollup_merge` line (only where the stage merges): the oldest batch staged and not merged yet,
    against its chunk, the grace and 10 minutes; degraded past that, healthy again once merged."""
    from app import rollup_details
    from chalicelib.reports import calls as reports
    from chalicelib.rollup import DETAIL, handler as rollup_handler

    assert "rollup_merge" not in reports._check_health()[1]["components"]  # the local stack merges nothing
    at = merging(monkeypatch)

    def line():
        return reports._check_health()[1]["components"]["rollup_merge"]

    assert line() == {"status": "ok", "oldest_unmerged_seconds": 0, "bound_seconds": 18 * 60}
    for i in range(1, 4):
        log_call(i, account=f"a{i}")
    assert rollup_details({"Records": stream_records()}, None) == {"batchItemFailures": []}
    at["now"] += timedelta(minutes=18)
    assert line() == {"status": "ok", "oldest_unmerged_seconds": 18 * 60, "bound_seconds": 18 * 60}
    assert reports._check_health()[0] == 200
    at["now"] += timedelta(seconds=1)  # the tick did not merge it: its function failed, or nothing ran it
    status, body = reports._check_health()
    assert status == 503 and body["components"]["rollup_merge"]["status"] == "lagging"
    assert rollup_handler.merge_due({DETAIL: []})["groups"]
    assert line()["status"] == "ok" and line()["oldest_unmerged_seconds"] == 0


def test_a_lane_group_is_merged_by_one_run_at_a_time_and_a_dead_runs_lease_runs_out(aws_env, monkeypatch):
    """Ticks come every minute and a busy group's run may take longer: a second run of the group leaves it alone
    (both would pay for the same writes); a run that died holds it for merge_group's timeout at most."""
    import pytest

    from chalicelib import clock
    from chalicelib.rollup import handler as rollup_handler, merge

    monkeypatch.setenv("TOLLGATE_ROLLUP_MERGE_MINUTES", "5")
    reload_settings()
    now = datetime(2026, 12, 7, 12, 0, tzinfo=timezone.utc)
    monkeypatch.setattr(clock, "now", lambda: now)
    assert merge.take(3, now)
    assert rollup_handler.merge_group(3, {})["busy"] == 1
    monkeypatch.setattr(clock, "now", lambda: now + merge.LEASE + timedelta(seconds=1))
    assert "busy" not in rollup_handler.merge_group(3, {})
    assert merge.take(3, now + merge.LEASE + timedelta(seconds=1))  # the run above let it go
    for event in ({}, {"group": merge.GROUPS}, {"group": -1}, {"group": "1"}, {"group": True}, None, []):
        with pytest.raises(ValueError, match="merge_group wants"):
            rollup_handler.group_of_event(event)


def test_a_day_closes_for_a_rebuild_once_the_detail_tier_has_written_its_last_calls(aws_env, monkeypatch):
    """A call reaches the stream when it ends (up to 15 minutes after the day it started) and the detail tier folds
    batches of up to 5 minutes, so just after midnight yesterday's last calls may not be in its items yet: a rebuild
    then would count them twice (the rebuilt items carry no marks). It waits until 00:25 UTC."""
    import pytest

    from chalicelib import clock
    from chalicelib.errors import InvalidRequest
    from chalicelib.rollup import rebuild

    log_call(1, minutes=59)  # 2026-11-20 23:59
    after = {"early": datetime(2026, 11, 21, 0, 20, tzinfo=timezone.utc),
             "settled": datetime(2026, 11, 21, 0, 25, tzinfo=timezone.utc)}
    monkeypatch.setattr(clock, "now", lambda: after["early"])
    with pytest.raises(InvalidRequest, match="closed days"):
        rebuild.recalculate({"from": "2026-11-20"})
    assert "note" in rebuild.reconcile({"day": "2026-11-20", "fix": True})  # drift found, not fixed yet
    monkeypatch.setattr(clock, "now", lambda: after["settled"])
    assert rebuild.recalculate({"from": "2026-11-20"})["calls"] == 1
