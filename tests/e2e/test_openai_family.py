"""Groq, Azure OpenAI, a providers-file provider and image generation through the local stack over real HTTP,
with the official SDKs (`groq`, `openai.AzureOpenAI`, `openai`) changed only in base URL and key.

Costs are worked out by hand from the published per-million rates and compared exactly."""
import asyncio
import json
from decimal import Decimal

import groq
import httpx
import openai
import pytest

from tests.conftest import UPSTREAM_KEY
from tests.e2e.conftest import RunningStack

M = Decimal("0.000001")
GROQ_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500, "queue_time": 0.01,
              "prompt_time": 0.02, "completion_time": 0.03, "total_time": 0.06}
# llama-3.3-70b-versatile on Groq: $0.59 input, $0.79 output per million
GROQ_COST = 1200 * Decimal("0.59") * M + 300 * Decimal("0.79") * M
AZURE_USAGE = {"prompt_tokens": 1200, "completion_tokens": 300, "total_tokens": 1500,
               "prompt_tokens_details": {"cached_tokens": 1000}, "completion_tokens_details": {"reasoning_tokens": 0}}
# gpt-4o-mini at OpenAI's list price: $0.15 input, $0.075 cached input, $0.60 output per million
AZURE_COST = 200 * Decimal("0.15") * M + 1000 * Decimal("0.075") * M + 300 * Decimal("0.6") * M
LOCAL_USAGE = {"prompt_tokens": 1000, "completion_tokens": 500, "total_tokens": 1500}
# the providers file's own price of llama3.1:8b: $0.05 input, $0.08 output per million
LOCAL_COST = 1000 * Decimal("0.05") * M + 500 * Decimal("0.08") * M
MESSAGES = [{"role": "user", "content": "hello"}]


@pytest.fixture(scope="module")
def family(fake_upstream, tmp_path_factory):
    folder = tmp_path_factory.mktemp("family")
    providers = folder / "providers.json"
    providers.write_text(json.dumps({"providers": [{
        "name": "local", "base_url": f"{fake_upstream.url}/v1", "api_key_env": "LOCAL_LLM_KEY",
        "prices": {"llama3.1:8b": {"input_mtok": "0.05", "output_mtok": "0.08"}}}]}))
    env = {"TOLLGATE_GROQ_BASE_URL": f"{fake_upstream.url}/groq/openai/v1", "TOLLGATE_GROQ_API_KEY": UPSTREAM_KEY,
           "TOLLGATE_AZURE_BASE_URL": f"{fake_upstream.url}/azure", "TOLLGATE_AZURE_API_KEY": UPSTREAM_KEY,
           "TOLLGATE_OPENAI_BASE_URL": f"{fake_upstream.url}/v1", "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY,
           "TOLLGATE_PROVIDERS_FILE": str(providers), "LOCAL_LLM_KEY": UPSTREAM_KEY}
    running = RunningStack(env, folder / "data").start()
    key = running.admin("POST", "/admin/keys", json={"name": "family", "account": "family"}).json()["key"]
    yield running, key
    running.stop()


def logged(stack, call_id):
    [call] = [c for c in stack.calls(limit=100) if c["call_id"] == call_id]
    return call


# -- Groq -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_groq_sdk(family, upstream, stream):
    stack, key = family
    upstream.enqueue(usage=GROQ_USAGE)
    client = groq.Groq(base_url=f"{stack.url}/groq", api_key=key)
    raw = client.chat.completions.with_raw_response.create(model="llama-3.3-70b-versatile", messages=MESSAGES,
                                                           stream=stream)
    if stream:
        chunks = list(raw.parse())
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
        assert [c.x_groq.usage.prompt_tokens for c in chunks if c.x_groq and c.x_groq.usage] == [1200]
    else:
        assert raw.parse().usage.prompt_tokens == 1200
        assert Decimal(raw.headers["x-tollgate-cost-usd"]) == GROQ_COST
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert (call["provider"], call["model"], call["stream"]) == ("groq", "llama-3.3-70b-versatile", stream)
    assert (call["input_tokens"], call["output_tokens"]) == (1200, 300)
    assert Decimal(call["cost_usd"]) == GROQ_COST and call["price_source"] == "genai-prices"
    seen = upstream.requests[-1]
    assert seen.path == "/groq/openai/v1/chat/completions" and seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    assert "stream_options" not in seen.body  # Groq states a stream's usage unasked


