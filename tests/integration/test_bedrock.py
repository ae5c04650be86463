"""Bedrock through the proxy against the mock upstream over HTTP: SigV4 upstream, the model in the path, usage from
Converse and from Claude's own body, streams relayed frame by frame, refusals in Bedrock's shape, all logged."""
import base64
import json
import os
from decimal import Decimal
from urllib.parse import quote

import pytest
from botocore.eventstream import EventStreamBuffer

from chalicelib.ledger.models import CallRecord
from tests.integration.conftest import reload_settings

PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"
CONVERSE = {"messages": [{"role": "user", "content": [{"text": "the secret prompt text"}]}],
            "inferenceConfig": {"maxTokens": 50}}
INVOKE = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 50,
          "messages": [{"role": "user", "content": "the secret prompt text"}]}
CONVERSE_USAGE = {"inputTokens": 100, "outputTokens": 300, "cacheReadInputTokens": 2000,
                  "cacheWriteInputTokens": 500, "totalTokens": 2900}
CLAUDE_USAGE = {"input_tokens": 100, "output_tokens": 300, "cache_read_input_tokens": 2000,
                "cache_creation_input_tokens": 500}
# us. (regional) claude-sonnet-4-5 on Bedrock: $3.30 input, $16.50 output, $0.33 cache read, $4.125 cache write per
# million: 100 × 3.3 + 300 × 16.5 + 2000 × 0.33 + 500 × 4.125 = 330 + 4950 + 660 + 2062.5 = 8002.5 µ$
REGIONAL_COST = Decimal("0.0080025")
# global. : $3, $15, $0.30, $3.75: 300 + 4500 + 600 + 1875 = 7275 µ$
GLOBAL_COST = Decimal("0.007275")


@pytest.fixture
def bedrock(upstream, upstream_url, monkeypatch):
    monkeypatch.setenv("TOLLGATE_BEDROCK_BASE_URL", f"{upstream_url[1]}/bedrock")
    reload_settings()
    return upstream


def path(model, op):
    return f"/bedrock/model/{quote(model, safe='%')}/{op}"


def only_call():
    [record] = list(CallRecord.scan())
    return record


def frames(raw):
    """The answer's frames, read by botocore's own event-stream parser (CRCs checked there)."""
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return [(m.headers[":event-type"], json.loads(m.payload)) for m in buffer]


def test_converse_is_signed_upstream_metered_and_logged(gateway, bedrock):
    key = gateway.new_key(account="acme")
    bedrock.enqueue(usage=CONVERSE_USAGE)
    response = gateway.call(path(PROFILE, "converse"), CONVERSE, key)
    assert response.status_code == 200, response.body
    assert json.loads(response.body)["output"]["message"]["content"][0]["text"]
    assert response.headers["X-Tollgate-Cost-USD"] == str(REGIONAL_COST)
    seen = bedrock.requests[-1]
    assert seen.path == "/bedrock/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse"
    authorization = seen.headers["authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential={os.environ['AWS_ACCESS_KEY_ID']}/")
    assert "/us-east-1/bedrock/aws4_request" in authorization and "x-amz-date" in seen.headers
    assert key not in json.dumps(seen.headers) and seen.headers["x-amz-security-token"] == os.environ[
        "AWS_SESSION_TOKEN"]
    call = only_call()
    assert (call.provider, call.endpoint, call.model, call.stream) == ("bedrock", "converse", PROFILE, False)
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens) == (
        100, 2000, 500, 300)
    assert call.cost_usd == REGIONAL_COST and call.status == 200


def test_the_region_setting_names_the_signing_region(gateway, bedrock, monkeypatch):
    monkeypatch.setenv("TOLLGATE_BEDROCK_REGION", "eu-west-1")
    reload_settings()
    key = gateway.new_key()
    assert gateway.call(path(PROFILE, "converse"), CONVERSE, key).status_code == 200
    assert "/eu-west-1/bedrock/aws4_request" in bedrock.requests[-1].headers["authorization"]


