"""Gemini through the proxy against moto and the mock upstream over HTTP: routes, auth, streams, errors, costs."""
import json
from decimal import Decimal

import pytest

from chalicelib.ledger.models import CallRecord
from tests.conftest import UPSTREAM_KEY
from tests.integration.conftest import reload_settings

CONTENTS = {"contents": [{"role": "user", "parts": [{"text": "the secret prompt text"}]}]}
GENERATE = "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
STREAM = "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent"
# gemini-2.5-flash, per million: $0.30 input, $0.03 cache read, $2.50 output (thinking included)
USAGE = {"promptTokenCount": 1200, "cachedContentTokenCount": 1000, "candidatesTokenCount": 300,
         "thoughtsTokenCount": 100, "totalTokenCount": 1600}
USAGE_COST = (200 * Decimal("0.30") + 1000 * Decimal("0.03") + 400 * Decimal("2.50")) / 10**6  # 0.00109


@pytest.fixture
def gemini(upstream, upstream_url, monkeypatch):
    """The mock upstream, as Gemini's base URL (each test's `gateway` builds on `upstream` first)."""
    monkeypatch.setenv("TOLLGATE_GEMINI_BASE_URL", f"{upstream_url[1]}/gemini")
    monkeypatch.setenv("TOLLGATE_GEMINI_API_KEY", UPSTREAM_KEY)
    reload_settings()
    return upstream


def post(gateway, path, body, key, headers=None, raw=None):
    data = raw if raw is not None else json.dumps(body)
    return gateway.proxy.post(path, headers={"x-goog-api-key": key, "Content-Type": "application/json",
                                             **(headers or {})}, body=data)


def calls():
    return list(CallRecord.scan())


def only_call():
    records = calls()
    assert len(records) == 1, records
    return records[0]


def google_error(response, status, rpc_status):
    body = json.loads(response.body)
    assert set(body) == {"error"} and body["error"]["code"] == status and body["error"]["status"] == rpc_status
    assert response.status_code == status
    return body["error"]


def test_generate_content_is_forwarded_with_the_provider_key_metered_and_logged(gateway, gemini):
    key = gateway.new_key(account="acme")
    gemini.enqueue(usage=USAGE)
    response = post(gateway, GENERATE, CONTENTS, key, headers={"x-goog-api-client": "genai-py", "Cookie": "a=b"})
    assert response.status_code == 200
    assert json.loads(response.body)["candidates"][0]["content"]["parts"][0]["text"]
    seen = gemini.requests[-1]
    assert seen.path == "/gemini/v1beta/models/gemini-2.5-flash:generateContent"
    assert seen.headers["x-goog-api-key"] == UPSTREAM_KEY and "cookie" not in seen.headers
    assert key not in json.dumps(seen.headers) and "authorization" not in seen.headers
    assert seen.body == CONTENTS  # the caller's body, untouched
    assert response.headers["X-Tollgate-Cost-USD"] == "0.00109" and USAGE_COST == Decimal("0.00109")
    call = only_call()
    assert (call.provider, call.model, call.endpoint, call.stream) == ("gemini", "gemini-2.5-flash",
                                                                       "generateContent", False)
    assert (call.input_tokens, call.cache_read_tokens, call.output_tokens, call.reasoning_tokens) == (
        200, 1000, 300, 100)
    assert call.cost_usd == USAGE_COST and call.price_source == "genai-prices"


def test_a_key_in_the_query_string_authenticates_and_never_goes_upstream_or_into_the_log(gateway, gemini):
    key = gateway.new_key()
    response = gateway.proxy.post(f"{GENERATE}?key={key}", headers={"Content-Type": "application/json"},
                                  body=json.dumps(CONTENTS))
    assert response.status_code == 200  # the mock refuses any request that carries `key` in its query
    assert key not in json.dumps(gemini.requests[-1].headers)
    assert key not in json.dumps(only_call().attribute_values, default=str)


def test_sse_stream_is_relayed_event_by_event_and_metered_from_its_last_chunk(gateway, gemini):
    key = gateway.new_key()
    gemini.enqueue(usage=USAGE)
    response = post(gateway, f"{STREAM}?alt=sse", CONTENTS, key)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    blocks = response.body.decode().rstrip("\n").split("\n\n")
    chunks = [json.loads(block.removeprefix("data: ")) for block in blocks]  # every block is data: no trailer
    assert "".join(c["candidates"][0]["content"]["parts"][0]["text"] for c in chunks).strip().startswith("This is")
    assert chunks[-1]["usageMetadata"] == USAGE and "candidatesTokenCount" not in chunks[0]["usageMetadata"]
    assert "X-Tollgate-Cost-USD" not in response.headers
    call = only_call()
    assert response.headers["X-Tollgate-Call-Id"] == call.call_id
    assert call.stream and call.cost_usd == USAGE_COST and call.error_type is None and call.ttft_ms is not None


