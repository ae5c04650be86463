"""Moto-backed fixtures: fresh AWS per test, the mock upstream over real HTTP, the Chalice test client."""
import json
from collections import Counter

import botocore.endpoint
import pytest
from botocore.awsrequest import AWSResponse
from chalice.test import Client
from moto import mock_aws
from moto.core.botocore_stubber import MockRawResponse

from local.mock_upstream import MockUpstream
from tests import api_schema
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY
from tests.sink import Sink


@pytest.fixture(scope="session")
def upstream_url():
    mock = MockUpstream(expected_key=UPSTREAM_KEY)
    url = mock.start()
    yield mock, url
    mock.stop()


@pytest.fixture
def upstream(upstream_url, monkeypatch):
    """The mock upstream, emptied, with every provider pointed at it."""
    mock, url = upstream_url
    mock.scripts.clear()
    mock.requests.clear()
    mock.credit_reads.clear()
    monkeypatch.setenv("TOLLGATE_OPENAI_BASE_URL", f"{url}/v1")
    monkeypatch.setenv("TOLLGATE_ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("TOLLGATE_OPENROUTER_BASE_URL", f"{url}/openrouter/v1")
    reload_settings()
    yield mock
    reload_settings()


def reload_settings():
    from chalicelib import aws
    from chalicelib.gateway import upstream
    from chalicelib.gateway.limits import served
    from chalicelib.ledger import signals
    from chalicelib.ledger.budgets import budget_cache
    from chalicelib.ledger.fallback_rules import fallback_cache
    from chalicelib.ledger.auth import key_cache
    from chalicelib.secret_store import secrets
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    budget_cache.clear()
    fallback_cache.clear()
    served.clear()
    signals.failures.clear()
    aws.client.cache_clear()
    aws.transactions.cache_clear()
    upstream.use_transport(None)
    key_cache.clear()
    secrets.clear()


@pytest.fixture
def aws_env():
    with mock_aws():
        import boto3

        from local.tables import create_tables

        reload_settings()
        create_tables()
        boto3.client("sqs").create_queue(QueueName="tollgate-dev-spill")
        boto3.client("s3").create_bucket(Bucket="tollgate-dev-archive")
        yield
        reload_settings()


@pytest.fixture
def sink():
    """A local HTTP server standing in for Slack and the alert webhook."""
    server = Sink()
    yield server
    server.stop()


@pytest.fixture
def channels(sink, monkeypatch, aws_env):
    """Every alert channel configured: Slack and the webhook to `sink`, SNS to an SQS queue (returned) that
    `helpers.sns_messages` reads."""
    import boto3

    sns, sqs = boto3.client("sns"), boto3.client("sqs")
    topic = sns.create_topic(Name="tollgate-dev-alerts")["TopicArn"]
    queue = sqs.create_queue(QueueName="alert-mail")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn)
    monkeypatch.setenv("TOLLGATE_SLACK_WEBHOOK_URL", f"{sink.url}/slack")
    monkeypatch.setenv("TOLLGATE_ALERT_WEBHOOK_URL", f"{sink.url}/webhook")
    monkeypatch.setenv("TOLLGATE_SNS_TOPIC_ARN", topic)
    reload_settings()
    return queue


@pytest.fixture
def client(aws_env, upstream):
    from app import app

    with Client(app, stage_name="local") as chalice_client:  # the `local` stage reads no SSM
        http, request = chalice_client.http, chalice_client.http.request

        def checked(method, path, headers=None, body=b""):  # every /api answer against /openapi.json
            response = request(method, path, headers=headers, body=body)
            api_schema.check(method, path, response.status_code, response.body)
            return response

        http.request = checked
        yield chalice_client


class ProxyResponse:
    """A proxy answer read whole, shaped like the Chalice test client's (status_code, headers, body)."""

    def __init__(self, response):
        self.status_code, self.headers, self.body = response.status_code, response.headers, response.content


class ProxyClient:
    """The streaming proxy app in-process (Starlette's TestClient), for the provider routes."""

    def __init__(self, test_client):
        self.test_client = test_client

    def request(self, method, path, headers=None, body=None):
        return ProxyResponse(self.test_client.request(method, path, headers=headers, content=body))

    def post(self, path, headers=None, body=None):
        return self.request("POST", path, headers, body)

    def get(self, path, headers=None):
        return self.request("GET", path, headers)


@pytest.fixture
def proxy_client(aws_env, upstream):
    from starlette.testclient import TestClient

    from chalicelib.gateway.proxy_app import app

    with TestClient(app) as test_client:
        yield ProxyClient(test_client)


