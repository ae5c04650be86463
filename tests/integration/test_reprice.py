"""Prices you can bill from, end to end: the provider's stated cost (exact, streamed or not), provenance on every
call, and re-pricing stored calls with the aggregates, reports and budgets following exactly once."""
import csv
import io
import json
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import httpx
import pytest
from pynamodb.exceptions import UpdateError

from chalicelib.gateway import price_overrides, pricing, reprice
from chalicelib.gateway import upstream as upstream_module
from chalicelib.ledger import calllog
from chalicelib.ledger.models import CallRecord
from chalicelib.rollup import rebuild
from chalicelib.settings import get_settings
from tests.conftest import ADMIN_KEY, EVENTS
from tests.integration.conftest import stream_records
from tests.integration.helpers import expected_counters, handler, roll_up, stored_counters

M = Decimal("0.000001")
TODAY = datetime.now(timezone.utc).strftime("%Y-%m-%d")
EXACT_COST = "0.000123456789012345678"
PRIVATE_MODEL_PRICES = {"provider": "openai", "model": "my-private-model", "input_mtok": "2", "cache_read_mtok": "1",
                        "output_mtok": "8", "source": [{"url": "https://example.com/contract", "checked": "2026-11-26",
                                                        "says": "our negotiated price"}]}


def get(gateway, path):
    response = gateway.client.http.get(path, headers={"X-Dashboard-Key": ADMIN_KEY})
    return response.status_code, response.body.decode() if "format=csv" in path else json.loads(response.body)


@pytest.fixture
def override_file(tmp_path, monkeypatch):
    """Write an overrides file the gateway then prices with (as a deploy of a new file would)."""
    path = tmp_path / "price_overrides.json"
    shipped = json.loads(price_overrides.OVERRIDES_FILE.read_text())

    def install(*entries):
        path.write_text(json.dumps({"overrides": [*entries, *shipped["overrides"]]}))
        monkeypatch.setattr(price_overrides, "OVERRIDES_FILE", path)
        pricing._overrides.cache_clear()
        return price_overrides.load_overrides(path).version

    yield install
    pricing._overrides.cache_clear()


# --- The provider's statement, and provenance ----------------------------------------------------------
def openrouter_answers(raw: bytes, content_type: str):
    upstream_module.use_transport(httpx.MockTransport(
        lambda request: httpx.Response(200, content=raw, headers={"Content-Type": content_type})))


def test_openrouter_stream_cost_is_kept_exactly_and_prices_a_model_we_do_not_know(gateway, upstream):
    raw = (EVENTS / "openrouter_chat_stream_cost.sse").read_text().replace("anthropic/claude-sonnet-4",
                                                                           "acme/private-model")
    openrouter_answers(raw.encode(), "text/event-stream")
    key = gateway.new_key()
    response = gateway.call("/openrouter/v1/chat/completions",
                            {"model": "acme/private-model", "stream": True, "messages": []}, key)
    assert response.status_code == 200
    [call] = CallRecord.scan()
    assert str(call.provider_cost_usd) == EXACT_COST and str(call.cost_usd) == EXACT_COST
    assert (call.price_source, call.price_version, call.priced) == ("provider", "provider", True)
    assert response.body.decode().endswith(f'{{"call_id": "{call.call_id}", "cost_usd": "{EXACT_COST}"}}\n\n')


def test_openrouter_body_cost_is_the_price_with_ours_beside_it_and_a_drift_is_counted(gateway, upstream, event):
    body = event("openrouter_chat_cost.json")
    body["model"] = "anthropic/claude-sonnet-4"
    body["usage"].update(prompt_tokens=250_000, completion_tokens=1000, total_tokens=251_000, cost="COST")
    openrouter_answers(json.dumps(body).replace('"COST"', EXACT_COST).encode(), "application/json")
    key = gateway.new_key()
    response = gateway.call("/openrouter/v1/chat/completions", {"model": "anthropic/claude-sonnet-4"}, key)
    [call] = CallRecord.scan()
    assert str(call.provider_cost_usd) == str(call.cost_usd) == EXACT_COST  # the invoice is the price
    assert response.headers["X-Tollgate-Cost-USD"] == EXACT_COST
    assert (call.price_source, call.price_version) == ("provider", "provider")
    # ours beside it, the override's long-context tier: 250,000 × $6 + 1,000 × $22.50 per million
    assert call.estimated_cost_usd == 250_000 * 6 * M + 1000 * Decimal("22.5") * M == Decimal("1.5225")
    assert call.price_drift is True  # $1.5225 against $0.000123…: far past max($0.000001, 1 %)
    shown = get(gateway, f"/api/calls/{call.call_id}")[1]
    assert (shown["estimated_cost_usd"], shown["price_drift"]) == ("1.5225", True)
    [row] = csv.DictReader(io.StringIO(get(gateway, "/api/export?format=csv&hours=1")[1]))
    assert (row["estimated_cost_usd"], row["price_drift"]) == ("1.5225", "True")
    roll_up()
    summary = get(gateway, "/api/summary?hours=24")[1]
    assert summary["price_drift_calls"] == 1 and summary["cost_usd"] == EXACT_COST
    assert get(gateway, "/api/summary?days=1")[1]["price_drift_calls"] == 1
    assert get(gateway, "/api/summary?days=1&account=acme")[1]["price_drift_calls"] == 1
    assert get(gateway, "/api/summary?hours=24&account=acme&provider=openrouter")[1]["price_drift_calls"] is None


