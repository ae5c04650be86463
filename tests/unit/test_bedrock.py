"""Bedrock's pure parts: the event-stream frame decoder, the paths, SigV4, usage and golden costs worked out by hand
from genai-prices' published `aws` prices, and errors in the shape boto3 reads."""
import base64
import json
import struct
import zlib
from datetime import datetime, timezone
from decimal import Decimal

import pytest
from botocore.eventstream import EventStreamBuffer
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.errors import (
    AuthenticationError,
    BudgetExceeded,
    ConfigurationError,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UpstreamTimeout,
)
from chalicelib.gateway.pricing import price_call
from chalicelib.gateway.providers import bedrock as bedrock_module
from chalicelib.gateway.providers import get_adapter
from chalicelib.gateway.providers.base import PreparedBody
from chalicelib.gateway.providers.bedrock_eventstream import CorruptFrame, EventStreamDecoder, parse_headers
from chalicelib.gateway.sse import EventTooLarge
from chalicelib.gateway.tokens import TokenUsage
from local.mock_bedrock import chunk_frame, encode_frame, event_frame
from tests.conftest import load_event

AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
M = Decimal("0.000001")
PROFILE = "us.anthropic.claude-sonnet-4-5-20250929-v1:0"


@pytest.fixture
def adapter():
    return get_adapter("bedrock")


# -- the frame decoder ------------------------------------------------------------------------------------------
def decode(data: bytes, cuts: list[int], decoder=None) -> list:
    decoder = decoder or EventStreamDecoder()
    frames, start = [], 0
    for cut in sorted(set(cuts)) + [len(data)]:
        frames += decoder.feed(data[start:cut])
        start = cut
    return frames + decoder.flush()


def test_mock_frames_are_what_botocores_own_parser_reads():
    """The mock's encoder and the gateway's decoder share no code; botocore's parser is the referee."""
    raw = event_frame("metadata", {"usage": {"inputTokens": 1}}) + chunk_frame({"type": "message_stop"})
    parsed = list(_botocore(raw))
    assert [m.headers[":event-type"] for m in parsed] == ["metadata", "chunk"]
    assert [f.headers for f in decode(raw, [])] == [m.headers for m in parsed]
    assert [f.payload for f in decode(raw, [])] == [m.payload for m in parsed]


def _botocore(raw):
    buffer = EventStreamBuffer()
    buffer.add_data(raw)
    return buffer


header_values = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
frames_strategy = st.lists(st.tuples(st.dictionaries(st.text("abcdefgh:-", min_size=1, max_size=20), header_values,
                                                     max_size=4), st.binary(max_size=300)), min_size=1, max_size=6)


@given(frames_strategy, st.lists(st.integers(min_value=0, max_value=2000), max_size=30))
def test_frames_come_out_whole_wherever_the_chunks_split(frames, cuts):
    raw = [encode_frame(headers, payload) for headers, payload in frames]
    decoded = decode(b"".join(raw), cuts)
    assert [f.wire() for f in decoded] == raw  # relayed byte for byte, one frame at a time
    assert [(f.headers, f.payload) for f in decoded] == frames


def test_a_frame_split_byte_by_byte_is_held_until_complete():
    raw = event_frame("contentBlockDelta", {"delta": {"text": "hi"}, "contentBlockIndex": 0})
    decoder = EventStreamDecoder()
    assert all(decoder.feed(raw[n:n + 1]) == [] for n in range(len(raw) - 1))
    [frame] = decoder.feed(raw[-1:])
    assert frame.event_type == "contentBlockDelta"
    assert frame.json() == {"contentBlockDelta": {"delta": {"text": "hi"}, "contentBlockIndex": 0}}


@pytest.mark.parametrize("where", [0, 5, 9, 11])  # the lengths, then the prelude's own CRC
def test_a_damaged_prelude_fails_its_crc(where):
    raw = bytearray(event_frame("metadata", {}))
    raw[where] ^= 0x01
    with pytest.raises(CorruptFrame):
        EventStreamDecoder().feed(bytes(raw))


