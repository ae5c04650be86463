"""The capacity model (bench/capacity.py): DynamoDB's size and write-unit rules, and a tiny shape replayed."""
from __future__ import annotations

from decimal import Decimal
from types import SimpleNamespace

from bench import capacity
from bench.capacity import Item, Shape, apply_update, item_bytes, number_bytes, write_units


def test_item_size_follows_dynamodbs_rule_on_a_hand_computed_item():
    item = {
        "pk": "model#gpt-4o",  # name 2 + value 12
        "day": "2026-11-26",  # 3 + 10
        "calls": Decimal(1500),  # 5 + 2: significant digits "15" → (2 + 1) // 2 + 1
        "cost": Decimal("0.00033"),  # 4 + 2: "33"
        "in": 123456,  # 2 + 4: six digits → (6 + 1) // 2 + 1
        "hw|AAAAAAAAAAAA": 123456789012345678901,  # 15 + 12: a 21-digit stream sequence number
    }
    assert [number_bytes(v) for v in (1500, Decimal("0.00033"), 123456, 123456789012345678901)] == [2, 2, 4, 12]
    assert item_bytes(item) == (2 + 12) + (3 + 10) + (5 + 2) + (4 + 2) + (2 + 4) + (15 + 12) == 73


def test_write_units_bill_the_larger_of_the_sizes_before_and_after():
    assert write_units(0, 10) == 1  # a new small item: one unit at least
    assert write_units(100, 1025) == 2  # grown past 1 KB
    assert write_units(3000, 100) == 3  # shrunk: billed on the size before
    item = Item({"pk": "global#all", "day": "2026-11-26", "big": "x" * 2000})
    before = item.size
    apply_update(item, {"Key": {"pk": {"S": "global#all"}, "day": {"S": "2026-11-26"}},
                        "UpdateExpression": "REMOVE #a", "ExpressionAttributeNames": {"#a": "big"}})
    assert item.size == item_bytes(item.attrs) < 1024 < before
    assert write_units(before, item.size) == 2


def _call(**fields):
    base = dict(account="acme", ts="2026-11-26T07:00:01.000000Z", key_id="k1", provider="openai", model="gpt-4o-mini",
                operation=None, team=None, user=None, status=200, error_type=None, input_tokens=1000,
                cache_read_tokens=0, cache_write_tokens=0, output_tokens=300, reasoning_tokens=0,
                cost_usd=Decimal("0.00033"), latency_ms=2000)
    return SimpleNamespace(**{**base, **fields})


def test_the_real_update_request_applies_to_an_item_whose_size_is_kept():
    from chalicelib.rollup import layout, store
    from chalicelib.rollup.fold import Fact, fold

    facts = [Fact.from_call(_call(), 1, 10**20 + 1, "stream"), Fact.from_call(_call(), 1, 10**20 + 2, "stream")]
    deltas = fold(facts)
    key = next(k for k in deltas if k.kind == "account" and k.is_day_item)
    item = Item()
    for _ in range(2):  # the second time, the counters add up and the lane's mark moves on
        apply_update(item, store.update_request(key, deltas[key]))
    assert item.attrs["calls"] == 4 and item.attrs["cost"] == Decimal("0.00132")
    assert item.attrs[layout.watermark(layout.lane_of("stream", "acme"))] == 10**20 + 2
    assert item.attrs["pk"] == key.pk and item.attrs["day"] == key.sort_key
    assert item.size == item_bytes(item.attrs)


def test_a_tiny_shape_reports_items_partition_keys_and_index_keys():
    shape = Shape(calls_per_s=200, accounts=20, models=5, users=200, teams_per_account=2, team_names=5,
                  keys_per_account=2, operations=3, stream_shards=2, batch=20)
    result = capacity.simulate(shape, seconds=1)
    assert result.calls % shape.batch == 0 and result.update_items > 0  # whole batches only
    assert round(sum(load.writes_per_s for load in result.items) * result.seconds) == result.update_items
    assert all(load.units >= 1 and load.size >= load.sim_size > 0 for load in result.items)
    pks = {key.pk for key in result.keys if key.table == "aggregates"}
    assert "global#all" in pks and "account#account-0000" in pks
    index = next(key for key in result.keys if key.table == "by_kind" and key.pk == "global")
    assert index.heaviest.members == 1  # each write shard's day is its own index entry, so entries can split
    assert index.items == len({load.sort_key for load in result.items
                               if load.pk == "global#all" and load.sort_key[:1].isdigit()})
    assert all(key.partitions >= 1 for key in result.keys)
    assert result.wcu_per_call >= result.update_items_per_call  # a write is one unit at least
    table = capacity.rows([result])
    assert all("|" not in cell.replace("\\|", "") for row in table for cell in row)  # sort keys hold `|`
    labels = {row[1] for row in table}
    assert {"hottest item", "hottest index key", "hottest partition key", "call log index", "largest item",
            "per call", "verdict"} <= labels


def test_the_call_log_index_is_modelled_with_the_shards_the_call_log_writes():
    from chalicelib.ledger import calllog

    assert capacity.DAY_SHARDS == calllog.DAY_SHARDS


