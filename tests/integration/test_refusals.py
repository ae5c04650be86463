"""Errors are the provider's (issue #25, item 1): the gateway's own refusals (budget 429s, bad bodies, refused keys)
are counted apart (`refused`), never as a provider's or a model's errors, and open no error-rate alert."""
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from chalicelib.alerting import measure as evaluation
from chalicelib.ledger import calllog
from chalicelib.ledger.models import Alert
from tests.conftest import ADMIN_KEY
from tests.integration.helpers import roll_up


def get(gateway, path):
    response = gateway.client.http.get(path, headers={"X-Dashboard-Key": ADMIN_KEY})
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def log_call(n, ts, status=200, error_type=None, upstream_reached=True, latency=300, model="gpt-4o"):
    record = calllog.new_record(
        f"call_{n:06d}", ts, "acme", provider="openai", endpoint="chat/completions", model=model, key_id="key-acme",
        status=status, error_type=error_type, upstream_reached=upstream_reached, input_tokens=100 if status < 400 else 0,
        output_tokens=10 if status < 400 else 0, cost_usd=Decimal("0.001") if status < 400 else Decimal(0),
        priced=True, latency_ms=latency)
    assert calllog.write(record) == "written"


def test_budget_refusals_open_no_error_rate_alert_and_leave_the_model_at_full_success(gateway):
    """The reported false alert: 40 answered calls and 3 budget 429s on openai read as a 7 % error rate."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    for n in range(40):
        log_call(n, now - timedelta(minutes=3, seconds=-n))
    for n in range(40, 43):  # refused before anything went upstream: no latency of a provider's either
        log_call(n, now - timedelta(minutes=2), status=429, error_type="budget_exceeded", upstream_reached=False,
                 latency=5000)
    roll_up()
    evaluation.evaluate(now=now + timedelta(seconds=30))
    assert [a.scope_id for a in Alert.scan() if a.rule in ("error_rate", "consecutive_errors")] == []
    [model] = get(gateway, "/api/usage/models?hours=1")["models"]
    assert (model["model"], model["calls"], model["errors"], model["refused"], model["success_rate"]) == (
        "gpt-4o", 43, 0, 3, 1.0)
    assert model["latency_ms"]["p95"] < 1000  # the refusals' 5 s are no provider's latency
    summary = get(gateway, "/api/summary?hours=1")
    assert (summary["calls"], summary["errors"], summary["error_rate"], summary["refused"]) == (43, 0, 0.0, 3)
    assert summary["refused_by_type"] == {"budget_exceeded": 3}
    assert summary["errors_by_type"] == {} and summary["latency_ms"]["p99"] < 1000
    assert summary["by_provider"]["openai"]["errors"] == 0 and summary["by_provider"]["openai"]["calls"] == 43


def test_a_providers_own_error_stays_an_error_and_a_refusal_is_none(gateway):
    """The same type from upstream (a provider's 400 `invalid_request_error`) is the provider's; from the gateway
    (a body it refused) it is a refusal. Whole days read the same."""
    now = datetime.now(timezone.utc).replace(microsecond=0)
    log_call(1, now - timedelta(minutes=2))
    log_call(2, now - timedelta(minutes=2), status=400, error_type="invalid_request_error", upstream_reached=True)
    log_call(3, now - timedelta(minutes=2), status=400, error_type="invalid_request_error", upstream_reached=False,
             model=None)
    log_call(4, now - timedelta(minutes=2), status=502, error_type="upstream_unreachable", upstream_reached=False)
    roll_up()
    for query in ("hours=1", "days=1"):
        summary = get(gateway, f"/api/summary?{query}")
        assert (summary["calls"], summary["errors"], summary["refused"]) == (4, 2, 1), query
        assert summary["error_rate"] == round(2 / 3, 4)
        assert summary["refused_by_type"] == {"invalid_request_error": 1}, query
    [day] = get(gateway, "/api/usage/daily?days=1")["daily"]
    assert (day["calls"], day["errors"], day["refused"]) == (4, 2, 1)
