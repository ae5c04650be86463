"""No input stalls the rollup or the spill replay (issue 12, findings 1, 2 and 8): huge names get a short
form, a record that cannot be folded is quarantined while the rest folds, the local pump and the spill
replay dead-letter what keeps failing, and each scheduled job runs whatever happened to the others."""
import json
import time
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from moto.core.botocore_stubber import MockRawResponse

from chalicelib.ledger import calllog
from chalicelib.ledger.models import CallRecord
from chalicelib.rollup import store
from chalicelib.rollup.layout import Scope
from local.pump import drain_spill_queue
from tests.conftest import ADMIN_KEY
from tests.integration.conftest import stream_records

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
QUARANTINE = "quarantine#calls"


def now():
    return datetime.now(timezone.utc)


def today():
    return now().strftime("%Y-%m-%d")


def log_call(n, account, model="gpt-4o-mini", cost="0.0001", **fields):
    """A call record written straight to the call log (as the proxy writes it), `n` seconds ago."""
    record = calllog.new_record(
        f"call_{n:06d}", now() - timedelta(milliseconds=n), account, provider="openai", endpoint="chat/completions",
        model=model, key_id=f"key-{account}", status=fields.pop("status", 200), latency_ms=80,
        input_tokens=fields.pop("input_tokens", 10), output_tokens=5, cost_usd=None if cost is None else Decimal(cost),
        priced=cost is not None, **fields)
    assert calllog.write(record) == "written"
    return record


def handler(records):
    from app import rollup_calls

    return rollup_calls({"Records": records}, None)


def pump(tmp_path, handle=None, **options):
    from app import rollup_calls
    from local.pump import StreamPump

    arn = boto3.client("dynamodb").describe_table(TableName="tollgate-dev-calls")["Table"]["LatestStreamArn"]
    options.setdefault("backoff_seconds", 0.001)  # the back-off's doubling, at test speed
    return StreamPump(boto3.client("dynamodbstreams"), arn, handle or rollup_calls, tmp_path / "checkpoints.json",
                      **options)


def day_counters(pk):
    """The counters of today's aggregate item of a scope, named as a person names it."""
    items = store.query_days(Scope.of_pk(pk), today(), today())
    return items[0] if items else {}


