"""Folding calls into per-day aggregate deltas, percentiles from merged histograms, and the report math."""
import math
import random
from datetime import datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.reports import aggregates as agg
from chalicelib.rollup.fold import AggregateKey, Fact, fold
from chalicelib.rollup.histogram import bucket_of, lower, percentile, upper
from chalicelib.rollup.layout import five_minute_prefix, hour_prefix

HOUR = datetime(2026, 11, 20, 7, 0)


def fact(seq=1, account="acme", model="gpt-4o", ts=HOUR, cost="0.01", tokens=(10, 20, 0, 5, 1), status=200,
         latency=100, sign=1, key="k1", team=None, operation=None, error_type=None):
    return Fact(sign=sign, lane=account, seq=seq, ts=ts, account=account, key_id=key, provider="openai",
                model=model, operation=operation, team=team, is_error=status >= 400 or error_type is not None,
                error_type=error_type, tokens=tokens, cost_usd=None if cost is None else Decimal(cost),
                latency_ms=latency)


def as_item(key, delta):
    return {"day": key.day, **delta.nonzero()}


def test_one_call_lands_in_its_day_hour_and_five_minutes_of_every_scope():
    deltas = fold([fact(ts=HOUR + timedelta(minutes=7), team="search", operation="summarise")])
    assert {(k.kind, k.scope_id) for k in deltas} == {
        ("global", "all"), ("account", "acme"), ("team", "search"), ("key", "k1"), ("provider", "openai"),
        ("model", "gpt-4o"), ("operation", "summarise")}
    model = deltas[AggregateKey("model", "gpt-4o", "2026-11-20")].counters
    for prefix in ("", "h07|", "m0705|"):
        assert model[f"{prefix}calls"] == 1 and model[f"{prefix}cost"] == Decimal("0.01")
        assert (model[f"{prefix}in"], model[f"{prefix}cr"], model[f"{prefix}out"], model[f"{prefix}rs"]) == (10, 20, 5, 1)
    account = deltas[AggregateKey("account", "acme", "2026-11-20")]
    assert account.counters["b|model|gpt-4o|cost"] == Decimal("0.01")
    assert account.counters["h07|b|model|gpt-4o|tok"] == 36
    assert "model|gpt-4o" in account.dims and "key|k1" in account.dims
    assert not any(name.startswith("b|") for name in model)  # breakdowns live on global and account only


def test_errors_unpriced_calls_and_erasures():
    deltas = fold([fact(seq=1, status=502, error_type="upstream_unreachable", cost=None),
                   fact(seq=2), fact(seq=3, sign=-1)])
    day = deltas[AggregateKey("global", "all", "2026-11-20")]
    assert day.counters["calls"] == 1 and day.counters["errors"] == 1 and day.counters["unpriced"] == 1
    assert day.counters["err|upstream_unreachable"] == 1 and day.counters["cost"] == 0
    assert day.first_seq == {"acme": 1} and day.last_seq == {"acme": 3}


def test_a_batch_of_100_calls_over_5_accounts_and_3_models_in_an_hour_needs_at_most_25_writes():
    rng = random.Random(7)
    facts = [fact(seq=i, account=f"acct-{i % 5}", key=f"key-{i % 5}", model=f"model-{i % 3}",
                  ts=HOUR + timedelta(seconds=rng.randrange(3600))) for i in range(100)]
    writes = len(fold(facts))
    assert writes == 1 + 5 + 5 + 1 + 3  # global, accounts, keys, provider, models
    assert writes / len(facts) <= 0.25


def test_calls_on_two_days_touch_two_items_per_scope():
    deltas = fold([fact(ts=HOUR), fact(seq=2, ts=HOUR + timedelta(days=1))])
    assert {k.day for k in deltas} == {"2026-11-20", "2026-11-21"}


@given(st.lists(st.floats(min_value=0, max_value=600_000, allow_nan=False), min_size=1, max_size=300),
       st.sampled_from([50, 90, 95, 99]))