def test_an_item_is_sized_at_the_end_of_its_period_with_the_lanes_that_reach_it():
    from chalicelib.rollup.fold import AggregateKey
    from chalicelib.rollup.layout import Part

    day, hour = AggregateKey("account", "account-0003", "2026-11-26"), Part("h", 7)
    assert capacity.period_of(day) == 86_400
    assert capacity.period_of(AggregateKey("account", "account-0003", "2026-11-26", hour)) == 3_600
    traffic = capacity.Traffic(Shape(calls_per_s=100, accounts=10, models=3, users=10, stream_shards=1))
    assert round(traffic.expected_lanes(day, 86_400)) == 1  # an account's items: its own lane only
    everything = AggregateKey("global", "all", "2026-11-26")  # unsharded: every account's lane, over a day
    assert round(traffic.expected_lanes(everything, 86_400)) == 10


def test_batches_are_what_the_deployed_stream_mapping_hands_the_rollup():
    """BatchSize and MaximumBatchingWindowInSeconds come from infra/resources.json; a batch is cut at the first of
    them or at Lambda's 6 MB payload, sized by a real call's stream record."""
    import json
    import math

    from tests.conftest import ROOT

    resources = json.loads((ROOT / "infra" / "resources.json").read_text())
    event = resources["Resources"]["RollupCalls"]["Properties"]["Events"]["RollupCallsDynamodbEventSource"]
    mapping = capacity.stream_mapping()
    assert (mapping.batch_size, mapping.window_s, mapping.parallelization) == (
        event["Properties"]["BatchSize"], event["Properties"]["MaximumBatchingWindowInSeconds"],
        event["Properties"]["ParallelizationFactor"])
    assert 1_000 < mapping.record_bytes < 4_000 and mapping.payload_records == 6 * 1024 * 1024 // mapping.record_bytes
    busy, quiet = Shape(calls_per_s=10_000), Shape(calls_per_s=40, stream_shards=4)
    assert busy.streams == busy.shards * mapping.parallelization  # a shard's batches split by partition key
    assert busy.records_per_batch == min(mapping.batch_size, math.floor(10_000 / busy.streams * mapping.window_s),
                                         mapping.payload_records)
    assert quiet.records_per_batch == math.floor(40 / quiet.streams * mapping.window_s)  # the window closes first
    assert quiet.batch_fill_s == mapping.window_s and busy.batch_fill_s <= mapping.window_s
    detail = resources["Resources"]["RollupDetails"]["Properties"]["Events"]["RollupDetailsDynamodbEventSource"]
    assert capacity.stream_mapping("detail").window_s == detail["Properties"]["MaximumBatchingWindowInSeconds"]
    assert capacity.stream_mapping("summary") == mapping  # rollup_calls folds the summary's items where apart
    assert Shape(calls_per_s=1_000, tier="detail").records_per_batch > Shape(calls_per_s=1_000).records_per_batch


def test_each_tier_replays_only_its_own_items_and_their_units_add_up():
    """rollup_calls folds all traffic's items, rollup_details every other scope's: a tier's replay writes only its
    items, and the rollup's units a call are the two tiers' sum."""
    small = dict(calls_per_s=200, accounts=20, models=5, users=200, teams_per_account=2, team_names=5,
                 keys_per_account=2, operations=3, stream_shards=4, batch=50)
    summary, detail = (capacity.simulate(Shape(**small, tier=tier), seconds=1) for tier in ("summary", "detail"))
    assert {load.pk.split("#")[0] for load in summary.items} == {"global", "provider"}
    assert not {"global", "provider"} & {load.pk.split("#")[0] for load in detail.items}
    both = capacity.Rollup([summary, detail])
    assert both.wcu_per_call == summary.wcu_per_call + detail.wcu_per_call
    rows = capacity.rows([both])
    assert {"per call, every tier", "rollup ÷ call log"} <= {row[1] for row in rows}
    assert [row[0] for row in rows if row[1] == "freshness p99 (modelled)"] == ["200/s summary", "200/s detail"]


def test_replaying_some_stream_shards_scales_the_scopes_every_shard_writes():
    shape = Shape(calls_per_s=200, accounts=20, models=5, users=200, teams_per_account=2, team_names=5,
                  keys_per_account=2, operations=3, stream_shards=4, batch=50)
    result = capacity.simulate(shape, seconds=0.25)  # 50 calls: one batch of one shard
    assert result.scale == 4 and result.calls == 50
    assert result.seconds == 50 * 4 / 200  # the replayed shard's calls arrive at a quarter of the shape's rate
    own = next(load for load in result.items if load.pk.startswith("account#"))
    every = next(load for load in result.items if load.pk == "global#all")
    assert not own.shared and every.shared
    assert own.writes_per_s == 1 / result.seconds and every.writes_per_s == 4 / result.seconds
    assert abs(result.table_wcu_per_call - sum(l.wcu_per_s / (4 if l.shared else 1) for l in result.items)
               * result.seconds / 50) < 1e-9
    rows = capacity.rows([result])
    assert {"rollup ÷ call log", "freshness p99 (modelled)"} <= {row[1] for row in rows}