def quarantined():
    items = boto3.client("dynamodb").query(
        TableName="tollgate-dev-aggregates", KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": QUARANTINE}})["Items"]
    return [{name: value.get("S", value.get("N")) for name, value in item.items()} for item in items]


def hard_budget(gateway, account, limit_usd="0.002"):
    status, view = gateway.admin("put", f"/admin/budgets/{account}-cap", {
        "scope": "account", "scope_id": account, "period": "daily", "limit_usd": limit_usd, "mode": "hard",
        "thresholds": [1.0], "channels": []})
    assert status == 200, view


def budgets(gateway):
    response = gateway.client.http.get("/api/budgets", headers={"X-Dashboard-Key": ADMIN_KEY})
    return {b["budget_id"]: b for b in json.loads(response.body)["budgets"]}


def fail_requests(monkeypatch, operation, marker, code, status=400):
    """DynamoDB answers `code` to every `operation` request whose body holds `marker`, as if it refused it."""
    original = botocore.endpoint.Endpoint._do_get_response
    seen = []

    def faulty(self, request, operation_model, context):
        body = request.body if isinstance(request.body, bytes) else (request.body or "").encode()
        if operation_model.name == operation and marker.encode() in body:
            seen.append(operation)
            body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}).encode()
            http = AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, MockRawResponse(body))
            return (http, {"Error": {"Code": code, "Message": f"injected for {marker}"},
                           "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}), None
        return original(self, request, operation_model, context)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "_do_get_response", faulty)
    return seen


# --- finding 1: a huge model name ----------------------------------------------------------------------------
@pytest.mark.parametrize("length", [2_100, 100_000])
def test_a_huge_model_name_neither_stalls_the_rollup_nor_switches_off_a_budget(gateway, tmp_path, length):
    """One caller's call with a model name past DynamoDB's key limit, then 120 calls of a victim account
    with a hard $0.002 budget: everything folds, the victim's budget shows its spend and blocks."""
    hard_budget(gateway, "victim")
    victim_key = gateway.new_key(account="victim")
    huge = "fault-404-" + "x" * length
    log_call(200, "attacker", model=huge, status=404, error_type="upstream_error", cost=None)
    for n in range(1, 121):
        log_call(n, "victim")

    stream_pump = pump(tmp_path)
    stream_pump.drain(max_passes=10)

    assert day_counters("account#victim")["calls"] == 120  # past the first batch of 100 too
    assert day_counters("global#all")["calls"] == 121
    assert day_counters(f"model#{huge}")["calls"] == 1  # found by the name the caller sent
    assert quarantined() == []  # nothing to set aside: the name has a short form
    [call] = CallRecord.query("attacker")
    assert call.model == huge  # the call log keeps the original
    victim = budgets(gateway)["victim-cap"]
    assert victim["spent"] == "0.012" and victim["state"] == "exceeded"
    blocked = gateway.call("/openai/v1/chat/completions", CHAT, victim_key)
    assert blocked.status_code == 429 and json.loads(blocked.body)["error"]["code"] == "budget_exceeded"


def test_short_forms_are_bounded_deterministic_and_survive_lone_surrogates():
    from chalicelib.rollup.fold import Fact, fold
    from chalicelib.rollup.layout import NAME_BYTES_MAX, stored_name

    assert stored_name("gpt-4o") == "gpt-4o"
    for name in ("m" * 129, "é" * 2_000, "x" * 100_000, "gpt-4o-mini\ud800", "\udfff" * 300):
        short = stored_name(name)
        assert len(short.encode()) <= NAME_BYTES_MAX and stored_name(short) == short == stored_name(name)
    assert stored_name("a" * 200) != stored_name("a" * 199 + "b")
    fact = Fact(sign=1, lane="s|acme", seq=1, ts=datetime(2026, 1, 1, tzinfo=timezone.utc), account="acme", key_id="k",
                provider="openai", model="gpt-4o-mini\ud800", operation="x" * 5_000, team=None, is_error=True,
                error_type="e" * 3_000, tokens=(1, 0, 0, 1, 0), cost_usd=Decimal("0.01"), latency_ms=5)
    for key, delta in fold([fact]).items():  # every key and attribute name encodes, and is bounded
        assert len(key.pk.encode()) <= NAME_BYTES_MAX + 20
        assert all(len(name.encode()) <= NAME_BYTES_MAX + 40 for name in delta.counters)
        assert len(key.sort_key.encode()) <= NAME_BYTES_MAX + 40


# --- finding 1/2: what cannot be folded is quarantined ----------------------------------------------------------
def test_a_record_that_cannot_be_folded_is_quarantined_with_its_reason_and_the_rest_folds(gateway, monkeypatch):
    from chalicelib.alerting.measure import evaluate

    log_call(1, "acme")
    log_call(2, "acme", input_tokens=10**40)  # stored fine, but no counter can add it exactly
    log_call(3, "acme", model="refused-by-dynamodb")  # DynamoDB refuses every update that names it
    log_call(4, "globex")
    refused = fail_requests(monkeypatch, "UpdateItem", "refused-by-dynamodb", "ValidationException")
    records = stream_records()

    assert handler(records) == {"batchItemFailures": []}
    assert refused  # the refusal was met, and did not fail the batch
    assert day_counters("account#globex")["calls"] == 1 and day_counters("model#refused-by-dynamodb") == {}
    # items that do not name the refused value took the record (items are written one by one): the quarantine
    # entry says so, and `recalculate` puts the day right once the record is
    assert day_counters("global#all")["calls"] == 3
    entries = {e["call_call_id"]: e for e in quarantined()}
    assert set(entries) == {"call_000002", "call_000003"}
    assert "token count `in`" in entries["call_000002"]["reason"]
    assert entries["call_000003"]["reason"].startswith("ValidationException")
    assert json.loads(entries["call_000003"]["image"])["model"] == {"S": "refused-by-dynamodb"}
    assert entries["call_000002"]["sequence_number"] == records[1]["dynamodb"]["SequenceNumber"]

    assert handler(records) == {"batchItemFailures": []}  # redelivered: still two entries, counted once
    assert len(quarantined()) == 2 and day_counters("global#all")["calls"] == 3

    health = gateway.client.http.get("/health")
    body = json.loads(health.body)
    assert health.status_code == 503 and body["status"] == "degraded"
    assert body["components"]["rollup_quarantine"] == {"status": "quarantined", "records": 2}

    log_call(5, "acme", input_tokens=-1)  # a later poison record: still the same alert
    assert handler(stream_records()[-1:]) == {"batchItemFailures": []}
    evaluate(), evaluate()
    alerts = json.loads(gateway.client.http.get("/api/alerts?state=open", headers={"X-Dashboard-Key": ADMIN_KEY}).body)
    assert [a["rule"] for a in alerts["alerts"]].count("rollup_quarantine") == 1

    client = boto3.client("dynamodb")  # an operator deals with them: the alert resolves, health recovers
    for entry in quarantined():
        client.delete_item(TableName="tollgate-dev-aggregates", Key={"pk": {"S": QUARANTINE}, "day": {"S": entry["day"]}})
    assert evaluate()["resolved"]
    assert json.loads(gateway.client.http.get("/health").body)["status"] == "healthy"


def test_a_failure_about_the_service_still_fails_the_batch_and_budgets_follow_what_folded(gateway, monkeypatch):
    """Not the record's fault (here a missing permission on one item): Lambda must resend, nothing is
    quarantined. The victim's spend landed meanwhile, so its hard budget is re-measured and blocks."""
    hard_budget(gateway, "victim")
    victim_key = gateway.new_key(account="victim")
    for n in range(1, 31):
        log_call(n, "victim")
    log_call(40, "flaky")
    records = stream_records()
    fail_requests(monkeypatch, "UpdateItem", "flaky", "AccessDeniedException")

    result = handler(records)
    assert result["batchItemFailures"] and quarantined() == []
    assert day_counters("account#victim")["calls"] == 30
    assert budgets(gateway)["victim-cap"]["spent"] == "0.003"
    blocked = gateway.call("/openai/v1/chat/completions", CHAT, victim_key)
    assert blocked.status_code == 429


# --- the local pump: the same contract as Lambda's mapping -------------------------------------------------------
@pytest.mark.parametrize("how", ["raises", "reports"])
def test_the_local_pump_does_not_read_a_failing_batch_forever(aws_env, tmp_path, capsys, how):
    """A record the handler can never apply (a function error, or a batch item failure every time): the
    pump narrows the batch to it, retries it alone a few times, dead-letters it and goes on."""
    from app import rollup_calls

    for n in range(1, 151):
        log_call(n, "acme", model="poison" if n == 120 else "gpt-4o-mini")
    deliveries = []

    def handle(event, context):
        deliveries.append(len(event["Records"]))
        bad = [r for r in event["Records"] if r["dynamodb"]["NewImage"]["model"]["S"] == "poison"]
        if bad and how == "raises":
            raise RuntimeError("cannot fold this one")
        result = rollup_calls({"Records": [r for r in event["Records"] if r not in bad]}, None)
        if bad:
            return {"batchItemFailures": [{"itemIdentifier": bad[0]["dynamodb"]["SequenceNumber"]}]}
        return result

    stream_pump = pump(tmp_path, handle)
    stream_pump.drain(max_passes=60)

    assert len(deliveries) <= 25  # not 60 passes over the same batch
    assert day_counters("account#acme")["calls"] == 149
    assert "dead-lettered" in capsys.readouterr().err
    assert stream_pump.run_once() == 0  # nothing left: the checkpoint is past the poisoned record
    saved = json.loads((tmp_path / "checkpoints.json").read_text())["shards"]
    assert list(saved.values()) == [stream_records()[-1]["dynamodb"]["SequenceNumber"]]


def test_the_local_pump_dead_letters_to_sqs_with_the_reason(aws_env, tmp_path):
    from local.pump import sqs_dead_letter

    log_call(1, "acme")
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="tollgate-dev-rollup-dlq")["QueueUrl"]

    def broken(event, context):
        raise RuntimeError("the handler cannot start")

    pump(tmp_path, broken, dead_letter=sqs_dead_letter(sqs, queue)).drain(max_passes=10)
    [message] = sqs.receive_message(QueueUrl=queue, MessageAttributeNames=["All"])["Messages"]
    assert json.loads(message["Body"])["dynamodb"]["NewImage"]["call_id"] == {"S": "call_000001"}
    assert message["MessageAttributes"]["reason"]["StringValue"] == "RuntimeError: the handler cannot start"


