"""Least privilege by action: every AWS request each Lambda's code makes equals what infra/permissions.py grants it.

Each entry point (every route of app.py, each event handler, the streaming proxy app) runs in moto on a
scenario that takes its code down every branch that reaches AWS: budgets crossed, alerts opened, acknowledged
and delivered, a call spilled, a record quarantined, one dead-lettered, a user erased from the archive, large
exports written run after run. Every
botocore request is recorded against the function running, as the IAM action and resource it needs. The test
fails both ways: an action the code uses that the function is not granted (AccessDenied in AWS), and a grant
no code path uses any more (a permission left behind). A new route fails until it has a scenario below.
"""
import json
import os
import re
from collections import defaultdict
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from unittest import mock

import boto3
import botocore.client
import botocore.signers
import pytest

from infra import permissions
from tests.conftest import ADMIN_KEY, ROOT, UPSTREAM_KEY
from tests.integration.conftest import DynamoFaults, as_ttl_expiry, install_faults, reload_settings, stream_records

ACCOUNT_ID = "123456789012"  # moto's
STAGE = "dev"
SLACK_PARAMETER = f"/tollgate/{STAGE}/slack-webhook-url"
CHAT = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
KEYED_PROVIDERS = ("openai", "anthropic", "openrouter", "groq", "gemini", "azure")  # keys in SSM (Bedrock: the role)


# --- what a request needs in IAM terms ----------------------------------------------------------------
def _physical_names() -> dict[tuple[str, str], str]:
    """(name property, physical name in this test) → logical resource id, as infra/resources.json names them."""
    names = {}
    for logical, resource in json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"].items():
        for key in ("TableName", "QueueName", "TopicName", "BucketName"):
            if key in resource.get("Properties", {}):
                name = resource["Properties"][key]["Fn::Sub"]
                names[key, name.replace("${Stage}", STAGE).replace("${AWS::AccountId}", ACCOUNT_ID)] = logical
    return names


NAMES = _physical_names()


def _topic_key(topic: str) -> str | None:
    """The logical id of the KMS key infra/resources.json encrypts a topic with, if any."""
    key = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"][topic]["Properties"].get(
        "KmsMasterKeyId")
    return key["Fn::GetAtt"][0] if key else None


def _logical(kind: str, name: str) -> str:
    assert (kind, name) in NAMES, f"{kind} {name!r} is no resource of infra/resources.json"
    return NAMES[kind, name]


def _parameter(name: str) -> str:
    if name == SLACK_PARAMETER:
        return "ssm:${SlackWebhookParameterName}"
    return "ssm:" + name.replace(f"/tollgate/{STAGE}/", "/tollgate/${Stage}/")


def _table(params: dict, index: str | None = None) -> str:
    table = _logical("TableName", params["TableName"])
    index = index or params.get("IndexName")
    return f"{table}/index/{index}" if index else table


def _item(params: dict) -> str:
    """A single-item request's table, with the item's partition key (`Table?pk=value`): a grant may be narrowed
    to some partition keys (IAM's dynamodb:LeadingKeys)."""
    from local.tables import ALL_MODELS

    hash_key = {m.Meta.table_name: m._hash_keyname for m in ALL_MODELS}[params["TableName"]]
    value = (params.get("Key") or params["Item"])[hash_key]
    return f"{_table(params)}?pk={next(iter(value.values()))}"


def _queried(params: dict) -> str:
    """A Query's table with the partition key it reads (`Table?pk=value`), as IAM's dynamodb:LeadingKeys sees it."""
    from local.tables import ALL_MODELS

    hash_key = {m.Meta.table_name: m._hash_keyname for m in ALL_MODELS}[params["TableName"]]
    names = params.get("ExpressionAttributeNames", {})
    for name, value in re.findall(r"(#\w+) = (:\w+)", params["KeyConditionExpression"]):
        if names.get(name) == hash_key:
            return f"{_table(params)}?pk={next(iter(params['ExpressionAttributeValues'][value].values()))}"
    return _table(params)


def _grant_for(granted: dict, resource: str, action: str) -> str:
    """The grant that allows `action` on `resource` (IAM allows what any statement allows): the partition key's
    own, one on a prefix of it, or the whole table; none: the one it would belong to."""
    if "?pk=" not in resource:
        return resource
    prefixes = [r for r in granted if r.endswith("*") and "?pk=" in r and resource.startswith(r[:-1])]
    table = resource.split("?pk=", 1)[0]
    for candidate in (resource, *prefixes, table):
        if action in granted.get(candidate, ()):
            return candidate
    return resource if resource in granted else prefixes[0] if prefixes else table


TRANSACT = {"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem"}


