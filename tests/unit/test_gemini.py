"""Gemini's wire format: routes, `usageMetadata` as disjoint kinds, golden costs worked out by hand, streams split
anywhere, Google's error shape, and why its streams carry no trailer."""
import json
import random
from datetime import datetime, timezone
from decimal import Decimal

import httpx
import pytest

from chalicelib.errors import (
    AuthenticationError,
    BudgetExceeded,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    UpstreamTimeout,
    UpstreamUnreachable,
)
from chalicelib.gateway import pricing
from chalicelib.gateway.providers import get_adapter
from chalicelib.gateway.providers.base import PreparedBody
from chalicelib.gateway.sse import SseDecoder, comment
from chalicelib.gateway.tokens import TokenUsage
from tests.conftest import EVENTS

STREAM = EVENTS / "gemini_stream.sse"
AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
M = Decimal(10) ** 6


def gemini():
    return get_adapter("gemini")


def parse(body, endpoint="generateContent"):
    adapter = gemini()
    return adapter.parse_usage(adapter.endpoint(endpoint), body)


def cost(model, usage_metadata):
    usage, _ = parse({"usageMetadata": usage_metadata, "modelVersion": model})
    return pricing.price_call("gemini", model, usage, AT).cost_usd


# -- usage ---------------------------------------------------------------------------------------------------
def test_thoughts_are_reasoning_billed_as_output(event):
    usage, model = parse(event("gemini_generate_content.json"))
    assert model == "gemini-2.5-flash"
    assert usage == TokenUsage(input_tokens=8, output_tokens=19, reasoning_tokens=1049)


def test_cached_content_is_cut_from_the_prompt_and_tool_use_prompt_is_input(event):
    usage, model = parse(event("gemini_generate_content_cached.json"))
    assert model == "gemini-2.5-pro"
    # promptTokenCount 250,000 less cachedContentTokenCount 200,000, plus toolUsePromptTokenCount 300
    assert usage == TokenUsage(input_tokens=50_300, cache_read_tokens=200_000, output_tokens=2000,
                               reasoning_tokens=1000)
    assert usage.total_input_tokens == 250_300


def test_an_answer_without_usage_metadata_reports_none_and_bad_counts_are_unreadable():
    assert parse({"candidates": [], "modelVersion": "gemini-2.5-flash"}) == (None, "gemini-2.5-flash")
    assert parse(["not", "chunks"]) == (None, None)
    usage, _ = parse({"usageMetadata": {"promptTokenCount": "many"}})
    assert not usage.plausible()
    usage, _ = parse({"usageMetadata": {"promptTokenCount": 10, "cachedContentTokenCount": 50}})
    assert not usage.plausible()  # more cached than prompted: never priced


def test_models_prefix_is_dropped_from_the_model_that_answered():
    assert parse({"modelVersion": "models/gemini-2.5-pro", "usageMetadata": {"promptTokenCount": 1}})[1] == (
        "gemini-2.5-pro")


# -- golden costs: the published per-million prices times the counts, by hand ------------------------------------
# gemini-2.5-flash: $0.30 input, $0.03 cache read, $2.50 output (thinking included).
# gemini-2.5-pro: prompts up to 200k tokens $1.25 input, $0.125 cache read, $10 output; above 200k, for the whole
# call, $2.50, $0.25 and $15.
GOLDEN = [
    ("flash with thoughts", "gemini-2.5-flash",
     {"promptTokenCount": 8, "candidatesTokenCount": 19, "thoughtsTokenCount": 1049},
     (8 * Decimal("0.30") + (19 + 1049) * Decimal("2.50")) / M, "0.0026724"),
    ("flash cached", "gemini-2.5-flash",
     {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 300,
      "thoughtsTokenCount": 100},
     (200 * Decimal("0.30") + 1000 * Decimal("0.03") + 400 * Decimal("2.50")) / M, "0.00109"),
    ("pro cached under the tier", "gemini-2.5-pro",
     {"promptTokenCount": 100_000, "cachedContentTokenCount": 60_000, "candidatesTokenCount": 1000,
      "thoughtsTokenCount": 500},
     (40_000 * Decimal("1.25") + 60_000 * Decimal("0.125") + 1500 * Decimal(10)) / M, "0.0725"),
    ("pro at exactly 200k: base", "gemini-2.5-pro",
     {"promptTokenCount": 200_000, "candidatesTokenCount": 1000},
     (200_000 * Decimal("1.25") + 1000 * Decimal(10)) / M, "0.26"),
    ("pro at 200,001: all of it at the upper tier", "gemini-2.5-pro",
     {"promptTokenCount": 200_001, "candidatesTokenCount": 1000},
     (200_001 * Decimal("2.50") + 1000 * Decimal(15)) / M, "0.5150025"),
    ("pro cached above the tier, tool prompt counted", "gemini-2.5-pro",
     {"promptTokenCount": 250_000, "cachedContentTokenCount": 200_000, "candidatesTokenCount": 2000,
      "thoughtsTokenCount": 1000, "toolUsePromptTokenCount": 300},
     (50_300 * Decimal("2.50") + 200_000 * Decimal("0.25") + 3000 * Decimal(15)) / M, "0.22075"),
    ("pro pushed over the tier by its tool prompt", "gemini-2.5-pro",
     {"promptTokenCount": 199_900, "toolUsePromptTokenCount": 200, "candidatesTokenCount": 100},
     (200_100 * Decimal("2.50") + 100 * Decimal(15)) / M, "0.50175"),
]