def test_a_stated_cost_within_the_tolerance_is_no_drift(gateway, upstream, event):
    # openai/gpt-4o-mini on OpenRouter: 1,000 × $0.15 + 200 × $0.60 per million = $0.00027; stated $0.000272,
    # 2 µ$ apart, within max($0.000001, 1 % of 0.000272)
    body = event("openrouter_chat_cost.json")
    body["usage"]["cost"] = "COST"
    openrouter_answers(json.dumps(body).replace('"COST"', "0.000272").encode(), "application/json")
    gateway.call("/openrouter/v1/chat/completions", {"model": "openai/gpt-4o-mini"}, gateway.new_key())
    [call] = CallRecord.scan()
    assert (call.cost_usd, call.estimated_cost_usd, call.price_drift) == (
        Decimal("0.000272"), Decimal("0.00027"), False)
    roll_up()
    assert get(gateway, "/api/summary?hours=24")[1]["price_drift_calls"] == 0


def openai_family_answers(body):
    upstream_module.use_transport(httpx.MockTransport(
        lambda request: httpx.Response(200, content=json.dumps(body).encode(),
                                       headers={"Content-Type": "application/json"})))


def test_audio_searches_and_tier_are_counted_on_the_call_shown_and_exported(gateway, upstream, event):
    key = gateway.new_key()
    openai_family_answers(event("openai_chat_audio.json"))
    response = gateway.call("/openai/v1/chat/completions", {"model": "gpt-audio", "messages": []}, key)
    # gpt-audio: 200 text × $2.50 + 800 audio × $32 in, 100 text × $10 + 400 audio × $64 out, per million
    assert response.headers["X-Tollgate-Cost-USD"] == "0.0527"
    tier = event("openai_chat_tier.json")
    tier["service_tier"] = "priority"
    openai_family_answers(tier)
    response = gateway.call("/openai/v1/chat/completions", {"model": "gpt-5", "messages": []}, key)
    assert response.headers["X-Tollgate-Cost-USD"] == "0.056"  # 6,400 × $2.50 + 2,000 × $20 per million
    openai_family_answers(event("anthropic_message_web_search.json"))
    response = gateway.call("/anthropic/v1/messages", {"model": "claude-sonnet-4-5", "max_tokens": 9,
                                                       "messages": []}, key)
    assert response.headers["X-Tollgate-Cost-USD"] == "0.057"  # 4,000 × $3 + 1,000 × $15 per M + 3 × $10 / 1,000
    calls = {c["model"]: c for c in gateway.calls()[1]["calls"]}
    audio, priority, search = (calls["gpt-audio-2025-08-28"], calls["gpt-5-2025-08-07"],
                               calls["claude-sonnet-4-5-20250929"])
    assert (audio["input_tokens"], audio["input_audio_tokens"], audio["output_tokens"],
            audio["output_audio_tokens"], audio["cost_usd"]) == (1000, 800, 500, 400, "0.0527")
    assert (priority["service_tier"], priority["cost_usd"], priority["web_searches"]) == ("priority", "0.056", 0)
    assert (search["web_searches"], search["service_tier"], search["speed"], search["cost_usd"]) == (
        3, "standard", None, "0.057")
    rows = {r["model"]: r for r in csv.DictReader(io.StringIO(get(gateway, "/api/export?format=csv&hours=1")[1]))}
    assert (rows["gpt-audio-2025-08-28"]["input_audio_tokens"], rows["gpt-audio-2025-08-28"]["output_audio_tokens"],
            rows["gpt-5-2025-08-07"]["service_tier"], rows["claude-sonnet-4-5-20250929"]["web_searches"]) == (
        "800", "400", "priority", "3")


