"""The OpenAI family beyond OpenAI: Groq, Azure OpenAI and the providers file (routes, usage, prices).

Golden costs are written out from the published per-million-token rates (genai-prices' entries, or the
file's own prices) and compared exactly.
"""
import json
from datetime import datetime, timezone
from decimal import Decimal

import pytest

from chalicelib import provider_registry
from chalicelib.errors import ConfigurationError, NotFound
from chalicelib.gateway.pricing import price_call
from chalicelib.gateway.providers import get_adapter
from chalicelib.gateway.providers.base import PreparedBody
from chalicelib.gateway.sse import SseDecoder
from chalicelib.gateway.tokens import TokenUsage
from chalicelib.settings import get_settings

AT = datetime(2026, 11, 1, tzinfo=timezone.utc)
M = Decimal("0.000001")


def _meter(provider, path, text, prepared=PreparedBody(b"")):
    adapter = get_adapter(provider)
    meter = adapter.stream_meter(adapter.endpoint(path), prepared)
    decoder = SseDecoder()
    events = decoder.feed(text.encode()) + decoder.flush()
    return meter, [event for event in events if meter.see(event)]


# -- Groq -----------------------------------------------------------------------------------------------------
def test_groq_routes_are_under_openai_v1_as_the_groq_sdk_writes_them():
    groq = get_adapter("groq")
    match = groq.resolve("openai/v1/chat/completions", "POST")
    assert match.endpoint.path == "chat/completions" and match.upstream_path == "chat/completions"
    assert groq.upstream_url("https://api.groq.com/openai/v1", match, {"key": "x"}) == \
        "https://api.groq.com/openai/v1/chat/completions"
    assert groq.resolve("openai/v1/models", "GET").endpoint.method == "GET"
    for path, method in [("v1/chat/completions", "POST"), ("openai/v1/embeddings", "POST"),
                         ("openai/v1/chat/completions", "GET")]:
        with pytest.raises(NotFound):
            groq.resolve(path, method)


def test_groq_answer_is_priced_from_genai_prices_groq_entries(event):
    groq = get_adapter("groq")
    usage, model = groq.parse_usage(groq.endpoint("chat/completions"), event("groq_chat.json"))
    assert model == "llama-3.3-70b-versatile"
    assert usage.counts() == TokenUsage(input_tokens=20, output_tokens=4).counts()
    price = price_call("groq", model, usage, AT)
    # llama-3.3-70b-versatile on Groq: $0.59 input, $0.79 output per million
    assert price.cost_usd == 20 * Decimal("0.59") * M + 4 * Decimal("0.79") * M == Decimal("0.00001496")
    assert price.source == "genai-prices"


def test_groq_stream_usage_comes_from_x_groq_on_the_last_chunk(event):
    meter, forwarded = _meter("groq", "chat/completions", event("groq_chat_stream.sse"))
    usage, model = meter.usage()
    assert (usage.input_tokens, usage.output_tokens, model) == (20, 3, "llama-3.3-70b-versatile")
    assert len(forwarded) == 4 and meter.complete  # every event, [DONE] included, reaches the caller


def test_groq_stream_with_caller_usage_counts_it_once(event):
    """Asked for usage, Groq sends it twice (the last chunk's `usage` and `x_groq.usage`, then a usage chunk):
    one call's tokens, and the caller gets every chunk it asked for."""
    body = {"model": "llama-3.3-70b-versatile", "stream": True, "stream_options": {"include_usage": True}}
    groq = get_adapter("groq")
    prepared = groq.prepare_body(groq.endpoint("chat/completions"), json.dumps(body).encode(), body)
    meter, forwarded = _meter("groq", "chat/completions", event("groq_chat_stream_usage.sse"), prepared)
    usage, _ = meter.usage()
    assert (usage.input_tokens, usage.output_tokens) == (20, 3) and len(forwarded) == 5