def test_percentile_of_a_merged_histogram_is_within_one_bucket_of_exact(latencies, q):
    halves = latencies[: len(latencies) // 2], latencies[len(latencies) // 2:]
    merged: dict[int, int] = {}
    for half in halves:  # merge two histograms by adding counts
        for latency in half:
            merged[bucket_of(latency)] = merged.get(bucket_of(latency), 0) + 1
    exact = sorted(latencies)[max(1, math.ceil(q / 100 * len(latencies))) - 1]
    estimate = percentile(merged, q)
    index = bucket_of(exact)
    assert lower(index) <= exact < upper(index)
    assert abs(estimate - exact) <= upper(index) - lower(index) + 0.1


def test_summary_of_items_over_hours():
    facts = [fact(seq=1, ts=HOUR + timedelta(minutes=1), latency=120),
             fact(seq=2, ts=HOUR + timedelta(minutes=61), model="gpt-4o-mini", cost="0.002", latency=900),
             fact(seq=3, ts=HOUR + timedelta(minutes=130), status=500, error_type="server_error", latency=50)]
    key = AggregateKey("global", "all", "2026-11-20")
    item = as_item(key, fold(facts)[key])
    window = agg.resolution_pairs([item], agg.hours_between(HOUR + timedelta(minutes=30), HOUR + timedelta(hours=2)),
                                  hour_prefix)
    summary = agg.summarize(window)  # 07:00-09:59: all three
    assert summary["calls"] == 3 and summary["errors"] == 1 and summary["cost_usd"] == "0.022"
    assert summary["by_model"]["gpt-4o-mini"]["cost_usd"] == "0.002"
    assert summary["latency_ms"]["p50"] >= 120 and summary["tokens"]["total"] == 108
    later = agg.resolution_pairs([item], agg.hours_between(HOUR + timedelta(hours=1), HOUR + timedelta(hours=1)),
                                 hour_prefix)
    assert agg.summarize(later)["calls"] == 1
    five = agg.resolution_pairs([item], agg.five_minutes_between(HOUR, HOUR + timedelta(minutes=4)),
                                five_minute_prefix)
    assert agg.total(five).calls == 1
    only_mini = agg.summarize(window, part=("model", "gpt-4o-mini"))
    assert only_mini["calls"] == 1 and only_mini["tokens"]["total"] == 36 and "latency_ms" not in only_mini


def test_a_repriced_call_folds_the_difference_under_one_stream_position():
    logged = fact(seq=1, cost=None)
    repriced = fact(seq=9, cost="1.5225").changed(fact(seq=9, cost=None, sign=-1))
    assert repriced.sign == 1 and repriced.was.sign == -1 and repriced.was.seq == 9
    deltas = fold([logged, repriced])
    day = deltas[AggregateKey("global", "all", "2026-11-20")]
    assert day.counters["calls"] == 1 and day.counters["unpriced"] == 0 and day.counters["cost"] == Decimal("1.5225")
    change_only = fold([repriced])[AggregateKey("account", "acme", "2026-11-20")].nonzero()
    assert change_only == {"cost": Decimal("1.5225"), "unpriced": -1, "h07|cost": Decimal("1.5225"), "h07|unpriced": -1,
                           "m0700|cost": Decimal("1.5225"), "m0700|unpriced": -1,
                           "b|model|gpt-4o|cost": Decimal("1.5225"), "b|model|gpt-4o|unpriced": -1,
                           "b|provider|openai|cost": Decimal("1.5225"), "b|provider|openai|unpriced": -1,
                           "b|key|k1|cost": Decimal("1.5225"), "b|key|k1|unpriced": -1,
                           "h07|b|model|gpt-4o|cost": Decimal("1.5225"), "h07|b|model|gpt-4o|unpriced": -1,
                           "h07|b|provider|openai|cost": Decimal("1.5225"), "h07|b|provider|openai|unpriced": -1}
    cheaper = fact(seq=10, cost="0.5").changed(fact(seq=10, cost="1.5225", sign=-1))
    assert fold([cheaper])[AggregateKey("model", "gpt-4o", "2026-11-20")].nonzero()["cost"] == Decimal("-1.0225")


def test_a_change_to_nothing_the_rollup_counts_is_no_fact():
    assert fact(seq=4, cost="0.01").changed(fact(seq=4, cost="0.010", sign=-1)) is None
    broken = fact(seq=5, cost="1").changed(fact(seq=5, cost="-3", sign=-1))
    assert "before the change: cost_usd" in broken.unfoldable()


def test_an_unpriced_model_reads_null_cost_never_zero_and_is_counted():
    facts = [fact(seq=1, model="my-private-model", cost=None), fact(seq=2, model="my-private-model", cost=None),
             fact(seq=3, model="gpt-4o", cost="0.01"), fact(seq=4, model="gpt-4o", cost=None)]
    key = AggregateKey("global", "all", "2026-11-20")
    item = as_item(key, fold(facts)[key])
    summary = agg.summarize([(item, "")])
    assert summary["by_model"]["my-private-model"]["cost_usd"] is None
    assert summary["by_model"]["my-private-model"]["unpriced_calls"] == 2
    assert summary["by_model"]["gpt-4o"] == summary["by_model"]["gpt-4o"] | {"cost_usd": "0.01", "unpriced_calls": 1}
    assert summary["cost_usd"] == "0.01" and summary["unpriced_calls"] == 3
    only_private = agg.summarize([(item, "")], part=("model", "my-private-model"))
    assert only_private["cost_usd"] is None and only_private["unpriced_calls"] == 2
    nothing_priced = as_item(key, fold(facts[:2])[key])
    assert agg.summarize([(nothing_priced, "")])["cost_usd"] is None
    assert agg.daily_groups([nothing_priced], "model")[0]["groups"]["my-private-model"]["cost_usd"] is None
    assert agg.Totals().view()["cost_usd"] == "0"  # no calls: nothing unknown