def store_failing_for(monkeypatch, pk):
    """The aggregate store fails every write of item `pk`, as a service error (not a refusal): Lambda retries."""
    from botocore.exceptions import ClientError

    original, refused = store.write, []

    def write(key, delta, facts, client=None):
        if key.pk == pk:
            refused.append(key.pk)
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "UpdateItem")
        return original(key, delta, facts, client)

    monkeypatch.setattr(store, "write", write)
    return refused


def test_a_record_the_store_always_fails_is_retried_a_bounded_number_of_times_then_dead_lettered(
        aws_env, tmp_path, capsys, monkeypatch):
    """Issue 26: the pump plays Lambda's mapping (bisect, bounded retries, on-failure destination), logs one line
    per record it gives up on (no traceback loop), and the rest of the batch folds."""
    from app import rollup_calls
    from local.pump import MAX_ATTEMPTS, sqs_dead_letter

    for n in range(1, 32):
        log_call(n, "poisoned" if n == 21 else "acme")
    store_failing_for(monkeypatch, "account#poisoned")
    sqs = boto3.client("sqs")
    queue = sqs.create_queue(QueueName="tollgate-dev-rollup-dlq")["QueueUrl"]
    batches = []

    def counting(event, context):
        batches.append([r["dynamodb"]["NewImage"]["account"]["S"] for r in event["Records"]])
        return rollup_calls(event, context)

    stream_pump = pump(tmp_path, counting, dead_letter=sqs_dead_letter(sqs, queue))
    stream_pump.drain()

    with_poison = [len(batch) for batch in batches if "poisoned" in batch]
    assert with_poison == [31, 5, 2, *[1] * MAX_ATTEMPTS]  # from it, halved to itself, then MAX_ATTEMPTS alone
    assert len(batches) == len(with_poison) + 1  # and the ten after it, in one batch
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("[stream-pump]")]
    assert len(lines) == 1 and "account=poisoned call_id=call_000021" in lines[0]
    assert f"dead-lettered after {MAX_ATTEMPTS} deliveries alone" in lines[0]
    [message] = sqs.receive_message(QueueUrl=queue)["Messages"]
    assert json.loads(message["Body"])["dynamodb"]["NewImage"]["call_id"] == {"S": "call_000021"}
    assert day_counters("account#acme")["calls"] == 30
    assert stream_pump.run_once() == 0