@pytest.mark.parametrize("where", [14, 40, -6, -1])  # a header, the payload, the message CRC
def test_a_damaged_message_fails_its_crc(where):
    raw = bytearray(event_frame("metadata", {"usage": {"inputTokens": 12}}))
    raw[where] ^= 0x20
    with pytest.raises(CorruptFrame):
        EventStreamDecoder().feed(bytes(raw))


def test_a_corrupt_frame_is_an_event_too_large_so_the_relay_logs_it_interrupted():
    assert issubclass(CorruptFrame, EventTooLarge)


def test_an_oversized_frame_is_refused_from_its_prelude_before_it_is_buffered():
    decoder = EventStreamDecoder(max_frame_bytes=1000)
    for _ in range(50):  # many small frames: nothing accumulates
        assert len(decoder.feed(event_frame("chunk", {"bytes": "x" * 500}))) == 1
    big = event_frame("chunk", {"bytes": "y" * 2000})
    with pytest.raises(EventTooLarge) as raised:
        decoder.feed(big[:12])  # the prelude alone announces it
    assert not isinstance(raised.value, CorruptFrame)


def test_impossible_lengths_are_corrupt():
    for total, headers_length in [(8, 0), (20, 10), (16, 1)]:  # under the minimum; headers past the payload
        prelude = struct.pack(">II", total, headers_length)
        with pytest.raises(CorruptFrame):
            EventStreamDecoder().feed(prelude + struct.pack(">I", zlib.crc32(prelude)) + b"\0" * 20)


def test_a_stream_that_ends_inside_a_frame_is_broken():
    raw = event_frame("metadata", {})
    decoder = EventStreamDecoder()
    assert decoder.feed(raw[:-3]) == []
    with pytest.raises(CorruptFrame):
        decoder.flush()


def test_headers_of_every_type_are_read_and_an_overrun_is_corrupt():
    block = (b"\x01a\x00" + b"\x01b\x01" + b"\x01c\x02\x7f" + b"\x01d\x04" + struct.pack(">i", 7)
             + b"\x01e\x06\x00\x02\x01\x02" + b"\x01f\x07\x00\x03abc" + b"\x01g\x09" + b"u" * 16)
    headers = parse_headers(block)
    assert headers["f"] == "abc" and headers["d"] == struct.pack(">i", 7) and headers["e"] == b"\x01\x02"
    assert set(headers) == set("abcdefg")
    for bad in (b"\x01f\x07\x00\x09abc", b"\x01x\x0c", b"\x05ab"):  # a value past the block; no such type; a name
        with pytest.raises(CorruptFrame):
            parse_headers(bad)


# -- paths -------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("op,stream,flavor", [("converse", False, "default"), ("converse-stream", True, "default"),
                                              ("invoke", False, "anthropic"),
                                              ("invoke-with-response-stream", True, "anthropic")])
def test_the_path_names_the_model_and_whether_it_streams(adapter, op, stream, flavor):
    match = adapter.resolve(f"model/{PROFILE}/{op}", "POST")
    assert (match.endpoint.path, match.model, match.stream, match.endpoint.usage_flavor) == (op, PROFILE, stream,
                                                                                              flavor)
    assert adapter.upstream_url("https://bedrock-runtime.us-east-1.amazonaws.com", match, {"key": "x"}) == (
        f"https://bedrock-runtime.us-east-1.amazonaws.com/model/us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/{op}")


def test_an_arn_keeps_its_slashes_inside_the_model_id(adapter):
    arn = "arn:aws:bedrock:us-east-1:123456789012:inference-profile/us.anthropic.claude-sonnet-4-5-20250929-v1:0"
    match = adapter.resolve(f"model/{arn}/converse", "POST")
    assert match.model == arn
    assert adapter.upstream_url("https://b", match, {}) == (
        "https://b/model/arn%3Aaws%3Abedrock%3Aus-east-1%3A123456789012%3Ainference-profile%2F"
        "us.anthropic.claude-sonnet-4-5-20250929-v1%3A0/converse")


