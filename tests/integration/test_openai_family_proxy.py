"""Groq's, Azure's and the images routes refuse hostile input in OpenAI's format and log the call, through the proxy
app over the mock upstream (real HTTP)."""
import json
from decimal import Decimal

import pytest

from chalicelib.ledger.models import CallRecord
from tests.integration.conftest import reload_settings
from tests.integration.helpers import error_of

CHAT = {"model": "llama-3.3-70b-versatile", "messages": [{"role": "user", "content": "hi"}]}
ROUTES = {
    "groq": ("/groq/openai/v1/chat/completions", CHAT),
    "azure-v1": ("/azure/openai/v1/chat/completions", {**CHAT, "model": "gpt-4o-mini"}),
    "images": ("/openai/v1/images/generations", {"model": "dall-e-3", "prompt": "an otter"}),
}


@pytest.fixture
def family(upstream, upstream_url, monkeypatch):
    _, url = upstream_url
    monkeypatch.setenv("TOLLGATE_GROQ_BASE_URL", f"{url}/groq/openai/v1")
    monkeypatch.setenv("TOLLGATE_AZURE_BASE_URL", f"{url}/azure")
    monkeypatch.setenv("TOLLGATE_GROQ_API_KEY", "sk-upstream-test")
    monkeypatch.setenv("TOLLGATE_AZURE_API_KEY", "sk-upstream-test")
    reload_settings()
    return upstream


def logged():
    return list(CallRecord.scan())


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("model, reason", [("m" * 300, "longer than 256"), ("a\u0000b", "control characters")])
def test_unfit_model_names_are_400_in_openai_format_and_logged(gateway, family, route, model, reason):
    path, body = ROUTES[route]
    response = gateway.call(path, {**body, "model": model}, gateway.new_key())
    assert response.status_code == 400
    kind, message = error_of("openai", response)
    assert kind == "invalid_request_error" and reason in message
    assert family.requests == []
    [call] = logged()
    assert (call.status, call.error_type, call.call_id) == (400, "invalid_request_error",
                                                            response.headers["X-Tollgate-Call-Id"])


@pytest.mark.parametrize("route", ROUTES)
def test_bad_json_is_400_and_logged(gateway, family, route):
    response = gateway.call(ROUTES[route][0], None, gateway.new_key(), raw=b'{"model": ')
    assert response.status_code == 400 and error_of("openai", response)[0] == "invalid_request_error"
    [call] = logged()
    assert call.status == 400 and family.requests == []


def test_an_unfit_deployment_name_is_400_and_logged(gateway, family):
    key = gateway.new_key()
    response = gateway.proxy.post("/azure/openai/deployments/a%00b/chat/completions?api-version=2024-10-21",
                                  headers={"api-key": key, "Content-Type": "application/json"},
                                  body=json.dumps({"messages": []}))
    assert response.status_code == 400 and "control characters" in error_of("openai", response)[1]
    [call] = logged()
    assert call.provider == "azure" and call.status == 400 and family.requests == []


def test_azure_answers_without_an_api_version_are_passed_through_and_logged(gateway, family):
    key = gateway.new_key()
    response = gateway.proxy.post("/azure/openai/deployments/gpt-4o-mini/chat/completions",
                                  headers={"api-key": key, "Content-Type": "application/json"},
                                  body=json.dumps({"messages": []}))
    assert response.status_code == 404
    [call] = logged()
    assert (call.provider, call.model, call.status, call.error_type) == ("azure", "gpt-4o-mini", 404, "upstream_404")
    assert "api-version" not in family.requests[-1].path


def test_the_gateway_key_never_reaches_azure(gateway, family):
    key = gateway.new_key()
    response = gateway.proxy.post("/azure/openai/deployments/gpt-4o-mini/chat/completions?api-version=2024-10-21"
                                  f"&api-key={key}&key={key}",
                                  headers={"api-key": key, "Content-Type": "application/json"},
                                  body=json.dumps({"messages": [{"role": "user", "content": "hi"}]}))
    assert response.status_code == 200
    seen = family.requests[-1]
    assert seen.headers["api-key"] == "sk-upstream-test" and key not in json.dumps(seen.headers)
    [call] = logged()
    assert call.model == "gpt-4o-mini-2024-07-18" and call.price_source == "genai-prices/openai"


def test_an_image_size_with_no_price_is_logged_unpriced_with_its_images(gateway, family):
    response = gateway.call("/openai/v1/images/generations",
                            {"model": "dall-e-3", "prompt": "x", "size": "s" * 5000, "n": 1}, gateway.new_key())
    assert response.status_code == 200 and "X-Tollgate-Cost-USD" not in response.headers
    [call] = logged()
    assert (call.images, call.image_variant, call.cost_usd) == (1, None, None)


def test_dall_e_2_images_are_priced_per_image(gateway, family):
    response = gateway.call("/openai/v1/images/generations",
                            {"model": "dall-e-2", "prompt": "x", "size": "512x512", "n": 3}, gateway.new_key())
    assert Decimal(response.headers["X-Tollgate-Cost-USD"]) == 3 * Decimal("0.018")
    [call] = logged()
    assert (call.images, call.image_variant, call.price_source) == (3, "512x512/standard", "image-prices")