def test_stream_without_alt_sse_is_one_json_array_passed_through_and_metered(gateway, gemini):
    key = gateway.new_key()
    gemini.enqueue(usage=USAGE)
    response = post(gateway, STREAM, CONTENTS, key)
    assert response.status_code == 200
    chunks = json.loads(response.body)
    assert isinstance(chunks, list) and chunks[-1]["usageMetadata"] == USAGE
    assert response.headers["X-Tollgate-Cost-USD"] == "0.00109"
    call = only_call()
    assert call.stream and call.cost_usd == USAGE_COST


def test_a_stream_cut_off_keeps_the_prompt_counts_it_saw(gateway, gemini):
    key = gateway.new_key()
    gemini.enqueue(usage=USAGE, drop_stream_after_events=3)
    response = post(gateway, f"{STREAM}?alt=sse", CONTENTS, key)
    assert response.status_code == 200
    call = only_call()
    assert call.error_type == "stream_interrupted"
    assert (call.input_tokens, call.cache_read_tokens, call.output_tokens) == (200, 1000, 0)
    assert call.cost_usd == (200 * Decimal("0.30") + 1000 * Decimal("0.03")) / 10**6


def test_count_tokens_is_forwarded_and_not_metered(gateway, gemini):
    key = gateway.new_key()
    response = post(gateway, "/gemini/v1beta/models/gemini-2.5-flash:countTokens", CONTENTS, key)
    assert response.status_code == 200 and json.loads(response.body)["totalTokens"] > 0
    assert gemini.requests[-1].path.endswith(":countTokens") and calls() == []


