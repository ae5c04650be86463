"""Moto-backed fixtures: fresh AWS per test, the mock upstream over real HTTP, the Chalice test client."""
import json
import os
from collections import Counter

import botocore.endpoint
import pytest
from chalice.test import Client
from moto import mock_aws
from moto.core.botocore_stubber import MockRawResponse
from botocore.awsrequest import AWSResponse

from local.mock_upstream import MockUpstream
from tests.conftest import ADMIN_KEY, UPSTREAM_KEY


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
    monkeypatch.setenv("TOLLGATE_OPENAI_BASE_URL", f"{url}/v1")
    monkeypatch.setenv("TOLLGATE_ANTHROPIC_BASE_URL", url)
    monkeypatch.setenv("TOLLGATE_OPENROUTER_BASE_URL", f"{url}/openrouter/v1")
    reload_settings()
    yield mock
    reload_settings()


def reload_settings():
    from chalicelib import aws, upstream
    from chalicelib.auth import key_cache
    from chalicelib.settings import get_settings

    get_settings.cache_clear()
    aws.client.cache_clear()
    upstream.use_transport(None)
    key_cache.clear()


@pytest.fixture
def aws_env():
    with mock_aws():
        import boto3

        from chalicelib.models import create_tables

        reload_settings()
        create_tables()
        boto3.client("sqs").create_queue(QueueName="tollgate-dev-spill")
        yield
        reload_settings()


@pytest.fixture
def client(aws_env, upstream):
    from app import app

    with Client(app, stage_name="local") as chalice_client:  # the `local` stage reads no SSM
        yield chalice_client


class Gateway:
    """Thin helpers over the Chalice test client for what most tests do."""

    def __init__(self, client):
        self.client = client

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
        return self.client.http.post(path, headers=all_headers, body=data)

    def calls(self, key=ADMIN_KEY, query=""):
        response = self.client.http.get(f"/api/calls{query}", headers={"X-Dashboard-Key": key})
        return response.status_code, json.loads(response.body)


@pytest.fixture
def gateway(client):
    return Gateway(client)


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

    def fail(self, operation, times, code="ProvisionedThroughputExceededException", status=400):
        self.failures[operation] = (times, code, status)
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
        body = json.dumps({"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "injected"}).encode()
        http = AWSResponse(request.url, status, {"x-amzn-requestid": "injected"}, MockRawResponse(body))
        parsed = {"Error": {"Code": code, "Message": "injected"},
                  "ResponseMetadata": {"HTTPStatusCode": status, "HTTPHeaders": {}}}
        return (http, parsed), None


@pytest.fixture
def dynamo_faults(monkeypatch):
    faults = DynamoFaults()
    original = botocore.endpoint.Endpoint._do_get_response

    def faulty(self, request, operation_model, context):
        return faults.response_for(request, operation_model) or original(self, request, operation_model, context)

    monkeypatch.setattr(botocore.endpoint.Endpoint, "_do_get_response", faulty)
    return faults