def test_the_local_pump_backs_off_a_failing_shard_instead_of_spinning(aws_env, tmp_path, monkeypatch):
    from local.pump import BACKOFF_MAX_SECONDS

    for n in range(1, 6):
        log_call(n, "poisoned")
    store_failing_for(monkeypatch, "account#poisoned")
    stream_pump = pump(tmp_path, backoff_seconds=60)
    assert stream_pump.run_once() == 5
    assert [stream_pump.run_once() for _ in range(100)] == [0] * 100  # waiting: not read again at once
    [due] = stream_pump.not_before.values()
    for failures in range(2, 10):  # the wait doubles while it keeps failing, up to BACKOFF_MAX_SECONDS
        stream_pump.not_before = dict.fromkeys(stream_pump.not_before, 0.0)
        assert stream_pump.run_once() >= 1
        [due] = stream_pump.not_before.values()
        assert due - time.monotonic() == pytest.approx(min(BACKOFF_MAX_SECONDS, 60 * 2 ** (failures - 1)), abs=1)


# --- finding 2: spill replay ---------------------------------------------------------------------------------
@pytest.fixture
def spill_queues(aws_env):
    """The spill queue with its dead-letter queue, as infra/resources.json and the local stack make them."""
    sqs = boto3.client("sqs")
    dead = sqs.create_queue(QueueName="tollgate-dev-spill-dlq")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    spill = sqs.get_queue_url(QueueName="tollgate-dev-spill")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=spill, Attributes={
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": arn, "maxReceiveCount": "10"})})
    return sqs, spill, dead


def spilled(account="acme", n=1, **fields):
    record = calllog.new_record(f"call_{n:06d}", now(), account, provider="openai", endpoint="chat/completions",
                                model="gpt-4o-mini", key_id="k", status=200, latency_ms=5, **fields)
    return json.dumps(record.serialize())


def waiting(sqs, url):
    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return sum(int(v) for v in attributes.values())


def dead_letters(sqs, url):
    messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, MessageAttributeNames=["All"])["Messages"]
    return {m["Body"]: m["MessageAttributes"]["reason"]["StringValue"] for m in messages}