class Gateway:
    """Thin helpers over the test clients for what most tests do: Chalice for /admin and /api, the proxy app
    for the provider routes."""

    def __init__(self, client, proxy):
        self.client, self.proxy = client, proxy

    def admin(self, method, path, body=None, key=ADMIN_KEY):
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        response = getattr(self.client.http, method)(path, headers=headers,
                                                     body=json.dumps(body) if body is not None else None)
        return response.status_code, json.loads(response.body) if response.body else None

    def new_key(self, account="acme", **fields):
        status, body = self.admin("post", "/admin/keys", {"name": "test", "account": account, **fields})
        assert status == 201, body
        return body["key"]

    def call(self, path, body, key, headers=None, raw=None):
        all_headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json", **(headers or {})}
        data = raw if raw is not None else json.dumps(body)
        return self.proxy.post(path, headers=all_headers, body=data)

    def calls(self, key=ADMIN_KEY, query=""):
        response = self.client.http.get(f"/api/calls{query}", headers={"X-Dashboard-Key": key})
        return response.status_code, json.loads(response.body)


@pytest.fixture
def gateway(client, proxy_client):
    return Gateway(client, proxy_client)


@pytest.fixture
def atomic_moto(monkeypatch):
    """Each in-process moto request runs alone, as each DynamoDB request is atomic: moto's backends are
    plain dicts, and threads iterating one while another writes it fail in moto, not in our code."""
    import threading

    from moto.core.botocore_stubber import BotocoreStubber

    lock, original = threading.Lock(), BotocoreStubber.__call__

    def one_at_a_time(self, *args, **kwargs):
        with lock:
            return original(self, *args, **kwargs)

    monkeypatch.setattr(BotocoreStubber, "__call__", one_at_a_time)


@pytest.fixture
def aws_calls(monkeypatch):
    """Every AWS API operation made (any botocore client), in order."""
    seen = []
    original = botocore.endpoint.Endpoint.make_request

    def counting(self, operation_model, request_dict):
        seen.append(operation_model.name)
        return original(self, operation_model, request_dict)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "make_request", counting)
    return seen


class DynamoFaults:
    """Fail chosen DynamoDB operations for the next N attempts, in place of the request reaching moto.

    Injected under botocore's retry loop, so botocore's own retries and error parsing run for real.
    """

    def __init__(self) -> None:
        self.failures: dict[str, tuple[int, str, int]] = {}
        self.injected: Counter = Counter()

    def fail(self, operation, times, code="ProvisionedThroughputExceededException", status=400, after=0):
        """Fail `operation` `times` times, after letting `after` attempts through."""
        self.failures[operation] = (times, code, status)
        self.injected[operation] = -after
        return self.injected

    def clear(self) -> None:
        self.failures.clear()

    def response_for(self, request, operation_model):
        rule = self.failures.get(operation_model.name)
        if operation_model.service_model.service_name != "dynamodb" or rule is None:
            return None
        times, code, status = rule
        if self.injected[operation_model.name] >= times:
            return None
        self.injected[operation_model.name] += 1
        if self.injected[operation_model.name] <= 0:
            return None
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}).encode()
        http = AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, MockRawResponse(body))
        parsed = {"Error": {"Code": code, "Message": "injected"},
                  "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
        return (http, parsed), None


def install_faults(faults, patcher):
    original = botocore.endpoint.Endpoint._do_get_response

    def faulty(self, request, operation_model, context):
        return faults.response_for(request, operation_model) or original(self, request, operation_model, context)

    patcher.setattr(botocore.endpoint.Endpoint, "_do_get_response", faulty)
    return faults


@pytest.fixture
def dynamo_faults(monkeypatch):
    return install_faults(DynamoFaults(), monkeypatch)


def stream_records(table="tollgate-dev-calls"):
    """Every record in the call log's stream so far, shaped as Lambda delivers them."""
    import boto3

    from local.pump import lambda_record

    arn = boto3.client("dynamodb").describe_table(TableName=table)["Table"]["LatestStreamArn"]
    streams = boto3.client("dynamodbstreams")
    records = []
    for shard in streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]:
        iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"],
                                              ShardIteratorType="TRIM_HORIZON")["ShardIterator"]
        while iterator:
            response = streams.get_records(ShardIterator=iterator, Limit=1000)
            if not response["Records"]:
                break
            records += [lambda_record(r, arn) for r in response["Records"]]
            iterator = response.get("NextShardIterator")
    return records


def as_ttl_expiry(record):
    return {**record, "userIdentity": {"type": "Service", "principalId": "dynamodb.amazonaws.com"}}