def test_groq_with_the_openai_sdk_async_streamed(family, upstream):
    stack, key = family
    upstream.enqueue(usage=GROQ_USAGE)

    async def run():
        client = openai.AsyncOpenAI(base_url=f"{stack.url}/groq/openai/v1", api_key=key)
        raw = await client.chat.completions.with_raw_response.create(
            model="llama-3.3-70b-versatile", messages=MESSAGES, stream=True, stream_options={"include_usage": True})
        usage = [chunk.usage.prompt_tokens async for chunk in raw.parse() if chunk.usage]
        return raw.headers["x-tollgate-call-id"], usage

    call_id, usage = asyncio.run(run())
    assert usage == [1200, 1200]  # Groq's last chunk and its usage chunk, as Groq sends them
    assert Decimal(logged(stack, call_id)["cost_usd"]) == GROQ_COST


def test_groq_async_sdk(family, upstream):
    stack, key = family
    upstream.enqueue(usage=GROQ_USAGE)

    async def run():
        client = groq.AsyncGroq(base_url=f"{stack.url}/groq", api_key=key)
        return await client.chat.completions.with_raw_response.create(model="llama-3.3-70b-versatile",
                                                                      messages=MESSAGES)

    raw = asyncio.run(run())
    assert Decimal(raw.headers["x-tollgate-cost-usd"]) == GROQ_COST


# -- Azure OpenAI -----------------------------------------------------------------------------------------------
def azure(stack, key, cls=openai.AzureOpenAI):
    return cls(azure_endpoint=f"{stack.url}/azure", api_key=key, api_version="2024-10-21")


@pytest.mark.parametrize("stream", [False, True])
def test_azure_deployment_chat(family, upstream, stream):
    stack, key = family
    upstream.enqueue(usage=AZURE_USAGE)
    raw = azure(stack, key).chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES,
                                                                     stream=stream)
    if stream:
        chunks = list(raw.parse())
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()
        assert all(c.usage is None for c in chunks)  # asked for by the gateway, not shown to the caller
    else:
        assert raw.parse().model == "gpt-4o-mini-2024-07-18"
        assert Decimal(raw.headers["x-tollgate-cost-usd"]) == AZURE_COST
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert (call["provider"], call["model"], call["stream"]) == ("azure", "gpt-4o-mini-2024-07-18", stream)
    assert (call["input_tokens"], call["cache_read_tokens"], call["output_tokens"]) == (200, 1000, 300)
    assert Decimal(call["cost_usd"]) == AZURE_COST and call["price_source"] == "genai-prices/openai"
    seen = upstream.requests[-1]
    assert seen.path == "/azure/openai/deployments/gpt-4o-mini/chat/completions"
    assert seen.headers["api-key"] == UPSTREAM_KEY and "authorization" not in seen.headers


def test_azure_embeddings_at_azures_own_price(family, upstream):
    stack, key = family
    upstream.enqueue(usage={"prompt_tokens": 5000, "total_tokens": 5000})
    raw = azure(stack, key).embeddings.with_raw_response.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(raw.parse().data) == 2
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    # text-embedding-3-small on Azure: $0.02 per million
    assert Decimal(call["cost_usd"]) == 5000 * Decimal("0.02") * M and call["price_source"] == "genai-prices"


def test_azure_async_streamed(family, upstream):
    stack, key = family
    upstream.enqueue(usage=AZURE_USAGE)

    async def run():
        raw = await azure(stack, key, openai.AsyncAzureOpenAI).chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=MESSAGES, stream=True)
        return raw.headers["x-tollgate-call-id"], [c async for c in raw.parse()]

    call_id, chunks = asyncio.run(run())
    assert chunks and Decimal(logged(stack, call_id)["cost_usd"]) == AZURE_COST


def test_azure_v1_api_with_the_openai_sdk(family, upstream):
    stack, key = family
    upstream.enqueue(usage=AZURE_USAGE)
    client = openai.OpenAI(base_url=f"{stack.url}/azure/openai/v1", api_key=key)
    raw = client.chat.completions.with_raw_response.create(model="gpt-4o-mini", messages=MESSAGES)
    assert Decimal(raw.headers["x-tollgate-cost-usd"]) == AZURE_COST
    assert upstream.requests[-1].path == "/azure/openai/v1/chat/completions"


def test_azure_refuses_a_bad_deployment_in_its_format_and_logs_it(family, upstream):
    stack, key = family
    response = httpx.post(f"{stack.url}/azure/openai/deployments/{'d' * 300}/chat/completions",
                          params={"api-version": "2024-10-21"}, headers={"api-key": key},
                          json={"messages": MESSAGES})
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    call = logged(stack, response.headers["x-tollgate-call-id"])
    assert call["provider"] == "azure" and call["status"] == 400
    assert not upstream.requests