def test_a_poisoned_spill_message_goes_to_the_dead_letter_queue_and_the_drain_goes_on(spill_queues):
    sqs, spill, dead = spill_queues
    bodies = ["{not json", json.dumps({"hello": "world"}), spilled(account="a" * 3_000, n=2), spilled(n=3)]
    for body in bodies:
        sqs.send_message(QueueUrl=spill, MessageBody=body)

    assert drain_spill_queue() == {"replayed": 1, "duplicates": 0, "dead_lettered": 3}
    assert waiting(sqs, spill) == 0  # deleted from the spill queue
    reasons = dead_letters(sqs, dead)
    assert set(reasons) == set(bodies[:3])
    assert reasons["{not json"].startswith("not a call record: JSONDecodeError")
    assert "ValidationException" in reasons[bodies[2]]
    assert [c.call_id for c in CallRecord.scan()] == ["call_000003"]


def test_a_spilled_record_that_keeps_failing_is_dead_lettered_after_a_few_receives(spill_queues, dynamo_faults):
    sqs, spill, dead = spill_queues
    sqs.set_queue_attributes(QueueUrl=spill, Attributes={"VisibilityTimeout": "0"})  # received again at once
    sqs.send_message(QueueUrl=spill, MessageBody=spilled())
    dynamo_faults.fail("PutItem", times=1_000, code="AccessDeniedException")

    assert drain_spill_queue() == {"replayed": 0, "duplicates": 0, "retry": calllog.SPILL_RECEIVES_MAX - 1,
                                           "dead_lettered": 1}
    assert waiting(sqs, spill) == 0
    [reason] = dead_letters(sqs, dead).values()
    assert reason.startswith(f"still not written after {calllog.SPILL_RECEIVES_MAX} receives: PutError")


def test_the_sqs_replay_function_reports_only_the_message_to_retry(gateway, spill_queues, monkeypatch):
    sqs, spill, dead = spill_queues
    event = gateway.client.events.generate_sqs_event(
        message_bodies=[spilled(n=1), spilled(account="flaky", n=2), "{not json"], queue_name="tollgate-dev-spill")
    ids = []
    for n, record in enumerate(event["Records"]):  # Chalice names every generated message alike
        record["messageId"] = f"message-{n}"
        ids.append(record["messageId"])
    fail_requests(monkeypatch, "PutItem", "flaky", "AccessDeniedException")

    result = gateway.client.lambda_.invoke("replay_spill", event).payload
    assert result == {"batchItemFailures": [{"itemIdentifier": ids[1]}]}
    assert [c.call_id for c in CallRecord.scan()] == ["call_000001"]
    assert list(dead_letters(sqs, dead)) == ["{not json"]


# --- finding 8: each scheduled job runs whatever happened to the others -----------------------------------------------
def test_the_scheduler_still_evaluates_when_the_spill_replay_fails(spill_queues, tmp_path, monkeypatch, capsys):
    from chalicelib import aws
    from chalicelib.alerting import digest, measure as evaluate
    from local.stack import Stack

    sqs, spill, _ = spill_queues
    sqs.send_message(QueueUrl=spill, MessageBody="{not json")
    ran = []
    monkeypatch.setattr(evaluate, "evaluate", lambda *a, **k: ran.append("evaluate") or {"opened": [], "resolved": []})
    monkeypatch.setattr(digest, "digest", lambda body: ran.append(body["kind"]))
    stack = Stack(env={"TOLLGATE_DATA_DIR": str(tmp_path)})

    stack.run_schedule()  # a poisoned message: dead-lettered, nothing fails
    assert ran[0] == "evaluate" and waiting(sqs, spill) == 0

    def unreachable(**request):
        raise ConnectionError("SQS is unreachable")

    monkeypatch.setattr(aws.client("sqs"), "receive_message", unreachable)
    ran.clear()
    outcomes = stack.run_schedule()  # the replay itself fails: evaluation and digests still run
    assert ran[0] == "evaluate"
    assert outcomes["spill replay"] == "ConnectionError: SQS is unreachable" and outcomes["evaluate_every_minute"] == "ok"
    assert "spill replay failed" in capsys.readouterr().err
