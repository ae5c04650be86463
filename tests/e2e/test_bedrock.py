"""boto3 `bedrock-runtime`, unchanged but for `endpoint_url` and the gateway key, through the stack over HTTP:
Converse, ConverseStream, InvokeModel and InvokeModelWithResponseStream, exact to the digit."""
import json
from decimal import Decimal

import boto3
import botocore
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

M = Decimal("0.000001")
PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
MESSAGES = [{"role": "user", "content": [{"text": "hello"}]}]
CLAUDE_BODY = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
               "messages": [{"role": "user", "content": "hello"}]}
CONVERSE_USAGE = {"inputTokens": 100, "outputTokens": 300, "cacheReadInputTokens": 2000,
                  "cacheWriteInputTokens": 500, "totalTokens": 2900}
CLAUDE_USAGE = {"input_tokens": 100, "output_tokens": 300, "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 500}
# claude-sonnet-4-5 through a us. (regional) inference profile, per million: $3.30 input, $16.50 output,
# $0.33 cache read, $4.125 cache write
COST = 100 * Decimal("3.3") * M + 300 * Decimal("16.5") * M + 2000 * Decimal("0.33") * M + 500 * Decimal("4.125") * M


def bedrock_client(stack, key):
    """The local stack is plain HTTP, where botocore refuses to send a bearer token: sign nothing, and put the
    gateway key in the header as botocore would over HTTPS (docs/API.md, Bedrock)."""
    client = boto3.client("bedrock-runtime", region_name="us-east-1", endpoint_url=f"{stack.url}/bedrock",
                          config=Config(signature_version=botocore.UNSIGNED, retries={"max_attempts": 1}))
    client.meta.events.register("before-send.bedrock-runtime.*",
                                lambda request, **_: request.headers.__setitem__("Authorization", f"Bearer {key}"))
    return client


def logged(stack, call_id):
    [call] = [c for c in stack.calls(limit=50) if c["call_id"] == call_id]
    return call


def assert_kinds(call, endpoint, stream):
    assert (call["provider"], call["endpoint"], call["model"], call["stream"]) == ("bedrock", endpoint, PROFILE, stream)
    assert (call["input_tokens"], call["cache_read_tokens"], call["cache_write_tokens"], call["output_tokens"]) == (
        100, 2000, 500, 300)
    assert Decimal(call["cost_usd"]) == COST == Decimal("0.0080025")


def test_converse(stack, gateway_key, upstream):
    upstream.enqueue(usage=CONVERSE_USAGE)
    answer = bedrock_client(stack, gateway_key).converse(modelId=PROFILE, messages=MESSAGES)
    assert answer["output"]["message"]["content"][0]["text"] and answer["usage"] == CONVERSE_USAGE
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert Decimal(headers["x-tollgate-cost-usd"]) == COST
    assert_kinds(logged(stack, headers["x-tollgate-call-id"]), "converse", stream=False)
    seen = upstream.requests[-1]
    assert seen.path == "/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    assert seen.headers["authorization"].startswith("AWS4-HMAC-SHA256 ") and gateway_key not in str(seen.headers)


def test_converse_stream(stack, gateway_key, upstream):
    upstream.enqueue(usage=CONVERSE_USAGE)
    answer = bedrock_client(stack, gateway_key).converse_stream(modelId=PROFILE, messages=MESSAGES)
    events = list(answer["stream"])
    text = "".join(e["contentBlockDelta"]["delta"]["text"] for e in events if "contentBlockDelta" in e)
    assert text.strip() and events[-1]["metadata"]["usage"] == CONVERSE_USAGE
    assert_kinds(logged(stack, answer["ResponseMetadata"]["HTTPHeaders"]["x-tollgate-call-id"]),
                 "converse-stream", stream=True)


def test_invoke_model(stack, gateway_key, upstream):
    upstream.enqueue(usage=CLAUDE_USAGE)
    answer = bedrock_client(stack, gateway_key).invoke_model(modelId=PROFILE, body=json.dumps(CLAUDE_BODY))
    body = json.loads(answer["body"].read())
    assert body["usage"] == CLAUDE_USAGE and body["content"][0]["text"]
    headers = answer["ResponseMetadata"]["HTTPHeaders"]
    assert Decimal(headers["x-tollgate-cost-usd"]) == COST
    assert_kinds(logged(stack, headers["x-tollgate-call-id"]), "invoke", stream=False)


def test_invoke_model_with_response_stream(stack, gateway_key, upstream):
    upstream.enqueue(usage=CLAUDE_USAGE)
    answer = bedrock_client(stack, gateway_key).invoke_model_with_response_stream(
        modelId=PROFILE, body=json.dumps(CLAUDE_BODY))
    events = [json.loads(e["chunk"]["bytes"]) for e in answer["body"]]
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta").strip()
    assert_kinds(logged(stack, answer["ResponseMetadata"]["HTTPHeaders"]["x-tollgate-call-id"]),
                 "invoke-with-response-stream", stream=True)


def test_the_bedrock_api_key_variable_as_botocore_sends_it(stack, gateway_key, upstream, monkeypatch):
    """`AWS_BEARER_TOKEN_BEDROCK` as in AWS, where the stage is HTTPS: botocore's own bearer signer puts the key in
    the header; only the scheme is rewritten here, because the local stack has no TLS."""
    monkeypatch.setenv("AWS_BEARER_TOKEN_BEDROCK", gateway_key)
    client = boto3.client("bedrock-runtime", region_name="us-east-1",
                          endpoint_url=f"{stack.url.replace('http://', 'https://')}/bedrock")
    sent = []

    def plain_http(request, **_):
        sent.append(request.headers["Authorization"])
        request.url = request.url.replace("https://", "http://", 1)

    client.meta.events.register("before-send.bedrock-runtime.*", plain_http)
    upstream.enqueue(usage=CONVERSE_USAGE)
    answer = client.converse(modelId=PROFILE, messages=MESSAGES)
    assert sent == [f"Bearer {gateway_key}".encode()]  # botocore holds prepared headers as bytes
    assert Decimal(answer["ResponseMetadata"]["HTTPHeaders"]["x-tollgate-cost-usd"]) == COST


@pytest.mark.parametrize("key,model,code", [
    ("tg-not-a-key", PROFILE, "UnrecognizedClientException"),
    (None, "bad model id!", "ValidationException"),
    (None, "x" * 300, "ValidationException"),
])
def test_refusals_raise_the_client_error_boto3_names(stack, gateway_key, upstream, key, model, code):
    with pytest.raises(ClientError) as raised:
        bedrock_client(stack, key or gateway_key).converse(modelId=model, messages=MESSAGES)
    assert raised.value.response["Error"]["Code"] == code and raised.value.response["Error"]["Message"]
    call_id = raised.value.response["ResponseMetadata"]["HTTPHeaders"]["x-tollgate-call-id"]
    if key is None:  # a known caller: the refusal is logged
        assert logged(stack, call_id)["error_type"] == "invalid_request_error"
    assert not [r for r in upstream.requests if r.path.startswith("/bedrock/")]