def test_groq_stream_is_sent_as_the_caller_wrote_it():
    """Groq always reports a stream's usage (in `x_groq`), so the gateway asks for nothing more: the caller's
    chunks are Groq's own."""
    body = {"model": "llama-3.3-70b-versatile", "stream": True, "messages": []}
    raw = json.dumps(body).encode()
    groq = get_adapter("groq")
    prepared = groq.prepare_body(groq.endpoint("chat/completions"), raw, body)
    assert prepared.body == raw and not prepared.injected_stream_usage


# -- Azure OpenAI -------------------------------------------------------------------------------------------------
def test_azure_deployment_routes_name_the_deployment_and_keep_the_api_version():
    azure = get_adapter("azure")
    match = azure.resolve("openai/deployments/my-gpt4o-mini/chat/completions", "POST")
    assert (match.endpoint.path, match.model) == ("chat/completions", "my-gpt4o-mini")
    url = azure.upstream_url("https://r.openai.azure.com", match,
                             {"api-version": "2024-10-21", "api-key": "tg-secret", "key": "tg-secret"})
    assert url == ("https://r.openai.azure.com/openai/deployments/my-gpt4o-mini/chat/completions"
                   "?api-version=2024-10-21")  # the gateway key, however presented, never goes upstream
    assert azure.resolve("openai/deployments/emb/embeddings", "POST").endpoint.usage_flavor == "embeddings"
    v1 = azure.resolve("openai/v1/responses", "POST")
    assert (v1.upstream_path, v1.model) == ("openai/v1/responses", None)
    assert azure.auth_headers("sk-azure") == {"api-key": "sk-azure"}


def test_azure_deployment_names_are_quoted_upstream():
    """The path arrives decoded: a deployment name cannot reach another upstream path."""
    match = get_adapter("azure").resolve("openai/deployments/a b%2F..%2F/chat/completions", "POST")
    assert match.upstream_path == "openai/deployments/a%20b%252F..%252F/chat/completions"


@pytest.mark.parametrize("path", ["openai/deployments/d/responses", "openai/deployments//chat/completions",
                                  "openai/chat/completions", "v1/chat/completions", "openai/deployments/d"])
def test_azure_refuses_other_paths(path):
    with pytest.raises(NotFound):
        get_adapter("azure").resolve(path, "POST")


def test_azure_is_priced_by_the_model_the_answer_names_at_openai_list_price(event):
    """genai-prices has no Azure price for gpt-4o-mini: OpenAI's list price, and the call says so."""
    azure = get_adapter("azure")
    usage, model = azure.parse_usage(azure.endpoint("chat/completions"), event("azure_chat.json"))
    assert model == "gpt-4o-mini-2024-07-18"
    price = price_call("azure", model, usage, AT)
    # gpt-4o-mini: $0.15 input, $0.075 cached input, $0.60 output per million
    assert price.cost_usd == 176 * Decimal("0.15") * M + 1024 * Decimal("0.075") * M + 300 * Decimal("0.6") * M
    assert price.source == "genai-prices/openai"


def test_azure_own_price_where_genai_prices_has_one():
    price = price_call("azure", "text-embedding-3-small", TokenUsage(input_tokens=1000), AT)
    assert price.cost_usd == 1000 * Decimal("0.02") * M and price.source == "genai-prices"


def test_azure_stream_skips_the_prompt_filter_chunk_and_keeps_the_answering_model(event):
    meter, forwarded = _meter("azure", "chat/completions", event("azure_chat_stream_usage.sse"))
    usage, model = meter.usage()
    assert model == "gpt-4o-mini-2024-07-18" and (usage.input_tokens, usage.output_tokens) == (19, 10)
    assert len(forwarded) == 6


# -- the providers file ---------------------------------------------------------------------------------------
GOOD = {"providers": [
    {"name": "local", "base_url": "http://127.0.0.1:11434/v1/",
     "prices": {"llama3.1:8b": {"input_mtok": "0.05", "output_mtok": "0.08", "cache_read_mtok": "0.01"}}},
    {"name": "together", "base_url": "https://api.together.xyz/v1", "api_key_env": "TOGETHER_API_KEY",
     "price_provider": "together"},
]}


