"""Folding calls into per-day aggregate deltas, percentiles from merged histograms, and the report math."""
import math
import random
from datetime import datetime, timedelta, timezone
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.reports import aggregates as agg
from chalicelib.rollup.fold import AggregateKey, Fact, fold, views
from chalicelib.rollup.histogram import bucket_of, lower, percentile, upper
from chalicelib.rollup.layout import Part, Scope, five_minute_prefix, hour_prefix, shard_of

HOUR = datetime(2026, 11, 20, 7, 0, tzinfo=timezone.utc)


def fact(seq=1, account="acme", model="gpt-4o", ts=HOUR, cost="0.01", tokens=(10, 20, 0, 5, 1), status=200,
         latency=100, sign=1, key="k1", team=None, operation=None, error_type=None):
    return Fact(sign=sign, lane=account, seq=seq, ts=ts, account=account, key_id=key, provider="openai",
                model=model, operation=operation, team=team, is_error=status >= 400 or error_type is not None,
                error_type=error_type, tokens=tokens, cost_usd=None if cost is None else Decimal(cost),
                latency_ms=latency)


def view(facts, kind="global", scope_id="all"):
    """The one day view a reader would get of a scope from these facts (all on one day)."""
    [day] = views(fold(facts), Scope(kind, scope_id))
    return day


def day_key(kind, scope_id, lane="acme", part=Part()):
    return AggregateKey(kind, scope_id, "2026-11-20", part, shard_of(kind, lane))


def test_one_call_lands_in_its_day_hour_and_five_minutes_of_every_scope():
    facts = [fact(ts=HOUR + timedelta(minutes=7), team="search", operation="summarise")]
    deltas = fold(facts)
    assert {(k.kind, k.scope_id) for k in deltas} == {
        ("global", "all"), ("account", "acme"), ("team", "search"), ("key", "k1"), ("provider", "openai"),
        ("model", "gpt-4o"), ("operation", "summarise")}
    model = view(facts, "model", "gpt-4o")
    for prefix in ("", "h07|", "m0705|"):
        assert model[f"{prefix}calls"] == 1 and model[f"{prefix}cost"] == Decimal("0.01")
        assert (model[f"{prefix}in"], model[f"{prefix}cr"], model[f"{prefix}out"], model[f"{prefix}rs"]) == (10, 20, 5, 1)
    account = view(facts, "account", "acme")
    assert account["b|model|gpt-4o|cost"] == Decimal("0.01") and account["b|key|k1|calls"] == 1
    assert account["h07|b|model|gpt-4o|out"] == 5 and account["h07|b|model|gpt-4o|lat|" + str(bucket_of(100))] == 1
    assert view(facts, "team", "search")["b|operation|summarise|calls"] == 1
    assert not any(name.startswith("b|") for name in model)  # breakdowns live on accounts and teams only
    # stored: each resolution and each breakdown value in its own small item, the time prefix in the sort key
    five = deltas[day_key("model", "gpt-4o", part=Part("m", 7, minute=5))]
    assert five.counters["calls"] == 1 and "m0705|calls" not in five.counters
    assert day_key("model", "gpt-4o", part=Part("m", 7, minute=5)).sort_key.startswith("m|2026-11-20T0705~")
    assert day_key("account", "acme", part=Part("b", dim="model", value="gpt-4o")).sort_key == "b|model|2026-11-20|gpt-4o"


def test_errors_unpriced_calls_and_erasures():
    deltas = fold([fact(seq=1, status=502, error_type="upstream_unreachable", cost=None),
                   fact(seq=2), fact(seq=3, sign=-1)])
    day = deltas[day_key("global", "all")]
    assert day.counters["calls"] == 1 and day.counters["errors"] == 1 and day.counters["unpriced"] == 1
    assert day.counters["err|upstream_unreachable"] == 1 and day.counters["cost"] == 0
    assert day.first_seq == {"acme": 1} and day.last_seq == {"acme": 3}


def test_a_batch_writes_one_small_item_per_resolution_breakdown_value_and_write_shard():
    rng = random.Random(7)  # 100 calls in ten seconds, as a stream batch holds them: one 5-minute bucket
    facts = [fact(seq=i, account=f"acct-{i % 5}", key=f"key-{i % 5}", model=f"model-{i % 3}",
                  ts=HOUR + timedelta(seconds=rng.randrange(10))) for i in range(100)]
    deltas = fold(facts)
    shards = {shard_of("global", f"acct-{a}") for a in range(5)}  # the shards the five accounts' lanes write
    by_kind = {kind: sum(1 for k in deltas if k.kind == kind) for kind in ("global", "account", "key", "provider", "model")}
    # every account calls every model (i % 5 and i % 3 cycle through all pairs)
    assert by_kind["account"] == 5 * (3 + 3 + 1 + 3)  # day (with its provider split), hour, 5-min; 3 models, key; 3 model-hours
    assert by_kind["key"] == 5 * 3
    assert by_kind["global"] == len(shards) * (3 + 3)  # per shard: day, hour, 5-min and 3 model-hours
    assert by_kind["provider"] == len(shards) * 3 and by_kind["model"] == 3 * len(shards) * 3
    assert all(len(delta.last_seq) <= 5 for delta in deltas.values())


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
    item = view(facts)
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