@pytest.mark.parametrize("case,model,usage_metadata,by_hand,golden", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_costs(case, model, usage_metadata, by_hand, golden):
    assert by_hand == Decimal(golden)  # the table itself, checked against the published rates
    assert cost(model, usage_metadata) == Decimal(golden)


# -- streams -------------------------------------------------------------------------------------------------
def events_of(raw: bytes, rng: random.Random):
    """Decode as the proxy does, the bytes cut at random places (mid-line, mid-CRLF, mid-character)."""
    decoder, events, at = SseDecoder(), [], 0
    while at < len(raw):
        step = rng.randint(1, 40)
        events += decoder.feed(raw[at:at + step])
        at += step
    return events + decoder.flush()


def meter_of(raw: bytes, rng: random.Random):
    adapter = gemini()
    meter = adapter.stream_meter(adapter.endpoint("streamGenerateContent"), PreparedBody(b""))
    forwarded = [event for event in events_of(raw, rng) if meter.see(event)]
    return meter, forwarded


@pytest.mark.parametrize("seed", range(20))
def test_stream_usage_is_the_latest_usage_metadata_however_the_bytes_are_split(seed):
    raw = STREAM.read_bytes()
    assert raw.count(b"\r\n\r\n") == 3  # as Google sends it
    meter, forwarded = meter_of(raw, random.Random(seed))
    assert len(forwarded) == 3 and meter.content_started and meter.complete
    assert b"".join(e.wire() for e in forwarded) == raw.replace(b"\r\n", b"\n")  # each event as it came
    usage, model = meter.usage()
    assert model == "gemini-2.5-flash"
    assert usage == TokenUsage(input_tokens=12, output_tokens=10, reasoning_tokens=434)
    # gemini-2.5-flash: 12 × $0.30 + (10 + 434) × $2.50, per million
    assert pricing.price_call("gemini", model, usage, AT).cost_usd == Decimal("0.0011136")


@pytest.mark.parametrize("seed", range(10))
def test_a_stream_cut_before_its_last_chunk_keeps_the_prompt_counts(seed):
    raw = STREAM.read_bytes()
    cut = raw[:raw.rindex(b"data: ")]
    meter, forwarded = meter_of(cut, random.Random(seed))
    assert len(forwarded) == 2 and not meter.complete
    assert meter.usage()[0] == TokenUsage(input_tokens=12)


def test_a_stream_read_whole_without_alt_sse_is_a_json_array_folded_alike(event):
    chunks = [json.loads(block.removeprefix("data: "))
              for block in event("gemini_stream.sse").replace("\r\n", "\n").strip().split("\n\n")]
    assert parse(chunks, "streamGenerateContent") == (
        TokenUsage(input_tokens=12, output_tokens=10, reasoning_tokens=434), "gemini-2.5-flash")


def test_content_and_the_final_chunk_are_told_apart():
    adapter = gemini()
    assert not adapter.is_content({"candidates": [{"content": {"parts": [{"text": ""}], "role": "model"}}]})
    assert not adapter.is_content({"usageMetadata": {"promptTokenCount": 3}})
    assert adapter.is_content({"candidates": [{"content": {"parts": [{"functionCall": {"name": "f"}}]}}]})
    final = SseDecoder().feed(b'data: {"candidates": [{"finishReason": "STOP"}]}\n\n')[0]
    assert adapter.is_final(final)


# -- routes ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("path,upstream,model,stream", [
    ("v1beta/models/gemini-2.5-flash:generateContent", "v1beta/models/gemini-2.5-flash:generateContent",
     "gemini-2.5-flash", False),
    ("v1/models/gemini-2.5-pro:streamGenerateContent", "v1/models/gemini-2.5-pro:streamGenerateContent",
     "gemini-2.5-pro", True),
    ("v1beta/models/gemini-2.5-flash:countTokens", "v1beta/models/gemini-2.5-flash:countTokens",
     "gemini-2.5-flash", False),
    ("v1beta/models/gemini-embedding-001:embedContent", "v1beta/models/gemini-embedding-001:embedContent",
     "gemini-embedding-001", False),
    ("v1beta/models/a b?c#d:generateContent", "v1beta/models/a%20b%3Fc%23d:generateContent", "a b?c#d", False),
])
def test_the_path_names_the_model_and_is_quoted_again_upstream(path, upstream, model, stream):
    match = gemini().resolve(path, "POST")
    assert (match.upstream_path, match.model, match.stream) == (upstream, model, stream)