def test_a_providers_file_declares_openai_compatible_providers():
    local, together = provider_registry.parse_providers(GOOD)
    assert (local.name, local.family, local.base_url, local.price_provider) == \
        ("local", "openai", "http://127.0.0.1:11434/v1", None)
    assert local.prices["llama3.1:8b"] == {"input_mtok": Decimal("0.05"), "output_mtok": Decimal("0.08"),
                                           "cache_read_mtok": Decimal("0.01")}
    assert (together.api_key_env, together.price_provider, together.prices) == ("TOGETHER_API_KEY", "together", {})


def _with(**fields):
    return {"providers": [{"name": "local", "base_url": "http://127.0.0.1:11434/v1", **fields}]}


@pytest.mark.parametrize("document, says", [
    ({"providers": {}}, 'expected {"providers": [...]}'),
    (_with(name="Local"), "lowercase"),
    (_with(name="a" * 33), "lowercase"),
    (_with(name="-x"), "lowercase"),
    (_with(name="openai"), "taken by the gateway"),
    (_with(name="bedrock"), "taken by the gateway"),
    (_with(name="api"), "taken by the gateway"),
    (_with(prices={"m": {"input_mtok": 0.05}}), "decimal string"),
    (_with(prices={"m": {"input_mtok": "abc"}}), "not a number"),
    (_with(prices={"m": {"input_mtok": "-1"}}), "between 0"),
    (_with(prices={"m": {"input_mtok": "0.05", "image_mtok": "1"}}), "take"),
    (_with(region="eu"), "unknown fields ['region']"),
    (_with(base_url="ftp://x"), "base_url"),
    (_with(base_url="http://h/v1?x=1"), "base_url"),
    (_with(api_key_env="A-B"), "api_key_env"),
    ({"providers": [GOOD["providers"][0], GOOD["providers"][0]]}, "declared twice"),
])
def test_a_bad_providers_file_stops_the_start_saying_what_is_wrong(document, says):
    with pytest.raises(ConfigurationError) as error:
        provider_registry.parse_providers(document)
    assert says in str(error.value)


def test_a_providers_file_that_is_no_json_names_itself(tmp_path):
    path = tmp_path / "providers.json"
    path.write_text("{not json")
    with pytest.raises(ConfigurationError, match="providers.json.*is not JSON"):
        provider_registry.read_providers_file(str(path))
    with pytest.raises(ConfigurationError, match="cannot be read"):
        provider_registry.read_providers_file(str(tmp_path / "missing.json"))


@pytest.fixture
def providers_file(tmp_path, monkeypatch):
    path = tmp_path / "providers.json"
    path.write_text(json.dumps(GOOD))
    monkeypatch.setenv("TOLLGATE_PROVIDERS_FILE", str(path))
    monkeypatch.setenv("TOGETHER_API_KEY", "sk-together")
    get_settings.cache_clear()
    get_adapter.cache_clear()
    yield path
    get_settings.cache_clear()
    get_adapter.cache_clear()


def test_a_file_provider_is_priced_from_the_file_exactly(providers_file):
    usage = TokenUsage(input_tokens=1000, cache_read_tokens=3000, output_tokens=500)
    price = price_call("local", "llama3.1:8b", usage, AT)
    assert price.cost_usd == 1000 * Decimal("0.05") * M + 3000 * Decimal("0.01") * M + 500 * Decimal("0.08") * M
    assert (price.source, price.version) == ("providers-file", "providers-file")


def test_a_file_provider_model_without_a_price_is_unpriced(providers_file):
    price = price_call("local", "qwen2.5:7b", TokenUsage(input_tokens=1000, output_tokens=500), AT)
    assert price.cost_usd is None and not price.priced