def iam_requests(service: str, operation: str, params: dict) -> list[tuple[str, str]]:
    """(IAM action, resource as infra/permissions.py names it) for one API request."""
    if service == "dynamodb":
        if operation == "TransactWriteItems":
            return [(f"dynamodb:{TRANSACT[kind]}", _item(body)) for item in params["TransactItems"]
                    for kind, body in item.items()]
        if operation in ("BatchGetItem", "BatchWriteItem"):
            return [(f"dynamodb:{operation}", _logical("TableName", table)) for table in params["RequestItems"]]
        if operation in ("GetItem", "PutItem", "UpdateItem", "DeleteItem"):
            return [(f"dynamodb:{operation}", _item(params))]
        if operation == "Query" and not params.get("IndexName"):
            return [(f"dynamodb:{operation}", _queried(params))]
        return [(f"dynamodb:{operation}", _table(params))]
    if service == "sqs":
        name = params["QueueName"] if operation == "GetQueueUrl" else params["QueueUrl"].rsplit("/", 1)[1]
        return [(f"sqs:{operation}", _logical("QueueName", name))]
    if service == "sns":
        topic = _logical("TopicName", params["TopicArn"].rsplit(":", 1)[1])
        # a topic encrypted with a customer managed key: SNS makes and reads the message's data key with it, with
        # the publisher's permissions (moto encrypts nothing, so the request shows only the Publish)
        key = _topic_key(topic) if operation == "Publish" else None
        return [(f"sns:{operation}", topic)] + ([("kms:GenerateDataKey", key), ("kms:Decrypt", key)] if key else [])
    if service == "ssm":
        needs = [(f"ssm:{operation}", _parameter(params["Name"]))]
        return needs + ([("kms:Decrypt", "kms:aws/ssm")] if params.get("WithDecryption") else [])
    if service == "s3":
        bucket = _logical("BucketName", params["Bucket"])
        if operation == "ListObjectVersions":
            return [("s3:ListBucketVersions", bucket)]
        if operation == "ListObjectsV2":
            return [("s3:ListBucket", bucket)]
        if operation == "DeleteObjects":
            return [("s3:DeleteObjectVersion" if o.get("VersionId") else "s3:DeleteObject",
                     f"{bucket}/{o['Key'].split('/', 1)[0]}/*") for o in params["Delete"]["Objects"]]
        action = {"DeleteObject": "DeleteObjectVersion" if params.get("VersionId") else "DeleteObject",
                  "GetObject": "GetObjectVersion" if params.get("VersionId") else "GetObject",
                  **dict.fromkeys(("CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload"), "PutObject"),
                  }.get(operation, operation)
        return [(f"s3:{action}", f"{bucket}/{params['Key'].split('/', 1)[0]}/*")]
    if service == "lambda" and operation == "Invoke":
        return [("lambda:InvokeFunction", "function:" + params["FunctionName"].removeprefix(f"tollgate-{STAGE}-"))]
    raise AssertionError(f"no IAM mapping for {service}:{operation}")


class Recorder:
    """Every botocore request, as IAM needs, under the function that is running (None: test setup)."""

    def __init__(self) -> None:
        self.function: str | None = None
        self.used: dict[str, dict[str, set[str]]] = defaultdict(lambda: defaultdict(set))
        self.invoked: list[dict] = []  # asynchronous Lambda invocations (moto runs none): the export jobs

    def record(self, service: str, operation: str, params: dict) -> None:
        if service == "lambda" and operation == "Invoke":
            self.invoked.append(json.loads(params["Payload"]))
        if self.function is None:
            return
        for action, resource in iam_requests(service, operation, params):
            self.used[self.function][resource].add(action)

    def paused(self, make):
        """What `make()` returns, its requests not recorded (test setup in the middle of a function's run)."""
        function, self.function = self.function, None
        try:
            return make()
        finally:
            self.function = function

    @contextmanager
    def running(self, function: str):
        """Record what runs inside as `function`, started as a fresh container (no cache carries over)."""
        from chalicelib.secret_store import secrets

        reload_settings()
        secrets.clear()
        self.function = function
        try:
            yield
        finally:
            self.function = None


@pytest.fixture
def recorder(monkeypatch):
    found = Recorder()
    original = botocore.client.BaseClient._make_api_call

    def recording(client, operation, params):
        found.record(client.meta.service_model.service_name, operation, params)
        return original(client, operation, params)

    monkeypatch.setattr(botocore.client.BaseClient, "_make_api_call", recording)
    presign = botocore.signers.generate_presigned_url  # a presigned URL is used with the signer's permissions

    def presigning(client, ClientMethod, Params=None, ExpiresIn=3600, HttpMethod=None):
        found.record(client.meta.service_model.service_name, client.meta.method_to_api_mapping[ClientMethod], Params)
        return presign(client, ClientMethod, Params, ExpiresIn, HttpMethod)

    monkeypatch.setattr(botocore.signers, "generate_presigned_url", presigning)  # clients made from now on
    return found