@pytest.mark.parametrize("path,method", [("model/x/converse", "GET"), ("model/x/apply-guardrail", "POST"),
                                         ("converse", "POST"), ("v1/chat/completions", "POST"),
                                         ("model/x/converse\n", "POST")])
def test_other_paths_are_not_found(adapter, path, method):
    with pytest.raises(NotFound):
        adapter.resolve(path, method)


@pytest.mark.parametrize("model", ["", "..", ".hidden", "a b", "model?x=1", "café", "a/b", "arn:aws:s3:::bucket/x",
                                   "amazon.nova-pro-v1:0\n"])
def test_a_name_no_bedrock_model_has_is_refused(adapter, model):
    match = adapter.resolve(f"model/{model}/converse", "POST")
    with pytest.raises(InvalidRequest):
        adapter.upstream_url("https://b", match, {})


# -- SigV4 -------------------------------------------------------------------------------------------------------
def test_requests_are_signed_for_bedrock_with_the_functions_credentials(adapter, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    bedrock_module._session.cache_clear()
    url = "https://bedrock-runtime.us-east-1.amazonaws.com/model/us.x-v1%3A0/converse"
    headers = adapter.signed("POST", url, {"content-type": "application/json"}, b"{}")
    credential, signed_headers, signature = headers["Authorization"].split(", ")
    assert credential.startswith("AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/")
    assert credential.endswith("/us-east-1/bedrock/aws4_request")
    assert signed_headers == "SignedHeaders=content-type;host;x-amz-date;x-amz-security-token"
    assert len(signature.removeprefix("Signature=")) == 64 and headers["X-Amz-Security-Token"] == "testing"
    bedrock_module._session.cache_clear()


def test_without_credentials_the_call_fails_as_configuration(adapter, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    bedrock_module._session.cache_clear()
    try:
        with pytest.raises(ConfigurationError):
            adapter.signed("POST", "https://b/model/x/converse", {}, b"{}")
    finally:
        bedrock_module._session.cache_clear()


def test_the_callers_key_never_goes_upstream(adapter):
    assert adapter.auth_headers("tg-secret") == {}
    assert adapter.upstream_headers({"authorization": "Bearer tg-secret", "content-type": "application/json",
                                     "x-amzn-bedrock-guardrailidentifier": "g1"}, None) == {
        "content-type": "application/json", "x-amzn-bedrock-guardrailidentifier": "g1"}


# -- usage and golden costs ----------------------------------------------------------------------------------------
def test_converse_usage_splits_cache_reads_and_writes_out_of_input(adapter):
    usage, model = adapter.parse_usage(adapter.endpoint("converse"), load_event("bedrock_converse.json"))
    assert model is None  # priced by the path's model id
    assert usage == TokenUsage(input_tokens=12, cache_read_tokens=1000, cache_write_tokens=500, output_tokens=10)


def test_invoke_usage_is_claudes_and_its_model_name_is_not_taken(adapter):
    usage, model = adapter.parse_usage(adapter.endpoint("invoke"), load_event("bedrock_invoke_claude.json"))
    assert model is None  # "claude-sonnet-4-5-20250929" would lose the inference profile (and its price)
    assert usage == TokenUsage(input_tokens=12, cache_read_tokens=1000, cache_write_tokens=500, output_tokens=10)


USAGE = TokenUsage(input_tokens=100, cache_read_tokens=2000, cache_write_tokens=500, output_tokens=300)


@pytest.mark.parametrize("model,cost", [
    # us. and eu. profiles are Bedrock's regional price (10 % over global): $3.30 in, $16.50 out,
    # $0.33 cache read, $4.125 cache write per million
    (PROFILE, 100 * Decimal("3.3") * M + 300 * Decimal("16.5") * M + 2000 * Decimal("0.33") * M
     + 500 * Decimal("4.125") * M),
    ("eu.anthropic.claude-sonnet-4-5-20250929-v1:0", Decimal("0.0080025")),
    ("anthropic.claude-sonnet-4-5-20250929-v1:0", Decimal("0.0080025")),  # in-region model id
    # global.: $3 in, $15 out, $0.30 cache read, $3.75 cache write
    ("global.anthropic.claude-sonnet-4-5-20250929-v1:0",
     100 * 3 * M + 300 * 15 * M + 2000 * Decimal("0.3") * M + 500 * Decimal("3.75") * M),
])
def test_inference_profiles_are_priced_by_genai_prices_aws_entries(model, cost):
    price = price_call("bedrock", model, USAGE, AT)
    assert price.cost_usd == cost and price.source == "genai-prices"
    assert price_call("bedrock", PROFILE, USAGE, AT).cost_usd == Decimal("0.0080025")


def test_nova_through_a_us_profile_with_cache_reads():
    # amazon.nova-pro: $0.80 in, $0.20 cache read, $3.20 out per million
    usage = TokenUsage(input_tokens=1000, cache_read_tokens=500, output_tokens=200)
    price = price_call("bedrock", "us.amazon.nova-pro-v1:0", usage, AT)
    assert price.cost_usd == 1000 * Decimal("0.8") * M + 500 * Decimal("0.2") * M + 200 * Decimal("3.2") * M
    assert price.cost_usd == Decimal("0.00154")


def meter_over(adapter, op, raw):
    meter = adapter.stream_meter(adapter.endpoint(op), PreparedBody(b""))
    for frame in decode(raw, list(range(0, len(raw), 7))):
        meter.see(frame)
    return meter


def test_converse_stream_usage_comes_from_the_metadata_event(adapter):
    raw = b"".join(event_frame(name, payload) for name, payload in load_event("bedrock_converse_stream.json"))
    meter = meter_over(adapter, "converse-stream", raw)
    assert meter.complete and meter.content_started
    assert meter.usage() == (TokenUsage(input_tokens=12, cache_read_tokens=1000, cache_write_tokens=500,
                                        output_tokens=10), None)


def test_invoke_stream_usage_comes_from_claudes_events_inside_chunks(adapter):
    raw = b"".join(chunk_frame(event) for event in load_event("bedrock_invoke_claude_stream.json"))
    meter = meter_over(adapter, "invoke-with-response-stream", raw)
    assert meter.complete and meter.content_started
    assert meter.usage()[0] == TokenUsage(input_tokens=12, cache_read_tokens=1000, cache_write_tokens=500,
                                          output_tokens=10)


def test_invocation_metrics_stand_in_when_the_events_state_no_usage(adapter):
    events = [e for e in load_event("bedrock_invoke_claude_stream.json") if e["type"] not in ("message_start",
                                                                                               "message_delta")]
    meter = meter_over(adapter, "invoke-with-response-stream", b"".join(chunk_frame(e) for e in events))
    assert meter.usage()[0] == TokenUsage(input_tokens=12, output_tokens=10)


def test_a_chunk_that_is_not_base64_json_is_passed_on_unread(adapter):
    meter = meter_over(adapter, "invoke-with-response-stream",
                       event_frame("chunk", {"bytes": "%%%"}) + event_frame("chunk", {"bytes": base64.b64encode(
                           b"[1]").decode()}))
    assert meter.usage() == (None, None) and not meter.complete


def test_an_exception_frame_is_relayed_and_names_its_type():
    raw = encode_frame({":exception-type": "throttlingException", ":message-type": "exception"},
                       json.dumps({"message": "slow down"}).encode())
    [frame] = EventStreamDecoder().feed(raw)
    assert frame.event_type == "throttlingException" and frame.wire() == raw


# -- errors --------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error,code", [
    (AuthenticationError("invalid gateway key"), "UnrecognizedClientException"),
    (InvalidRequest("bad"), "ValidationException"),
    (PayloadTooLarge("big"), "ValidationException"),
    (NotFound("none"), "ResourceNotFoundException"),
    (BudgetExceeded("spent"), "ServiceQuotaExceededException"),
    (UpstreamTimeout("slow"), "ModelTimeoutException"),
    (ConfigurationError("no credentials"), "InternalServerException"),
])
def test_errors_are_bedrocks_shape_with_the_type_boto3_raises_by(adapter, error, code):
    assert adapter.error_body(error) == {"message": error.message}
    assert adapter.error_headers(error) == {"x-amzn-ErrorType": code}