def test_global_profile_is_priced_at_the_global_price(gateway, bedrock):
    key = gateway.new_key()
    bedrock.enqueue(usage=CONVERSE_USAGE)
    response = gateway.call(path("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "converse"), CONVERSE, key)
    assert response.headers["X-Tollgate-Cost-USD"] == str(GLOBAL_COST)


def test_converse_stream_is_relayed_frame_by_frame_and_metered(gateway, bedrock):
    key = gateway.new_key()
    bedrock.enqueue(usage=CONVERSE_USAGE)
    response = gateway.call(path(PROFILE, "converse-stream"), CONVERSE, key)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.amazon.eventstream"
    events = frames(response.body)
    assert [name for name, _ in events][:2] == ["messageStart", "contentBlockDelta"]
    assert events[-1] == ("metadata", {**events[-1][1], "usage": CONVERSE_USAGE})  # nothing after it: no trailer
    assert "X-Tollgate-Cost-USD" not in response.headers
    call = only_call()
    assert call.stream and call.endpoint == "converse-stream" and call.error_type is None
    assert call.cost_usd == REGIONAL_COST and response.headers["X-Tollgate-Call-Id"] == call.call_id


def test_invoke_model_with_claude_is_priced_by_the_path_model(gateway, bedrock):
    key = gateway.new_key()
    bedrock.enqueue(usage=CLAUDE_USAGE)
    response = gateway.call(path(PROFILE, "invoke"), INVOKE, key)
    assert response.status_code == 200 and json.loads(response.body)["model"] == "claude-sonnet-4-5-20250929"
    call = only_call()
    assert call.model == PROFILE and call.cost_usd == REGIONAL_COST
    assert (call.input_tokens, call.cache_read_tokens, call.cache_write_tokens, call.output_tokens) == (
        100, 2000, 500, 300)


def test_invoke_stream_reads_claude_events_inside_chunks(gateway, bedrock):
    key = gateway.new_key()
    bedrock.enqueue(usage=CLAUDE_USAGE)
    response = gateway.call(path(PROFILE, "invoke-with-response-stream"), INVOKE, key)
    assert response.status_code == 200
    inner = [json.loads(base64.b64decode(payload["bytes"])) for name, payload in frames(response.body)]
    assert inner[0]["type"] == "message_start" and inner[-1]["type"] == "message_stop"
    call = only_call()
    assert call.stream and call.cost_usd == REGIONAL_COST and call.output_tokens == 300


def test_a_stream_dropped_midway_is_logged_interrupted_with_usage_so_far(gateway, bedrock):
    key = gateway.new_key()
    bedrock.enqueue(usage=CLAUDE_USAGE, drop_stream_after_events=3)
    response = gateway.call(path(PROFILE, "invoke-with-response-stream"), INVOKE, key)
    assert len(frames(response.body)) == 3
    call = only_call()
    assert call.error_type == "stream_interrupted" and call.input_tokens == 100 and call.cache_read_tokens == 2000


def test_an_upstream_error_keeps_bedrocks_error_type(gateway, bedrock):
    key = gateway.new_key()
    bedrock.enqueue(status=429, body={"message": "Too many requests, please wait before trying again."})
    response = gateway.call(path(PROFILE, "converse"), CONVERSE, key)
    assert response.status_code == 429
    assert response.headers["x-amzn-errortype"].startswith("ThrottlingException")
    assert json.loads(response.body) == {"message": "Too many requests, please wait before trying again."}
    assert only_call().status == 429


@pytest.mark.parametrize("model,raw,status,code", [
    ("x" * 300, None, 400, "ValidationException"),  # oversized
    ("bad model id!", None, 400, "ValidationException"),  # not an id Bedrock has
    ("%2E%2E", None, 400, "ValidationException"),  # `..`, which would walk up the upstream's path
    (PROFILE, b"{not json", 400, "ValidationException"),
    (PROFILE, b"[1, 2]", 400, "ValidationException"),
])
def test_hostile_input_is_refused_in_bedrocks_shape_and_logged(gateway, bedrock, model, raw, status, code):
    key = gateway.new_key()
    response = gateway.call(path(model, "converse"), CONVERSE, key, raw=raw)
    assert response.status_code == status and response.headers["x-amzn-errortype"] == code
    assert set(json.loads(response.body)) == {"message"}
    assert not bedrock.requests  # nothing went upstream
    call = only_call()
    assert call.status == status and call.error_type == "invalid_request_error"


@pytest.mark.parametrize("authorization", [
    None,
    "Bearer tg-nosuchkey_0123456789abcdef",
    # boto3's default: a request signed with the caller's own AWS credentials, which the gateway does not take
    "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/us-east-1/bedrock/aws4_request, "
    "SignedHeaders=host;x-amz-date, Signature=" + "0" * 64,
])
def test_a_missing_wrong_or_aws_signed_key_is_unrecognized_client(gateway, bedrock, authorization):
    headers = {"Content-Type": "application/json", **({"Authorization": authorization} if authorization else {})}
    response = gateway.proxy.post(path(PROFILE, "converse"), headers=headers, body=json.dumps(CONVERSE))
    assert response.status_code == 401 and response.headers["x-amzn-errortype"] == "UnrecognizedClientException"
    assert "message" in json.loads(response.body) and not bedrock.requests


def test_an_unknown_operation_is_a_404_in_bedrocks_shape(gateway, bedrock):
    key = gateway.new_key()
    response = gateway.call(f"/bedrock/model/{PROFILE}/apply-guardrail", CONVERSE, key)
    assert response.status_code == 404
    assert response.headers["x-amzn-errortype"] == "ResourceNotFoundException"


def test_invoke_through_a_global_profile_is_priced_globally_whatever_claude_calls_itself(gateway, bedrock):
    key = gateway.new_key()
    bedrock.enqueue(usage=CLAUDE_USAGE)
    response = gateway.call(path("global.anthropic.claude-sonnet-4-5-20250929-v1:0", "invoke"), INVOKE, key)
    assert json.loads(response.body)["model"] == "claude-sonnet-4-5-20250929"  # which genai-prices prices regionally
    assert response.headers["X-Tollgate-Cost-USD"] == str(GLOBAL_COST)