@pytest.fixture
def deployed(aws_env, sink, monkeypatch):
    """moto resources named as the template names them, and the functions' settings pointing at them: SSM
    parameters for every secret (the admin key, provider keys, the Slack URL), SNS, a webhook."""
    sqs, ssm = boto3.client("sqs"), boto3.client("ssm")
    dead = sqs.create_queue(QueueName=f"tollgate-{STAGE}-spill-dlq")["QueueUrl"]
    dead_arn = sqs.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    spill = sqs.get_queue_url(QueueName=f"tollgate-{STAGE}-spill")["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=spill, Attributes={"RedrivePolicy": json.dumps(
        {"deadLetterTargetArn": dead_arn, "maxReceiveCount": 10})})
    bucket = f"tollgate-{STAGE}-archive-{ACCOUNT_ID}"
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    topic = boto3.client("sns").create_topic(Name=f"tollgate-{STAGE}-alerts")["TopicArn"]
    secrets = {f"/tollgate/{STAGE}/admin-key": ADMIN_KEY, SLACK_PARAMETER: f"{sink.url}/slack",
               **{f"/tollgate/{STAGE}/{p}-api-key": UPSTREAM_KEY for p in KEYED_PROVIDERS}}
    for name, value in secrets.items():
        ssm.put_parameter(Name=name, Value=value, Type="SecureString")
    for name in ("TOLLGATE_ADMIN_KEY", "TOLLGATE_OPENAI_API_KEY", "TOLLGATE_ANTHROPIC_API_KEY",
                 "TOLLGATE_OPENROUTER_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TOLLGATE_ADMIN_KEY_PARAMETER", f"/tollgate/{STAGE}/admin-key")
    for provider in KEYED_PROVIDERS:
        monkeypatch.setenv(f"TOLLGATE_{provider.upper()}_API_KEY_PARAMETER", f"/tollgate/{STAGE}/{provider}-api-key")
    monkeypatch.setenv("TOLLGATE_SLACK_WEBHOOK_URL_PARAMETER", SLACK_PARAMETER)
    monkeypatch.setenv("TOLLGATE_ALERT_WEBHOOK_URL", f"{sink.url}/webhook")
    monkeypatch.setenv("TOLLGATE_SNS_TOPIC_ARN", topic)
    monkeypatch.setenv("TOLLGATE_ARCHIVE_BUCKET", bucket)
    monkeypatch.setenv("TOLLGATE_SPILL_QUEUE_URL", spill)
    monkeypatch.setenv("TOLLGATE_SPILL_DLQ_URL", dead)  # /health and the evaluator watch both dead-letter queues
    monkeypatch.setenv("TOLLGATE_ROLLUP_DLQ_URL", sqs.create_queue(QueueName=f"tollgate-{STAGE}-rollup-dlq")["QueueUrl"])
    monkeypatch.setenv("TOLLGATE_ROLLUP_DETAIL_APART", "1")  # as deployed: rollup_details stages the detail's calls,
    monkeypatch.setenv("TOLLGATE_ROLLUP_MERGE_MINUTES", "5")  # merge_group folds them 5 minutes at a time
    monkeypatch.setenv("TOLLGATE_MERGE_FUNCTION", f"tollgate-{STAGE}-merge_group")
    # large exports: every export a job (tiny inline limit), the export function invoked (moto's Lambda without
    # Docker takes the invocation; the scenario runs it), each run handing over as soon as it can
    from moto.core.config import default_user_config

    from chalicelib.reports import exports

    monkeypatch.setitem(default_user_config["lambda"], "use_docker", False)
    monkeypatch.setenv("TOLLGATE_EXPORT_FUNCTION", f"tollgate-{STAGE}-export_calls")
    monkeypatch.setenv("TOLLGATE_EXPORT_INLINE_BYTES", "100")
    monkeypatch.setattr(exports, "RUN_MINIMUM_SECONDS", 0)
    from chalicelib import secret_store

    secret_store.secrets.clear()
    reload_settings()
    yield
    secret_store.secrets.clear()


# --- the scenario: each function down every branch that reaches AWS ---------------------------------------
def _now():
    return datetime.now(timezone.utc)


def _log_call(n, account="acme", user=None, days_ago=0, **fields):
    """A call record straight in the call log (test setup, as the proxy writes it)."""
    from chalicelib.ledger import calllog

    record = calllog.new_record(
        f"call_{n:06d}", _now() - timedelta(days=days_ago, seconds=n), account, provider="openai",
        endpoint="chat/completions", model=fields.pop("model", "gpt-4o"), key_id=f"key-{account}", user=user,
        status=fields.pop("status", 200), latency_ms=80, input_tokens=fields.pop("input_tokens", 1000),
        output_tokens=300, cost_usd=Decimal(fields.pop("cost", "0.75")), priced=True, **fields)
    assert calllog.write(record) == "written"
    return record