def test_no_trailer_goes_into_an_event_stream(adapter):
    assert adapter.trailer('tollgate {"call_id": "x"}') == b""
    assert adapter.streams("application/vnd.amazon.eventstream") and not adapter.streams("application/json")


class _Sent(Exception):
    pass


def test_the_signature_is_the_one_boto3_itself_computes_for_the_same_request(adapter, monkeypatch):
    """AWS accepts boto3's signature; ours, over the URL the proxy builds (the model id quoted again), is the same,
    so the canonical request (path encoding, signed headers, payload hash) matches."""
    import boto3
    import botocore.auth

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2026, 12, 7, 17, 0, 0))
    bedrock_module._session.cache_clear()
    sent = {}

    def capture(request, **_):
        sent.update(url=request.url, headers=dict(request.headers), body=request.body)
        raise _Sent

    client = boto3.client("bedrock-runtime", region_name="us-east-1",
                          endpoint_url="https://bedrock-runtime.us-east-1.amazonaws.com")
    client.meta.events.register("before-send.bedrock-runtime.*", capture)
    with pytest.raises(_Sent):
        client.converse(modelId=PROFILE, messages=[{"role": "user", "content": [{"text": "hello"}]}])
    match = adapter.resolve(f"model/{PROFILE}/converse", "POST")  # as the proxy sees the path: decoded
    url = adapter.upstream_url("https://bedrock-runtime.us-east-1.amazonaws.com", match, {})
    assert url == sent["url"]
    ours = adapter.signed("POST", url, {"content-type": sent["headers"]["Content-Type"].decode()}, sent["body"])
    assert ours["Authorization"] == sent["headers"]["Authorization"].decode()
    bedrock_module._session.cache_clear()