def test_a_file_provider_speaks_openai_under_its_own_name(providers_file):
    adapter = get_adapter("local")
    assert adapter.name == "local" and not adapter.needs_key
    match = adapter.resolve("v1/chat/completions", "POST")
    assert adapter.upstream_url(get_settings().base_url("local"), match, {}) == \
        "http://127.0.0.1:11434/v1/chat/completions"
    assert get_settings().provider_keys["together"] == "sk-together"
    assert "local" in provider_registry.names() and "together" in provider_registry.names()


# -- images ---------------------------------------------------------------------------------------------------------
def _image_usage(body, answer):
    openai = get_adapter("openai")
    endpoint = openai.endpoint("images/generations")
    prepared = openai.prepare_body(endpoint, json.dumps(body).encode(), body)
    usage, _ = openai.parse_usage(endpoint, answer)
    return openai.with_request(usage, prepared)


def test_gpt_image_1_is_priced_by_its_tokens(event):
    answer = event("openai_image_gpt.json")
    answer["usage"] = {"input_tokens": 50, "input_tokens_details": {"text_tokens": 30, "image_tokens": 20},
                       "output_tokens": 4160, "total_tokens": 4210}
    usage = _image_usage({"model": "gpt-image-1", "prompt": "an otter"}, answer)
    assert (usage.total_input_tokens, usage.input_image_tokens, usage.output_tokens, usage.images) == (50, 20, 4160, 1)
    price = price_call("openai", "gpt-image-1", usage, AT)
    # gpt-image-1: text input $5, image input $10, output (image) $40 per million
    assert price.cost_usd == 30 * 5 * M + 20 * 10 * M + 4160 * 40 * M == Decimal("0.16675")
    assert price.source == "genai-prices"


def test_output_image_tokens_are_billed_at_the_image_rate():
    # gpt-image-1.5: output $10 text, $32 image per million; input $5 per million
    usage = TokenUsage(input_tokens=50, output_tokens=1000, output_image_tokens=1000, images=1)
    assert price_call("openai", "gpt-image-1.5", usage, AT).cost_usd == 50 * 5 * M + 1000 * 32 * M


@pytest.mark.parametrize("model, size, quality, n, each", [
    ("dall-e-3", None, None, 1, "0.040"),
    ("dall-e-3", "1792x1024", "hd", 1, "0.120"),
    ("dall-e-3", "1024x1792", "standard", 1, "0.080"),
    ("dall-e-2", "256x256", None, 3, "0.016"),
    ("dall-e-2", None, None, 2, "0.020"),
])
def test_dall_e_is_priced_per_image_by_size_and_quality(event, model, size, quality, n, each):
    body = {"model": model, "prompt": "an otter", "n": n, **({"size": size} if size else {}),
            **({"quality": quality} if quality else {})}
    answer = {**event("openai_image_dalle.json"), "data": [{"url": "https://x"}] * n}
    usage = _image_usage(body, answer)
    assert usage.images == n and usage.total_input_tokens == 0
    price = price_call("openai", model, usage, AT)
    assert price.cost_usd == n * Decimal(each) and price.source == "image-prices"
    assert price_call("azure", model, usage, AT).cost_usd == n * Decimal(each)  # Azure lists the same


def test_a_dall_e_size_with_no_price_is_unpriced(event):
    usage = _image_usage({"model": "dall-e-2", "prompt": "x", "size": "4096x4096"}, event("openai_image_dalle.json"))
    assert usage.image_variant == "4096x4096/standard"
    assert price_call("openai", "dall-e-2", usage, AT).cost_usd is None


def test_a_streamed_image_is_counted_and_priced_from_its_completed_event(event):
    meter, forwarded = _meter("openai", "images/generations", event("openai_image_stream.sse"))
    usage, _ = meter.usage()
    assert (usage.input_tokens, usage.output_tokens, usage.images) == (50, 272, 1)
    assert meter.complete and meter.content_started and len(forwarded) == 2
    # gpt-image-1: $5 text input, $40 output per million
    assert price_call("openai", "gpt-image-1", usage, AT).cost_usd == 50 * 5 * M + 272 * 40 * M