def test_batch_embeddings_are_metered_at_the_embedding_price(gateway, gemini):
    key = gateway.new_key()
    gemini.enqueue(usage={"promptTokenCount": 4000, "totalTokenCount": 4000})
    body = {"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "hello"}]}}]}
    response = post(gateway, "/gemini/v1beta/models/gemini-embedding-001:batchEmbedContents", body, key)
    assert response.status_code == 200 and json.loads(response.body)["embeddings"]
    call = only_call()
    assert call.model == "gemini-embedding-001" and call.input_tokens == 4000
    assert call.cost_usd == 4000 * Decimal("0.15") / 10**6


def test_model_list_is_forwarded(gateway, gemini):
    key = gateway.new_key()
    response = gateway.proxy.get("/gemini/v1beta/models", headers={"x-goog-api-key": key})
    assert response.status_code == 200 and json.loads(response.body)["models"]
    assert gemini.requests[-1].path == "/gemini/v1beta/models"


def test_openai_compatible_chat_is_served_as_openai_and_priced_as_gemini(gateway, gemini):
    key = gateway.new_key()
    gemini.enqueue(usage={"prompt_tokens": 1000, "completion_tokens": 200})
    chat = {"model": "gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}
    response = gateway.proxy.post("/gemini/v1beta/openai/chat/completions", body=json.dumps(chat),
                                  headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert response.status_code == 200 and json.loads(response.body)["choices"]
    seen = gemini.requests[-1]
    assert seen.path == "/gemini/v1beta/openai/chat/completions"
    assert seen.headers["authorization"] == f"Bearer {UPSTREAM_KEY}"
    call = only_call()
    assert (call.provider, call.model, call.endpoint) == ("gemini", "gemini-2.5-flash", "chat/completions")
    assert call.cost_usd == (1000 * Decimal("0.30") + 200 * Decimal("2.50")) / 10**6


def test_openai_compatible_stream_asks_for_usage_and_ends_with_the_trailer(gateway, gemini):
    key = gateway.new_key()
    gemini.enqueue(usage={"prompt_tokens": 1000, "completion_tokens": 200})
    chat = {"model": "gemini-2.5-flash", "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    response = gateway.proxy.post("/gemini/v1beta/openai/chat/completions", body=json.dumps(chat),
                                  headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})
    assert gemini.requests[-1].body["stream_options"] == {"include_usage": True}
    call = only_call()
    assert call.cost_usd == Decimal("0.0008")
    assert response.body.decode().endswith(f': tollgate {{"call_id": "{call.call_id}", "cost_usd": "0.0008"}}\n\n')


def test_the_answer_names_the_model_unless_its_name_is_unfit(gateway, gemini, monkeypatch):
    key = gateway.new_key()
    from local import mock_gemini

    real = mock_gemini._generated
    monkeypatch.setattr(mock_gemini, "_generated", lambda model, body, script: {
        **real(model, body, script), "modelVersion": "gemini-2.5-flash\x00" + "x" * 300})
    gemini.enqueue(usage=USAGE)
    response = post(gateway, GENERATE, CONTENTS, key)
    assert response.status_code == 200 and only_call().model == "gemini-2.5-flash"  # the path's
    monkeypatch.setattr(mock_gemini, "_generated", lambda model, body, script: {
        **real(model, body, script), "modelVersion": "gemini-2.5-pro"})
    gemini.enqueue(usage=USAGE)
    post(gateway, GENERATE, CONTENTS, key)
    assert {c.model for c in calls()} == {"gemini-2.5-flash", "gemini-2.5-pro"}


# -- hostile input: a 4xx in Google's shape, and the call logged ------------------------------------------------
def test_a_bad_model_name_in_the_path_is_refused_and_logged_without_it(gateway, gemini):
    key = gateway.new_key()
    for model in ("gemini%01-evil", "g" * 300):
        response = post(gateway, f"/gemini/v1beta/models/{model}:generateContent", CONTENTS, key)
        error = google_error(response, 400, "INVALID_ARGUMENT")
        assert "model in the path" in error["message"]
        assert error["details"][0]["reason"] == "INVALID_REQUEST_ERROR"
    logged = calls()
    assert len(logged) == 2 and all(c.status == 400 and not c.upstream_reached for c in logged)
    assert all(c.model is None for c in logged)  # never a name that failed the check
    assert gemini.requests == []


def test_bad_json_is_refused_in_googles_shape_and_logged(gateway, gemini):
    key = gateway.new_key()
    response = post(gateway, GENERATE, None, key, raw=b'{"contents": [')
    google_error(response, 400, "INVALID_ARGUMENT")
    call = only_call()
    assert call.status == 400 and call.error_type == "invalid_request_error" and call.model == "gemini-2.5-flash"
    assert gemini.requests == []


def test_a_missing_or_wrong_key_is_a_401_in_googles_shape(gateway, gemini):
    response = gateway.proxy.post(GENERATE, headers={"Content-Type": "application/json"}, body=json.dumps(CONTENTS))
    google_error(response, 401, "UNAUTHENTICATED")
    response = post(gateway, GENERATE, CONTENTS, "tg-not-a-key")
    google_error(response, 401, "UNAUTHENTICATED")
    assert gemini.requests == [] and "X-Tollgate-Call-Id" in response.headers


def test_an_unknown_method_is_a_404_in_googles_shape(gateway, gemini):
    key = gateway.new_key()
    response = post(gateway, "/gemini/v1beta/models/gemini-2.5-flash:deleteEverything", CONTENTS, key)
    google_error(response, 404, "NOT_FOUND")
    response = post(gateway, "/gemini/v1beta/tunedModels/x:generateContent", CONTENTS, key)
    google_error(response, 404, "NOT_FOUND")
    assert gemini.requests == []


def test_an_upstream_error_passes_through_and_is_logged(gateway, gemini):
    key = gateway.new_key()
    gemini.enqueue(status=429)
    response = post(gateway, GENERATE, CONTENTS, key)
    google_error(response, 429, "RESOURCE_EXHAUSTED")
    call = only_call()
    assert call.status == 429 and call.upstream_reached and call.cost_usd is None


def test_a_hard_budget_refuses_in_googles_shape(gateway, gemini):
    key = gateway.new_key(account="tight")
    status, _ = gateway.admin("put", "/admin/budgets/tight", {
        "scope": "account", "scope_id": "tight", "period": "daily", "limit_usd": "0.000001",
        "thresholds": [1.0], "mode": "hard", "channels": []})
    assert status in (200, 201)
    response = post(gateway, GENERATE, CONTENTS, key)  # its worst case alone is past the limit: refused at once
    error = google_error(response, 429, "RESOURCE_EXHAUSTED")
    assert error["details"][0]["metadata"]["type"] == "budget_exceeded"
    assert not gemini.requests
    assert [c.error_type for c in calls()] == ["budget_exceeded"]