# -- a provider of the providers file -----------------------------------------------------------------------------
@pytest.mark.parametrize("stream", [False, True])
def test_a_file_provider_is_priced_from_the_file(family, upstream, stream):
    stack, key = family
    upstream.enqueue(usage=LOCAL_USAGE)
    client = openai.OpenAI(base_url=f"{stack.url}/local/v1", api_key=key)
    raw = client.chat.completions.with_raw_response.create(model="llama3.1:8b", messages=MESSAGES, stream=stream)
    if stream:
        list(raw.parse())
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert (call["provider"], call["model"], call["stream"]) == ("local", "llama3.1:8b", stream)
    assert Decimal(call["cost_usd"]) == LOCAL_COST and call["price_source"] == "providers-file"
    assert upstream.requests[-1].headers["authorization"] == f"Bearer {UPSTREAM_KEY}"  # its api_key_env


def test_a_file_provider_model_without_a_price_is_logged_unpriced(family, upstream):
    stack, key = family
    upstream.enqueue(usage=LOCAL_USAGE)
    client = openai.OpenAI(base_url=f"{stack.url}/local/v1", api_key=key)
    raw = client.chat.completions.with_raw_response.create(model="qwen2.5:7b", messages=MESSAGES)
    assert "x-tollgate-cost-usd" not in raw.headers
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert call["cost_usd"] is None and (call["input_tokens"], call["output_tokens"]) == (1000, 500)


def test_a_file_provider_shows_in_the_reports_like_any_other(family, upstream):
    stack, key = family
    upstream.enqueue(usage=LOCAL_USAGE)
    openai.OpenAI(base_url=f"{stack.url}/local/v1", api_key=key).chat.completions.create(
        model="llama3.1:8b", messages=MESSAGES)
    calls = stack.calls(provider="local", limit=100)
    assert calls and {c["provider"] for c in calls} == {"local"}


# -- images -------------------------------------------------------------------------------------------------------
def test_gpt_image_1_generation_is_priced_by_its_tokens(family, upstream):
    stack, key = family
    upstream.enqueue(usage={"input_tokens": 50, "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
                            "output_tokens": 4160, "total_tokens": 4210})
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=key)
    raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt="an otter", size="1024x1024",
                                                   quality="high")
    assert raw.parse().data[0].b64_json
    cost = 50 * 5 * M + 4160 * 40 * M  # gpt-image-1: $5 text input, $40 output (image) per million
    assert Decimal(raw.headers["x-tollgate-cost-usd"]) == cost
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert (call["model"], call["images"], call["output_tokens"]) == ("gpt-image-1", 1, 4160)


def test_dall_e_3_is_priced_per_image(family, upstream):
    stack, key = family
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=key)
    raw = client.images.with_raw_response.generate(model="dall-e-3", prompt="an otter", size="1792x1024",
                                                   quality="hd", response_format="b64_json")
    assert raw.parse().data[0].b64_json
    assert Decimal(raw.headers["x-tollgate-cost-usd"]) == Decimal("0.12")
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert (call["images"], call["price_source"]) == (1, "image-prices")


def test_a_streamed_image_is_relayed_and_priced(family, upstream):
    stack, key = family
    upstream.enqueue(usage={"input_tokens": 50, "input_tokens_details": {"text_tokens": 50, "image_tokens": 0},
                            "output_tokens": 272, "total_tokens": 322})
    client = openai.OpenAI(base_url=f"{stack.url}/openai/v1", api_key=key)
    raw = client.images.with_raw_response.generate(model="gpt-image-1", prompt="an otter", stream=True,
                                                   partial_images=2)
    events = list(raw.parse())
    assert [e.type for e in events] == ["image_generation.partial_image"] * 2 + ["image_generation.completed"]
    call = logged(stack, raw.headers["x-tollgate-call-id"])
    assert call["stream"] and call["images"] == 1
    assert Decimal(call["cost_usd"]) == 50 * 5 * M + 272 * 40 * M


def test_make_run_says_which_providers_the_mock_serves_and_which_go_upstream(family, fake_upstream):
    stack, _ = family
    banner = stack.output.read_text()
    assert "  Mock       anthropic, openrouter, gemini, bedrock\n" in banner
    assert f"  Upstream   groq → {fake_upstream.url}/groq/openai/v1\n" in banner
    assert f"  Upstream   local → {fake_upstream.url}/v1 (providers file)\n" in banner