def test_a_range_to_now_reads_its_part_hour_edge_in_five_minutes_and_the_rest_in_hours():
    start, now = HOUR + timedelta(minutes=25), HOUR + timedelta(hours=3, minutes=12)
    edge, hours = agg.edge_and_hours(agg.five_minutes_between(start, now), through_now=True)
    assert [t.minute for t in edge] == [25, 30, 35, 40, 45, 50, 55]
    assert [t.hour for t in hours] == [8, 9, 10]  # 10:00 is the hour that holds now: nothing is past it yet
    aligned = agg.five_minutes_between(HOUR, now)
    assert agg.edge_and_hours(aligned, through_now=True) == ([], agg.hours_between(HOUR, now))
    assert agg.edge_and_hours(aligned, through_now=False) == (aligned, [])  # an hour may hold calls past its end


@given(st.lists(st.integers(0, 24 * 60 - 1), max_size=40), st.integers(0, 23 * 60), st.integers(1, 24 * 60))
def test_hours_and_an_edge_count_what_every_five_minute_bucket_counts(minutes, start_minute, length):
    day = datetime(2026, 11, 20, tzinfo=timezone.utc)
    start = day + timedelta(minutes=start_minute)
    now = min(start + timedelta(minutes=length), day + timedelta(hours=23, minutes=59))
    facts = [fact(seq=n, ts=day + timedelta(minutes=m)) for n, m in enumerate(minutes, 1) if m <= now.hour * 60
             + now.minute]  # nothing is logged after now
    items = [view(facts)] if facts else []
    slots = agg.five_minutes_between(start, now)
    edge, hours = agg.edge_and_hours(slots, through_now=True)
    read = (agg.resolution_pairs(items, edge, five_minute_prefix) + agg.resolution_pairs(items, hours, hour_prefix))
    assert agg.total(read).view() == agg.total(agg.resolution_pairs(items, slots, five_minute_prefix)).view()
    assert len(edge) <= 11 and len(edge) + len(hours) <= 12 + length // 60 + 1


def test_a_repriced_call_folds_the_difference_under_one_stream_position():
    logged = fact(seq=1, cost=None)
    repriced = fact(seq=9, cost="1.5225").changed(fact(seq=9, cost=None, sign=-1))
    assert repriced.sign == 1 and repriced.was.sign == -1 and repriced.was.seq == 9
    deltas = fold([logged, repriced])
    day = views(deltas, Scope.everything())[0]
    assert day["calls"] == 1 and day.get("unpriced", 0) == 0 and day["cost"] == Decimal("1.5225")
    change_only = {name: value for name, value in view([repriced], "account", "acme").items() if name != "day"}
    assert change_only == {"cost": Decimal("1.5225"), "unpriced": -1, "h07|cost": Decimal("1.5225"), "h07|unpriced": -1,
                           "m0700|cost": Decimal("1.5225"), "m0700|unpriced": -1,
                           "b|model|gpt-4o|cost": Decimal("1.5225"), "b|model|gpt-4o|unpriced": -1,
                           "b|provider|openai|cost": Decimal("1.5225"), "b|provider|openai|unpriced": -1,
                           "b|key|k1|cost": Decimal("1.5225"), "b|key|k1|unpriced": -1,
                           "h07|b|model|gpt-4o|cost": Decimal("1.5225"), "h07|b|model|gpt-4o|unpriced": -1,
                           "h07|b|provider|openai|cost": Decimal("1.5225"), "h07|b|provider|openai|unpriced": -1}
    cheaper = fact(seq=10, cost="0.5").changed(fact(seq=10, cost="1.5225", sign=-1))
    assert view([cheaper], "model", "gpt-4o")["cost"] == Decimal("-1.0225")


def test_a_change_to_nothing_the_rollup_counts_is_no_fact():
    assert fact(seq=4, cost="0.01").changed(fact(seq=4, cost="0.010", sign=-1)) is None
    broken = fact(seq=5, cost="1").changed(fact(seq=5, cost="-3", sign=-1))
    assert "before the change: cost_usd" in broken.unfoldable()


def test_an_unpriced_model_reads_null_cost_never_zero_and_is_counted():
    facts = [fact(seq=1, model="my-private-model", cost=None), fact(seq=2, model="my-private-model", cost=None),
             fact(seq=3, model="gpt-4o", cost="0.01"), fact(seq=4, model="gpt-4o", cost=None)]
    item = view(facts, "account", "acme")
    summary = agg.summarize([(item, "")])
    assert summary["by_model"]["my-private-model"]["cost_usd"] is None
    assert summary["by_model"]["my-private-model"]["unpriced_calls"] == 2
    assert summary["by_model"]["gpt-4o"] == summary["by_model"]["gpt-4o"] | {"cost_usd": "0.01", "unpriced_calls": 1}
    assert summary["cost_usd"] == "0.01" and summary["unpriced_calls"] == 3
    only_private = agg.summarize([(item, "")], part=("model", "my-private-model"))
    assert only_private["cost_usd"] is None and only_private["unpriced_calls"] == 2
    nothing_priced = view(facts[:2], "account", "acme")
    assert agg.summarize([(nothing_priced, "")])["cost_usd"] is None
    assert agg.daily_groups([nothing_priced], "model")[0]["groups"]["my-private-model"]["cost_usd"] is None
    assert agg.Totals().view()["cost_usd"] == "0"  # no calls: nothing unknown