def test_reprice_prices_the_stored_searches_tier_and_the_providers_statement(aws_env, override_file):
    # As logged before issue 26 was fixed: searches and tier stored, priced as if there were none.
    search = log(1, model="claude-sonnet-4-5", cost="0.027", tokens=(4000, 0, 1000), web_searches=3)
    flex = log(2, model="gpt-5", cost="0.028", tokens=(6400, 0, 2000), service_tier="flex")
    stated = log(3, model="openai/gpt-4o-mini", cost="0.00027", tokens=(1000, 0, 200),
                 provider_cost_usd=Decimal("0.0003"))
    search.update(actions=[CallRecord.provider.set("anthropic")])
    stated.update(actions=[CallRecord.provider.set("openrouter")])
    result = reprice.reprice({"start": TODAY})
    assert result["calls_repriced"] == 3
    # sonnet 4.5: 4,000 × $3 + 1,000 × $15 per million + 3 × $10 / 1,000 = $0.057
    assert CallRecord.get(search.account, search.sk).cost_usd == Decimal("0.057")
    # gpt-5 flex: 6,400 × $0.625 + 2,000 × $5 per million = $0.014
    assert CallRecord.get(flex.account, flex.sk).cost_usd == Decimal("0.014")
    # OpenRouter's $0.0003 is the price; ours ($0.00027) 30 µ$ away, past max($0.000001, 1 % = 3 µ$)
    again = CallRecord.get(stated.account, stated.sk)
    assert (again.cost_usd, again.price_source, again.estimated_cost_usd, again.price_drift) == (
        Decimal("0.0003"), "provider", Decimal("0.00027"), True)
    assert reprice.reprice({"start": TODAY})["calls_repriced"] == 0


def test_every_call_shows_its_price_provenance_in_the_api_and_the_export(gateway, upstream):
    key = gateway.new_key()
    gateway.call("/openai/v1/chat/completions", {"model": "gpt-4o", "messages": []}, key)
    _, listed = gateway.calls()
    [call] = listed["calls"]
    assert (call["price_source"], call["price_version"], call["repriced_at"]) == (
        "genai-prices", pricing.genai_prices_version(), None)
    assert get(gateway, f"/api/calls/{call['call_id']}")[1]["price_version"] == pricing.genai_prices_version()
    _, exported = get(gateway, "/api/export?format=csv&hours=1")
    [row] = csv.DictReader(io.StringIO(exported))
    assert (row["price_source"], row["price_version"]) == ("genai-prices", pricing.genai_prices_version())


# --- Re-pricing ------------------------------------------------------------------------------------------
def log(n, model="my-private-model", cost=None, minutes_ago=5, tokens=(1000, 200, 300), **fields):
    """A call as the proxy logs it: usage reported, priced or not."""
    uncached, cached, output = tokens
    record = calllog.new_record(
        f"call_{n:06d}", datetime.now(timezone.utc) - timedelta(minutes=minutes_ago), "acme", provider="openai",
        endpoint="chat/completions", model=model, key_id="key-acme", status=200, input_tokens=uncached,
        cache_read_tokens=cached, output_tokens=output, usage_reported=True, latency_ms=100 + n,
        cost_usd=None if cost is None else Decimal(cost), priced=cost is not None,
        price_source=None if cost is None else "genai-prices", **fields)
    assert calllog.write(record) == "written"
    return record


def logged_calls():
    return list(calllog.calls_of_day(TODAY, newest_first=False))


