"""The official google-genai SDK, unchanged but for base_url and key, through a local stack over HTTP: sync and
async, streamed and not, each call's cost exact to the digit; and hostile input refused in Google's shape."""
import asyncio
from decimal import Decimal

import httpx
import pytest
from google import genai
from google.genai import errors

from tests.conftest import ADMIN_KEY, UPSTREAM_KEY
from tests.e2e.conftest import RunningStack

M = Decimal("0.000001")
USAGE = {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 300,
         "thoughtsTokenCount": 100, "totalTokenCount": 1600}
# gemini-2.5-flash, per million: $0.30 input, $0.03 cache read, $2.50 output (thinking billed as output)
COST = 200 * Decimal("0.30") * M + 1000 * Decimal("0.03") * M + 400 * Decimal("2.50") * M
# gemini-2.5-pro above 200k prompt tokens, the whole call at $2.50 input, $0.25 cache read, $15 output
LONG_USAGE = {"promptTokenCount": 250_000, "cachedContentTokenCount": 200_000, "candidatesTokenCount": 2000,
              "thoughtsTokenCount": 1000, "totalTokenCount": 253_000}
LONG_COST = 50_000 * Decimal("2.50") * M + 200_000 * Decimal("0.25") * M + 3000 * 15 * M


@pytest.fixture(scope="module")
def gemini_stack(fake_upstream, tmp_path_factory):
    env = {"TOLLGATE_GEMINI_BASE_URL": f"{fake_upstream.url}/gemini", "TOLLGATE_GEMINI_API_KEY": UPSTREAM_KEY}
    running = RunningStack(env, tmp_path_factory.mktemp("gemini") / "data").start()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def key(gemini_stack):
    response = gemini_stack.admin("POST", "/admin/keys", json={"name": "gemini", "account": "e2e"})
    assert response.status_code == 201, response.text
    return response.json()["key"]


def client(stack, key):
    return genai.Client(api_key=key, http_options={"base_url": f"{stack.url}/gemini"})


def logged(stack, call_id):
    [call] = [c for c in stack.calls(limit=50) if c["call_id"] == call_id]
    return call


def call_id(response):
    return response.sdk_http_response.headers["x-tollgate-call-id"]


def assert_metered(call, stream, model="gemini-2.5-flash", cost=COST, kinds=(200, 1000, 300, 100)):
    assert (call["provider"], call["model"], call["stream"], call["status"]) == ("gemini", model, stream, 200)
    assert (call["input_tokens"], call["cache_read_tokens"], call["output_tokens"], call["reasoning_tokens"]) == kinds
    assert Decimal(call["cost_usd"]) == cost and call["error_type"] is None


def test_generate_content(gemini_stack, key, upstream):
    upstream.enqueue(usage=USAGE)
    sdk = client(gemini_stack, key)  # kept: a Client closes its connections when it is collected
    response = sdk.models.generate_content(model="gemini-2.5-flash", contents="hello")
    assert response.text.startswith("This is a mock answer")
    assert response.usage_metadata.thoughts_token_count == 100
    assert Decimal(response.sdk_http_response.headers["x-tollgate-cost-usd"]) == COST == Decimal("0.00109")
    assert_metered(logged(gemini_stack, call_id(response)), stream=False)
    seen = upstream.requests[-1]
    assert seen.path == "/gemini/v1/models/gemini-2.5-flash:generateContent"  # google-genai 3's default version
    assert seen.headers["x-goog-api-key"] == UPSTREAM_KEY and key not in str(seen.headers)


def test_generate_content_stream(gemini_stack, key, upstream):
    upstream.enqueue(usage=USAGE)
    sdk = client(gemini_stack, key)
    chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-flash", contents="hello"))
    assert "".join(c.text for c in chunks).startswith("This is a mock answer")
    assert chunks[-1].usage_metadata.candidates_token_count == 300
    assert_metered(logged(gemini_stack, call_id(chunks[0])), stream=True)