def test_nova_through_invoke_model_is_read_as_converse_and_priced(adapter):
    usage, model = adapter.parse_usage(adapter.endpoint("invoke"), load_event("bedrock_invoke_nova.json"))
    assert model is None and usage == TokenUsage(input_tokens=1000, cache_read_tokens=500, output_tokens=200)
    # amazon.nova-pro: $0.80 in, $0.20 cache read, $3.20 out per million
    assert price_call("bedrock", "us.amazon.nova-pro-v1:0", usage, AT).cost_usd == Decimal("0.00154")


def test_nova_invoke_stream_usage_comes_from_the_metadata_inside_its_chunks(adapter):
    events = [{"messageStart": {"role": "assistant"}}, {"contentBlockDelta": {"delta": {"text": "Hi"},
                                                                              "contentBlockIndex": 0}},
              {"messageStop": {"stopReason": "end_turn"}},
              {"metadata": {"usage": {"inputTokens": 1000, "outputTokens": 200, "cacheReadInputTokenCount": 500}},
               "amazon-bedrock-invocationMetrics": {"inputTokenCount": 1500, "outputTokenCount": 200}}]
    meter = meter_over(adapter, "invoke-with-response-stream", b"".join(chunk_frame(e) for e in events))
    assert meter.complete and meter.content_started
    assert meter.usage() == (TokenUsage(input_tokens=1000, cache_read_tokens=500, output_tokens=200), None)