def test_unpriced_call_then_an_override_then_reprice_moves_day_summary_and_budget_by_exactly_its_cost(
        gateway, upstream, override_file):
    key = gateway.new_key(account="acme")
    upstream.enqueue(usage={"prompt_tokens": 1200, "completion_tokens": 300,
                            "prompt_tokens_details": {"cached_tokens": 200}})
    gateway.call("/openai/v1/chat/completions", {"model": "my-private-model", "messages": []}, key)
    gateway.call("/openai/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}, key)
    assert gateway.admin("put", "/admin/budgets/daily", {"scope": "global", "period": "daily", "limit_usd": 100,
                                                         "thresholds": [0.5], "mode": "soft", "channels": []})[0] == 200
    roll_up()
    [unpriced] = [c for c in logged_calls() if c.model == "my-private-model"]
    assert unpriced.cost_usd is None and not unpriced.priced
    _, summary = get(gateway, "/api/summary?hours=24")
    _, daily = get(gateway, "/api/usage/daily?days=1")
    _, [budget] = get(gateway, "/api/budgets")[1].popitem()
    assert summary["unpriced_calls"] == 1 and summary["by_model"]["my-private-model"]["cost_usd"] is None

    version = override_file(PRIVATE_MODEL_PRICES)
    status, result = gateway.admin("post", "/admin/jobs/reprice", {"start": TODAY, "end": TODAY})
    # 1,000 uncached × $2 + 200 cached × $1 + 300 output × $8, per million
    cost = 1000 * 2 * M + 200 * 1 * M + 300 * 8 * M
    assert cost == Decimal("0.0046")
    assert status == 200 and result["calls_repriced"] == 1 and result["calls"] == 2
    assert (Decimal(result["cost_before_usd"]), Decimal(result["cost_after_usd"])) == (0, cost)
    roll_up()

    call = get(gateway, f"/api/calls/{unpriced.call_id}")[1]
    assert (call["cost_usd"], call["priced"], call["price_source"], call["price_version"]) == (
        "0.0046", True, "override", version)
    assert call["repriced_at"] >= TODAY
    _, summary_after = get(gateway, "/api/summary?hours=24")
    _, daily_after = get(gateway, "/api/usage/daily?days=1")
    _, [budget_after] = get(gateway, "/api/budgets")[1].popitem()
    assert Decimal(summary_after["cost_usd"]) - Decimal(summary["cost_usd"]) == cost
    assert summary_after["unpriced_calls"] == 0
    assert summary_after["by_model"]["my-private-model"]["cost_usd"] == "0.0046"
    assert Decimal(daily_after["daily"][-1]["cost_usd"]) - Decimal(daily["daily"][-1]["cost_usd"]) == cost
    assert Decimal(budget_after["spent"]) - Decimal(budget["spent"]) == cost
    assert stored_counters() == expected_counters(logged_calls())

    records = len(stream_records())
    status, again = gateway.admin("post", "/admin/jobs/reprice", {"start": TODAY, "end": TODAY})
    assert status == 200 and again["calls_repriced"] == 0 and again["cost_after_usd"] == "0"
    assert len(stream_records()) == records  # nothing written, so nothing for the rollup either
    roll_up()
    assert get(gateway, "/api/summary?hours=24")[1]["cost_usd"] == summary_after["cost_usd"]


def test_reprice_corrects_a_wrong_price_and_filters_by_provider_and_model(aws_env, override_file):
    # gpt-4o: $2.50 input, $1.25 cached input, $10 output per million
    wrong = log(1, model="gpt-4o", cost="0.5")
    log(2, model="gpt-4o-mini", cost="0.9")
    result = reprice.reprice({"start": TODAY, "provider": "openai", "model": "gpt-4o"})
    assert (result["calls"], result["calls_repriced"]) == (1, 1)
    right = 1000 * Decimal("2.5") * M + 200 * Decimal("1.25") * M + 300 * 10 * M
    assert (Decimal(result["cost_before_usd"]), Decimal(result["cost_after_usd"])) == (Decimal("0.5"), right)
    assert CallRecord.get(wrong.account, wrong.sk).cost_usd == right == Decimal("0.00575")
    assert reprice.reprice({"start": TODAY, "provider": "anthropic"})["calls"] == 0
    forgotten = log(3, model="a-model-no-price-list-knows", cost="0.25")
    kept = reprice.reprice({"start": TODAY, "model": "a-model-no-price-list-knows"})
    assert (kept["calls"], kept["calls_repriced"]) == (1, 0)  # a price known once is kept
    assert CallRecord.get(forgotten.account, forgotten.sk).cost_usd == Decimal("0.25")


def test_calls_that_had_no_usage_to_price_stay_unpriced(aws_env, override_file):
    override_file(PRIVATE_MODEL_PRICES)
    failed = calllog.new_record("call_000009", datetime.now(timezone.utc), "acme", provider="openai",
                                endpoint="chat/completions", model="my-private-model", key_id="k", status=502,
                                error_type="upstream_unreachable", latency_ms=5, usage_reported=False)
    invalid = calllog.new_record("call_000010", datetime.now(timezone.utc), "acme", provider="openai",
                                 endpoint="chat/completions", model="my-private-model", key_id="k", status=200,
                                 error_type="usage_invalid", latency_ms=5, usage_reported=False)
    for record in (failed, invalid):
        assert calllog.write(record) == "written"
    assert reprice.reprice({"start": TODAY})["calls_repriced"] == 0
    assert all(not c.priced for c in logged_calls())


def test_a_crash_half_way_then_a_rerun_converges_and_the_rollup_counts_each_change_once(
        aws_env, override_file, dynamo_faults):
    calls = [log(n, minutes_ago=n) for n in range(1, 7)]
    roll_up()
    override_file(PRIVATE_MODEL_PRICES)
    dynamo_faults.fail("UpdateItem", times=1, code="AccessDeniedException", after=2)
    with pytest.raises(UpdateError):
        reprice.reprice({"start": TODAY})
    dynamo_faults.clear()
    assert sum(c.priced for c in logged_calls()) == 2
    roll_up()  # the two changes so far
    assert stored_counters() == expected_counters(logged_calls())
    rerun = reprice.reprice({"start": TODAY})
    assert rerun["calls_repriced"] == 4 and all(c.priced for c in logged_calls())
    records = stream_records()
    assert [r["eventName"] for r in records].count("MODIFY") == 6
    assert handler(records) == {"batchItemFailures": []}
    assert handler(records[-3:]) == {"batchItemFailures": []}  # redelivered: folded once all the same
    assert handler(records) == {"batchItemFailures": []}
    each = 1000 * 2 * M + 200 * 1 * M + 300 * 8 * M
    assert stored_counters() == expected_counters(logged_calls())
    assert stored_counters()[("global", "all", TODAY)]["cost"] == 6 * each and len(calls) == 6
    assert "unpriced" not in stored_counters()[("global", "all", TODAY)]


def test_the_update_is_conditional_on_the_price_read_and_never_brings_a_call_back(aws_env):
    stale = log(1, cost="0.1")
    CallRecord.get(stale.account, stale.sk).update(actions=[CallRecord.cost_usd.set(Decimal("0.2"))])
    assert not calllog.set_price(stale, Decimal("0.3"), "override", "overrides@x", datetime.now(timezone.utc))
    assert CallRecord.get(stale.account, stale.sk).cost_usd == Decimal("0.2")
    gone = log(2)
    CallRecord.get(gone.account, gone.sk).delete()
    assert not calllog.set_price(gone, Decimal("0.3"), "override", "overrides@x", datetime.now(timezone.utc))
    assert CallRecord.count() == 1


@pytest.mark.parametrize("job,body,message", [
    ("reprice", {"start": "2026-13-01"}, "`start`"),
    ("reprice", {"start": TODAY, "end": "2020-01-01"}, "before"),
    ("reprice", {"start": TODAY, "end": "2999-01-01"}, "future"),
    ("reprice", {"start": TODAY, "provider": "google"}, "`provider`"),
    ("reprice", {"start": TODAY, "model": "x" * 300}, "`model`"),
    ("reprice", {"start": "2020-01-01", "end": TODAY}, "outside the call log's retention"),
    ("recalculate", {"from": "2020-01-01", "to": "2020-01-02"}, "outside the call log's retention"),
])
def test_reprice_and_recalculate_requests_are_bounded(gateway, upstream, job, body, message):
    status, error = gateway.admin("post", f"/admin/jobs/{job}", body)
    assert status == 400 and message in error["error"]["message"], error


def test_recalculate_refuses_a_day_the_call_log_may_have_lost_and_keeps_its_aggregates(aws_env, monkeypatch):
    from chalicelib.errors import InvalidRequest
    from chalicelib.rollup import store

    oldest = calllog.oldest_logged_day()
    ttl = get_settings().call_ttl_days
    assert (datetime.now(timezone.utc).date() - oldest).days == ttl - 1
    expired = (oldest - timedelta(days=1)).isoformat()
    deleted = []
    monkeypatch.setattr(store, "replace_day", lambda day, deltas: deleted.append(day) or 0)
    with pytest.raises(InvalidRequest) as refused:
        rebuild.recalculate({"from": expired, "to": oldest.isoformat()})
    assert f"calls are kept {ttl} days" in refused.value.message and oldest.isoformat() in refused.value.message
    assert deleted == []  # nothing was touched
    assert rebuild.recalculate({"from": oldest.isoformat()})["days"] == 1 and deleted == [oldest.isoformat()]