def test_long_context_on_pro_is_priced_at_the_upper_tier_for_the_whole_call(gemini_stack, key, upstream):
    upstream.enqueue(usage=LONG_USAGE)
    sdk = client(gemini_stack, key)
    chunks = list(sdk.models.generate_content_stream(model="gemini-2.5-pro", contents="a long transcript"))
    assert LONG_COST == Decimal("0.22")
    assert_metered(logged(gemini_stack, call_id(chunks[0])), stream=True, model="gemini-2.5-pro",
                   cost=LONG_COST, kinds=(50_000, 200_000, 2000, 1000))


def test_async_generate_content_and_stream(gemini_stack, key, upstream):
    sdk = client(gemini_stack, key)

    async def both():
        aio = sdk.aio
        upstream.enqueue(usage=USAGE)
        whole = await aio.models.generate_content(model="gemini-2.5-flash", contents="hello")
        upstream.enqueue(usage=USAGE)
        chunks = [chunk async for chunk in await aio.models.generate_content_stream(model="gemini-2.5-flash",
                                                                                    contents="hello")]
        return whole, chunks

    whole, chunks = asyncio.run(both())
    assert whole.text and "".join(c.text for c in chunks).strip() == whole.text
    assert_metered(logged(gemini_stack, call_id(whole)), stream=False)
    assert_metered(logged(gemini_stack, call_id(chunks[-1])), stream=True)


def test_count_tokens_and_embeddings(gemini_stack, key, upstream):
    sdk = client(gemini_stack, key)
    assert sdk.models.count_tokens(model="gemini-2.5-flash", contents="hello there").total_tokens > 0
    upstream.enqueue(usage={"promptTokenCount": 4000, "totalTokenCount": 4000})
    embedded = sdk.models.embed_content(model="gemini-embedding-001", contents=["one", "two"])
    assert len(embedded.embeddings) == 2
    call = logged(gemini_stack, call_id(embedded))
    assert (call["model"], call["input_tokens"]) == ("gemini-embedding-001", 4000)
    assert Decimal(call["cost_usd"]) == 4000 * Decimal("0.15") * M  # $0.15 per million


def test_openai_sdk_on_googles_openai_compatible_endpoint(gemini_stack, key, upstream):
    import openai

    upstream.enqueue(usage={"prompt_tokens": 1000, "completion_tokens": 200})
    sdk = openai.OpenAI(base_url=f"{gemini_stack.url}/gemini/v1beta/openai", api_key=key)
    raw = sdk.chat.completions.with_raw_response.create(model="gemini-2.5-flash", stream=True,
                                                         messages=[{"role": "user", "content": "hi"}])
    assert "".join(c.choices[0].delta.content or "" for c in raw.parse() if c.choices).strip()
    call = logged(gemini_stack, raw.headers["x-tollgate-call-id"])
    assert (call["provider"], call["model"]) == ("gemini", "gemini-2.5-flash")
    assert Decimal(call["cost_usd"]) == 1000 * Decimal("0.30") * M + 200 * Decimal("2.50") * M


def test_hostile_input_is_refused_in_googles_shape_and_logged(gemini_stack, key, upstream):
    stranger, sdk = client(gemini_stack, "tg-not-a-key"), client(gemini_stack, key)
    with pytest.raises(errors.ClientError) as raised:
        stranger.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (raised.value.code, raised.value.status) == (401, "UNAUTHENTICATED")
    with pytest.raises(errors.ClientError) as raised:
        sdk.models.generate_content(model="g" * 300, contents="hi")
    assert (raised.value.code, raised.value.status) == (400, "INVALID_ARGUMENT")
    refused = httpx.post(f"{gemini_stack.url}/gemini/v1beta/models/gemini-2.5-flash:generateContent",
                         headers={"x-goog-api-key": key, "Content-Type": "application/json"}, content=b"{not json")
    assert refused.status_code == 400 and refused.json()["error"]["status"] == "INVALID_ARGUMENT"
    logged_call = logged(gemini_stack, refused.headers["x-tollgate-call-id"])
    assert (logged_call["status"], logged_call["error_type"]) == (400, "invalid_request_error")
    assert upstream.requests == []
    assert ADMIN_KEY not in refused.text