def test_only_alt_goes_upstream_never_a_key():
    adapter = gemini()
    match = adapter.resolve("v1beta/models/gemini-2.5-flash:streamGenerateContent", "POST")
    url = adapter.upstream_url("https://generativelanguage.googleapis.com", match,
                               {"alt": "sse", "key": "tg-secret", "other": "x"})
    assert url == ("https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:"
                   "streamGenerateContent?alt=sse")
    assert adapter.upstream_headers({"x-goog-api-key": "tg-secret", "content-type": "application/json"},
                                    "AIza-upstream") == {"content-type": "application/json",
                                                         "x-goog-api-key": "AIza-upstream"}


def test_the_openai_compatible_route_is_served_by_an_openai_adapter_under_gemini():
    match = gemini().resolve("v1beta/openai/chat/completions", "POST")
    assert match.upstream_path == "v1beta/openai/chat/completions" and match.endpoint.usage_flavor == "chat"
    compatible = match.adapter
    assert (compatible.name, compatible.genai_provider_id) == ("gemini", "google")
    assert compatible.auth_headers("k") == {"authorization": "Bearer k"}
    assert compatible.trailer("tollgate {}") == comment("tollgate {}")  # the openai SDK reads past comments
    usage, model = compatible.parse_usage(match.endpoint, {"model": "models/gemini-2.5-flash",
                                                           "usage": {"prompt_tokens": 5, "completion_tokens": 2}})
    assert usage == TokenUsage(input_tokens=5, output_tokens=2) and model == "gemini-2.5-flash"


@pytest.mark.parametrize("path,method", [
    ("v1beta/models/gemini-2.5-flash:deleteModel", "POST"),
    ("v1beta/models/a/b:generateContent", "POST"),
    ("v2/models/gemini-2.5-flash:generateContent", "POST"),
    ("v1beta/models/gemini-2.5-flash:generateContent", "GET"),
    ("v1beta/openai/images/generations", "POST"),
    ("v1beta/tunedModels/x:generateContent", "POST"),
])
def test_anything_else_is_no_endpoint(path, method):
    with pytest.raises(NotFound):
        gemini().resolve(path, method)


def test_model_listing_and_one_model():
    adapter = gemini()
    assert adapter.resolve("v1beta/models", "GET").upstream_path == "v1beta/models"
    match = adapter.resolve("v1/models/gemini-2.5-pro", "GET")
    assert match.upstream_path == "v1/models/gemini-2.5-pro" and not match.endpoint.metered


# -- errors ----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("error,status,rpc", [
    (InvalidRequest("bad"), 400, "INVALID_ARGUMENT"),
    (AuthenticationError("who"), 401, "UNAUTHENTICATED"),
    (NotFound("none"), 404, "NOT_FOUND"),
    (PayloadTooLarge("big"), 413, "INVALID_ARGUMENT"),
    (BudgetExceeded("spent"), 429, "RESOURCE_EXHAUSTED"),
    (UpstreamUnreachable("gone"), 502, "UNAVAILABLE"),
    (UpstreamTimeout("slow"), 504, "DEADLINE_EXCEEDED"),
])
def test_errors_in_googles_shape(error, status, rpc):
    body = gemini().error_body(error)
    assert body["error"]["code"] == status and body["error"]["status"] == rpc
    assert body["error"]["message"] == error.message
    assert body["error"]["details"][0]["metadata"] == {"type": error.error_type}


def test_google_genai_errors_read_our_error_body():
    from google.genai import errors

    response = httpx.Response(429, json=gemini().error_body(BudgetExceeded("over budget")))
    with pytest.raises(errors.ClientError) as raised:
        errors.APIError.raise_for_response(response)
    assert (raised.value.code, raised.value.status, raised.value.message) == (429, "RESOURCE_EXHAUSTED",
                                                                             "over budget")


# -- why Gemini's streams end without the `: tollgate {...}` comment --------------------------------------------
def sdk_reads(stream: bytes) -> str:
    from google import genai
    from google.genai import types

    transport = httpx.MockTransport(lambda request: httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=stream))
    client = genai.Client(api_key="tg-test", http_options=types.HttpOptions(
        base_url="http://tollgate.test/gemini", httpx_client=httpx.Client(transport=transport)))
    return "".join(chunk.text for chunk in client.models.generate_content_stream(model="gemini-2.5-flash",
                                                                                  contents="hi"))


def test_google_genai_cannot_read_a_comment_line_so_gemini_streams_have_no_trailer(event):
    """If google-genai ever reads past SSE comments, this fails: give Gemini its trailer back then."""
    from google.genai import errors

    raw = STREAM.read_bytes()
    assert sdk_reads(raw) == "The quick brown fox jumps over the lazy dog."
    with pytest.raises(errors.UnknownApiResponseError):
        sdk_reads(raw + comment('tollgate {"call_id": "c", "cost_usd": "0.1"}'))
    assert gemini().trailer('tollgate {"call_id": "c", "cost_usd": "0.1"}') == b""