def _fresh_messages(alerts=True):
    """Forget queued messages, and alerts (test setup), so the next function opens and delivers its own."""
    from chalicelib.ledger.models import Alert, Delivery

    for model in (Alert, Delivery) if alerts else (Delivery,):
        for item in model.scan():
            item.delete()


def _clear_quarantine():
    """An operator deals with the quarantined records (test setup): the quarantine alert's condition clears."""
    from chalicelib.rollup.quarantine import PK
    from chalicelib.rollup.models import Aggregate

    table = boto3.resource("dynamodb").Table(Aggregate.Meta.table_name)
    for item in table.query(KeyConditionExpression="pk = :pk", ExpressionAttributeValues={":pk": PK})["Items"]:
        table.delete_item(Key={"pk": item["pk"], "day": item["day"]})


def _old_signals():
    """Refused keys counted two hours ago, an expensive call taken up a week ago (test setup): the evaluator
    prunes both."""
    from chalicelib.ledger.signals import AUTH_PK, TAKEN_PK
    from chalicelib.rollup.models import Aggregate

    minute = (_now() - timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M")
    week_ago = (_now() - timedelta(days=7)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    for item in ({"pk": {"S": AUTH_PK}, "day": {"S": f"{minute}#container"}, "failures": {"N": "3"}},
                 {"pk": {"S": TAKEN_PK}, "day": {"S": f"{week_ago}#call_old"}}):
        boto3.client("dynamodb").put_item(TableName=Aggregate.Meta.table_name, Item=item)


def _forget_alerts_except(rule: str):
    from chalicelib.ledger.models import Alert

    for alert in Alert.scan():
        if alert.rule != rule:
            alert.delete()


def _scheduled_event(client):
    return client.events.generate_cw_event(source="aws.events", detail_type="Scheduled Event", detail={},
                                           resources=["arn:aws:events:us-east-1:123456789012:rule/tollgate"])


def run_proxy(recorder, dynamo_faults):
    """Authenticate (and count a refused key), enforce hard budgets, log calls (streamed and not, every
    provider), fall back after a failed attempt (reading the rules), spill one when DynamoDB fails."""
    from starlette.testclient import TestClient

    from chalicelib.alerting import budget_store
    from chalicelib.gateway.proxy_app import app
    from chalicelib import secret_store
    from chalicelib.gateway.fallbacks import parse_rule
    from chalicelib.ledger import fallback_rules, key_limits, keys, rate_limits, signals

    key = keys.create_gateway_key({"name": "least privilege", "account": "acme"})["key"]
    budget_store.put_budget("acme-hard", {"scope": "account", "scope_id": "acme", "period": "monthly",
                                          "limit_usd": "1000", "thresholds": [1.0], "mode": "hard",
                                          "channels": ["sns"]})
    budget_store.put_budget("acme-window", {"scope": "account", "scope_id": "acme", "period": "window",
                                            "window_minutes": 300, "limit_tokens": 10_000_000, "thresholds": [1.0],
                                            "mode": "hard", "channels": ["sns"]})
    headers = {"Authorization": f"Bearer {key}", "X-Tollgate-User": "alice"}
    paced = keys.create_gateway_key({"name": "paced", "account": "unbudgeted"})  # a key with a rate limit
    key_limits.set_limits(paced["key_id"], {"rpm": 100})
    rate_limits.set_limits("account", "acme", {"rpm": 1000}, _now())  # an account's limit, counted beside its budgets
    paced_headers = {"Authorization": f"Bearer {paced['key']}"}
    fallback_rules.save(parse_rule("faulty", {"match": {"provider": "openai", "model": "fault-503"},
                                              "targets": [{"provider": "openai", "model": "gpt-4o-mini"}]}), _now())
    with recorder.running("ProxyFunction"), TestClient(app) as proxy:
        assert proxy.post("/openai/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
        streamed = proxy.post("/openai/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers)
        assert streamed.status_code == 200 and ": tollgate" in streamed.text
        anthropic = {"model": "claude-3-5-haiku-latest", "max_tokens": 10, "messages": CHAT["messages"]}
        assert proxy.post("/anthropic/v1/messages", json=anthropic, headers={"x-api-key": key}).status_code == 200
        assert proxy.post("/openrouter/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
        assert proxy.post("/groq/openai/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
        assert proxy.post("/azure/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21",
                          json=CHAT, headers={"api-key": key}).status_code == 200
        fell_back = proxy.post("/openai/v1/chat/completions", json={**CHAT, "model": "fault-503"}, headers=headers)
        assert fell_back.status_code == 200 and fell_back.headers["X-Tollgate-Attempts"] == "2", fell_back.text
        assert secret_store.provider_key("gemini") == UPSTREAM_KEY  # what Gemini's route reads before it calls
        signals.failures = signals.FailureCounter()  # a fresh container flushes its first refusal at once
        unknown = {"Authorization": "Bearer tg-000000000000_unknown"}
        assert proxy.post("/openai/v1/chat/completions", json=CHAT, headers=unknown).status_code == 401
        assert proxy.post("/openai/v1/chat/completions", json=CHAT, headers=paced_headers).status_code == 200
        dynamo_faults.fail("PutItem", times=100, code="InternalServerError", status=500)  # an unbudgeted call spills
        assert proxy.post("/openai/v1/chat/completions", json=CHAT, headers=paced_headers).status_code == 200
        dynamo_faults.clear()
        # a budgeted call whose settlement fails after its hold: it spills with its holds
        dynamo_faults.fail("TransactWriteItems", times=100, code="InternalServerError", status=500, after=1)
        assert proxy.post("/openai/v1/chat/completions", json=CHAT, headers=headers).status_code == 200
        dynamo_faults.clear()
    return key


def run_replay_spill(recorder, client):
    """Replay what spilled (once as new, once as a duplicate; one settling its hard budgets' holds) and dead-letter
    a body that is no call record."""
    sqs = boto3.client("sqs")
    url = sqs.get_queue_url(QueueName=f"tollgate-{STAGE}-spill")["QueueUrl"]
    bodies = [m["Body"] for m in sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])]
    assert len(bodies) == 2, "the proxy spilled two calls, one with holds"
    event = client.events.generate_sqs_event(message_bodies=[*bodies, *bodies, "not a call record"],
                                             queue_name=f"tollgate-{STAGE}-spill")
    with recorder.running("ReplaySpill"):
        client.lambda_.invoke("replay_spill", event)


def run_rollup(recorder, client):
    """Fold new calls, subtract an erased one, archive TTL-expired ones (with and without a user), quarantine one."""
    from chalicelib.ledger.models import CallRecord

    _log_call(101, user="carol", days_ago=1, cost="5", session="carol-chat")  # $5.75 with 102: a costly session
    _log_call(102, user="carol", days_ago=1, session="carol-chat")
    _log_call(103)
    erased = _log_call(104, account="globex", user="dave")
    _log_call(105, input_tokens=-1)  # cannot be folded: quarantined
    expiring = [_log_call(106, user="carol", days_ago=2), _log_call(107, days_ago=2)]
    erased.delete()
    for call in expiring:
        CallRecord.get(call.account, call.sk).delete()
    expired = {c.call_id for c in expiring}
    records = [as_ttl_expiry(r) if r["eventName"] == "REMOVE" and r["dynamodb"]["OldImage"]["call_id"]["S"] in expired
               else r for r in stream_records()]
    for function, name in (("RollupCalls", "rollup_calls"), ("RollupDetails", "rollup_details")):
        with recorder.running(function):
            client.lambda_.invoke(name, {"Records": records})
            client.lambda_.invoke(name, {"Records": records[1:]})  # redelivered: the lanes are read
    run_merges(recorder, client, later=10)
    client.lambda_.invoke("rollup_details", {"Records": records})  # a late redelivery, in the next chunk
    run_merges(recorder, client, later=20)  # merged again: the items' lanes are read back


def run_merges(recorder, client, later):
    """`later` minutes on: merge_details starts a merge for each lane group with a chunk due (and moves the idle
    groups' marks); each merge_group invocation it asked for then runs (moto's Lambda runs none)."""
    from chalicelib import clock

    with mock.patch.object(clock, "now", lambda: _now() + timedelta(minutes=later)):
        recorder.invoked.clear()
        with recorder.running("MergeDetails"):
            client.lambda_.invoke("merge_details", _scheduled_event(client))
        invoked, recorder.invoked = recorder.invoked, []
        assert invoked, "nothing was due"
        with recorder.running("MergeGroup"):
            for event in invoked:
                assert client.lambda_.invoke("merge_group", event).payload["chunks"] >= 1


def run_schedules(recorder, client):
    """The evaluator opens alerts (budget thresholds, an expensive call noted by the rollup, refused keys,
    credits) and moves one whose condition cleared (the quarantine's), delivering on every channel; the digest
    and the weekly report queue and deliver theirs."""
    from chalicelib import clock
    from chalicelib.alerting import budget_store, credits

    budget_store.put_budget("acme-soft", {"scope": "account", "scope_id": "acme", "period": "daily",
                                          "limit_usd": "1", "thresholds": [0.5, 1.0], "mode": "soft",
                                          "channels": ["slack", "sns", "webhook"]})
    credits.top_up("acme", {"amount_usd": "1"}, clock.now())
    client.lambda_.invoke("evaluate_every_minute", _scheduled_event(client))  # setup: the quarantine alert opens
    _clear_quarantine()
    _forget_alerts_except("rollup_quarantine")
    _fresh_messages(alerts=False)
    # setup: an expensive call the rollup notes for the evaluator (which deletes the note), and a failed one (a
    # failure lately: the evaluator reads the call log for streaks of errors)
    _log_call(201, cost="2")
    _log_call(202, status=500, error_type="server_error", cost="0")
    _log_call(203, user="erin", session="erin-chat", cost="6")  # a session past $5: noted once, taken up
    for name in ("rollup_calls", "rollup_details"):
        client.lambda_.invoke(name, {"Records": stream_records()[-3:]})
    run_merges(recorder, client, later=40)  # the costly session is noted as its chunk merges
    _old_signals()
    _hold_expired()
    _window_minute_gone()
    with recorder.running("EvaluateEveryMinute"):
        client.lambda_.invoke("evaluate_every_minute", _scheduled_event(client))
    _installed_before_yesterday()  # the daily digest reports only days after the first key
    for function, handler in (("DailyDigest", "daily_digest"), ("WeeklyReport", "weekly_report")):
        _fresh_messages()
        with recorder.running(function):
            client.lambda_.invoke(handler, _scheduled_event(client))


ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}", "Content-Type": "application/json"}


def _hold_expired():
    """A call under the hard budget whose function died: its hold expired, for the evaluator to release."""
    from datetime import timedelta

    from chalicelib import clock
    from chalicelib.clock import iso
    from chalicelib.ledger import reservations

    now = clock.now()
    start = now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    claim = reservations.Claim("acme-hard", "usd", Decimal("1000"), iso(start), iso(start + timedelta(days=31)),
                               Decimal(0), Decimal("0.01"))
    assert reservations.reserve([claim], [], "call_died", now - timedelta(seconds=1), now).holds


def _window_minute_gone():
    """What the hard window budget's calls cost in a minute that has left its window, for the evaluator to give back."""
    from chalicelib.ledger import reservations
    from chalicelib.ledger.models import WindowSpend

    WindowSpend(reservations.ledger_pk("acme-window"), "window|2000-01-01T00:00", spent=Decimal(5)).save()


def _installed_before_yesterday():
    from datetime import datetime, timedelta, timezone

    from chalicelib.clock import iso
    from chalicelib.ledger.models import ApiKey

    ApiKey("installed", key_hash="-", created_at=iso(datetime.now(timezone.utc) - timedelta(days=2))).save()


def _alert_id(*states):
    from chalicelib.ledger.models import Alert

    return next(a.alert_id for a in Alert.scan() if a.state in states)


def api_requests(ids):
    """(method, route as app.py declares it, concrete path, body) for every /admin, /api and public route."""
    today = _now().strftime("%Y-%m-%d")
    yesterday = (_now() - timedelta(days=1)).strftime("%Y-%m-%d")
    closed = (_now() - timedelta(days=2)).strftime("%Y-%m-%d")  # closed for a rebuild at any hour (00:25 UTC after)
    return [
        ("POST", "/admin/keys", "/admin/keys", {"name": "ops", "account": "acme"}),
        ("GET", "/admin/keys", "/admin/keys", None),
        ("POST", "/admin/dashboard-keys", "/admin/dashboard-keys", {"account": "acme"}),
        ("PUT", "/admin/keys/{key_id}/limits", f"/admin/keys/{ids['key_id']}/limits", {"rpm": 60, "tpm": None}),
        ("PUT", "/admin/limits/{scope}/{scope_id}", "/admin/limits/team/a", {"rpm": 60}),
        ("GET", "/admin/limits", "/admin/limits", None),
        ("DELETE", "/admin/limits/{scope}/{scope_id}", "/admin/limits/team/a", None),
        ("PUT", "/admin/budgets/{budget_id}", "/admin/budgets/acme-hard",  # a hard budget's ledger moves with it
         {"scope": "account", "scope_id": "acme", "period": "monthly", "limit_usd": "2000", "thresholds": [1.0],
          "mode": "hard", "channels": ["sns"]}),
        ("DELETE", "/admin/keys/{key_id}", f"/admin/keys/{ids['key_id']}", None),
        ("PUT", "/admin/budgets/{budget_id}", "/admin/budgets/team-a",
         {"scope": "team", "scope_id": "a", "period": "weekly", "limit_tokens": 100000, "thresholds": [0.8],
          "mode": "soft", "channels": ["sns"]}),
        ("GET", "/admin/budgets", "/admin/budgets", None),
        ("DELETE", "/admin/budgets/{budget_id}", "/admin/budgets/team-a", None),
        ("POST", "/admin/credits/{account}", "/admin/credits/acme", {"amount_usd": "5", "note": "top-up"}),
        ("GET", "/admin/audit", "/admin/audit", None),
        ("POST", "/admin/jobs/{job}", "/admin/jobs/evaluate", {}),
        ("POST", "/admin/jobs/{job}", "/admin/jobs/digest", {"kind": "daily"}),
        ("POST", "/admin/jobs/{job}", "/admin/jobs/recalculate", {"from": closed, "to": closed}),
        ("POST", "/admin/jobs/{job}", "/admin/jobs/reconcile", {"day": closed, "fix": True}),
        ("POST", "/admin/jobs/{job}", "/admin/jobs/reprice", {"start": yesterday, "end": today}),
        ("PUT", "/admin/fallbacks/{name}", "/admin/fallbacks/openai-mini",
         {"match": {"provider": "openai", "model": "gpt-4o-mini"},
          "targets": [{"provider": "openrouter", "model": "openai/gpt-4o-mini"}]}),
        ("GET", "/admin/fallbacks", "/admin/fallbacks", None),
        ("GET", "/admin/fallbacks/{name}", "/admin/fallbacks/openai-mini", None),
        ("DELETE", "/admin/fallbacks/{name}", "/admin/fallbacks/openai-mini", None),
        ("PUT", "/admin/provider-balances/{provider}", "/admin/provider-balances/openai",
         {"balance_usd": "250", "low_usd": "25"}),
        ("GET", "/admin/provider-balances", "/admin/provider-balances", None),
        ("GET", "/api/providers", "/api/providers?hours=24", None),
        ("GET", "/admin/users/{user}/export", "/admin/users/carol/export", None),
        ("DELETE", "/admin/users/{user}", "/admin/users/carol", None),
        ("GET", "/health", "/health", None),
        ("GET", "/api/calls", "/api/calls?limit=5", None),
        ("GET", "/api/calls", "/api/calls?account=acme", None),
        ("GET", "/api/calls/{call_id}", f"/api/calls/{ids['call_id']}", None),
        ("GET", "/api/summary", "/api/summary?hours=24", None),
        ("GET", "/api/usage/daily", "/api/usage/daily?days=7", None),
        ("GET", "/api/usage/daily", "/api/usage/daily?days=7&group_by=model", None),
        ("GET", "/api/usage/timeseries", "/api/usage/timeseries?hours=24", None),
        ("GET", "/api/usage/window", "/api/usage/window?minutes=300", None),
        ("GET", "/api/usage/users", "/api/usage/users?days=7", None),
        ("GET", "/api/usage/users", "/api/usage/users?month=2026-11&account=acme", None),
        ("GET", "/api/usage/models", "/api/usage/models?hours=24", None),
        ("GET", "/api/sessions", "/api/sessions?user=carol&days=7", None),  # the user's accounts: the call log
        ("GET", "/api/sessions/{session}", "/api/sessions/carol-chat?account=acme", None),
        ("GET", "/api/forecast", "/api/forecast", None),
        ("GET", "/api/budgets", "/api/budgets", None),
        ("GET", "/api/alerts", "/api/alerts?state=all", None),
        ("POST", "/api/alerts/{alert_id}/ack", lambda: f"/api/alerts/{_alert_id('open')}/ack", {}),
        ("POST", "/api/alerts/{alert_id}/resolve", lambda: f"/api/alerts/{_alert_id('open', 'acknowledged')}/resolve",
         {"note": "done"}),
        ("POST", "/admin/alerts/test", "/admin/alerts/test", {"channel": "sns"}),
        ("POST", "/admin/alerts/test", "/admin/alerts/test", {"channel": "slack"}),
        ("POST", "/admin/alerts/test", "/admin/alerts/test", {"channel": "webhook"}),
        ("GET", "/api/credits", "/api/credits", None),
        ("GET", "/api/export", "/api/export?format=csv&hours=48", None),  # every account's calls: a job
        ("GET", "/api/export", "/api/export?format=json&days=2&account=acme", None),  # one account's
        ("GET", "/api/exports/{export_id}", lambda: f"/api/exports/{ids['run_exports']()}", None),  # ready: a link
        ("GET", "/openapi.json", "/openapi.json", None),
    ]


def run_exports(recorder, client):
    """Run, as the export function, each export job the API started and each run's hand-over to the next
    (every run hands over after a call or a day here), until all are ready; the last export's id."""
    invoked, recorder.invoked = recorder.invoked, []
    assert len(invoked) == 2, invoked
    with recorder.running("ExportCalls"):
        while invoked:
            event = invoked.pop(0)
            outcome = client.lambda_.invoke("export_calls", event).payload
            assert outcome["state"] in ("running", "ready"), outcome
            invoked += recorder.invoked
            recorder.invoked.clear()
    return event["export_id"]


def run_api(recorder, client):
    import app
    from app import JOBS
    from chalicelib.ledger.calllog import CALL_ID
    from chalicelib.ledger.models import ApiKey, CallRecord

    ids = {"key_id": next(iter(ApiKey.scan())).key_id,
           "call_id": next(c.call_id for c in CallRecord.scan() if CALL_ID.fullmatch(c.call_id)),
           "run_exports": lambda: run_exports(recorder, client)}
    requests = api_requests(ids)
    declared = {(path, method) for path, methods in app.app.routes.items() for method in methods}
    exercised = {(route, method) for method, route, _, _ in requests}
    assert declared <= exercised, f"routes with no scenario here: {sorted(declared - exercised)}"
    jobs_run = {path.rsplit("/", 1)[1] for _, route, path, _ in requests if route == "/admin/jobs/{job}"}
    assert set(JOBS) <= jobs_run, f"jobs with no scenario here: {sorted(set(JOBS) - jobs_run)}"
    _fresh_messages()
    _hold_expired()  # for the evaluate job to release
    with recorder.running("APIHandler"):
        for method, _, path, body in requests:
            path = recorder.paused(path) if callable(path) else path
            response = client.http.request(method, path, headers={**ADMIN, "X-Dashboard-Key": ADMIN_KEY},
                                           body=json.dumps(body) if body is not None else b"")
            assert response.status_code < 300 or (path == "/health" and response.status_code == 503), (
                path, response.status_code, response.body[:300])


def test_each_function_is_granted_exactly_what_its_code_uses(deployed, recorder, upstream, monkeypatch):
    from chalice.test import Client

    import app

    dynamo_faults = install_faults(DynamoFaults(), monkeypatch)
    mock = os.environ["TOLLGATE_OPENAI_BASE_URL"].removesuffix("/v1")
    monkeypatch.setenv("TOLLGATE_GROQ_BASE_URL", f"{mock}/groq/openai/v1")
    monkeypatch.setenv("TOLLGATE_AZURE_BASE_URL", f"{mock}/azure")
    reload_settings()
    run_proxy(recorder, dynamo_faults)
    with Client(app.app, stage_name="local") as client:
        run_replay_spill(recorder, client)
        run_rollup(recorder, client)
        run_schedules(recorder, client)
        run_api(recorder, client)
    used: dict[str, dict[str, set[str]]] = {}
    for function, by_resource in recorder.used.items():
        for resource, actions in by_resource.items():
            for action in actions:
                grant = _grant_for(permissions.CODE[function], resource, action)
                used.setdefault(function, {}).setdefault(grant, set()).add(action)
    assert set(used) == set(permissions.CODE)
    disagreements = []
    for function, granted in permissions.CODE.items():
        for resource in sorted(set(granted) | set(used[function])):
            needs, has = set(used[function].get(resource, ())), set(granted.get(resource, ()))
            if needs - has:
                disagreements.append(f"{function} needs {sorted(needs - has)} on {resource}: not granted")
            if has - needs:
                disagreements.append(f"{function} is granted {sorted(has - needs)} on {resource}: no code path uses it")
    assert not disagreements, "code and infra/permissions.py disagree:\n" + "\n".join(disagreements)


# The settings that name a resource: a function gets one exactly when it is granted that resource.
NAMING_SETTINGS = {
    "TOLLGATE_SPILL_QUEUE_URL": "SpillQueue", "TOLLGATE_SNS_TOPIC_ARN": "AlertsTopic",
    "TOLLGATE_ARCHIVE_BUCKET": "ArchiveBucket", "TOLLGATE_SLACK_WEBHOOK_URL_PARAMETER": permissions.SLACK_PARAMETER,
    "TOLLGATE_EXPORT_FUNCTION": permissions.EXPORT_FUNCTION, "TOLLGATE_MERGE_FUNCTION": permissions.MERGE_FUNCTION,
    "TOLLGATE_ADMIN_KEY_PARAMETER": "ssm:/tollgate/${Stage}/admin-key",
    **{f"TOLLGATE_{p.upper()}_API_KEY_PARAMETER": f"ssm:/tollgate/${{Stage}}/{p}-api-key"
       for p in KEYED_PROVIDERS},
}


def test_a_function_is_told_of_exactly_the_resources_it_may_use():
    """Its environment names a queue, topic, bucket or secret if and only if its role may use it: no setting
    pointing at something that would be refused, and no grant the function cannot find its way to."""
    from infra.stages import load
    from infra.template import FUNCTIONS

    resources = json.loads((ROOT / "infra" / "resources.json").read_text())["Resources"]
    stage = load(STAGE)
    for function, chalice_name in FUNCTIONS.items():
        variables = set(resources[function]["Properties"].get("Environment", {}).get("Variables", {}))
        variables |= set(stage.chalice.get("environment_variables", {}))
        variables |= set(stage.function_config(chalice_name).get("environment_variables", {}))
        granted = {r.split("/", 1)[0] if not r.startswith("ssm:") else r for r in permissions.CODE[function]}
        told = {NAMING_SETTINGS[v] for v in variables if v in NAMING_SETTINGS}
        assert told == granted & set(NAMING_SETTINGS.values()), function
