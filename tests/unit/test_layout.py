"""The aggregate layout: every key and counter name the rollup writes and the readers ask for, spelled once."""
from __future__ import annotations

from datetime import datetime, timezone

from chalicelib.rollup import layout
from chalicelib.rollup.layout import Scope


def test_a_scope_names_its_item_and_its_index_entry():
    scope = Scope("model", "gpt-4o")
    assert (scope.pk, scope.day_id("2026-11-26")) == ("model#gpt-4o", "2026-11-26#gpt-4o")
    assert Scope.everything().pk == "global#all" and Scope.everything().is_everything
    assert Scope.of_pk("account#acme") == Scope("account", "acme")
    assert layout.scope_id_of_day_id("2026-11-26#gpt-4o") == "gpt-4o"


def test_a_long_name_keys_its_item_by_its_short_form_and_the_short_form_is_stable():
    long = "m" * 2100
    scope = Scope("model", long)
    assert len(scope.pk.encode()) <= len("model#") + layout.NAME_BYTES_MAX
    assert scope.pk == Scope("model", scope.stored_id).pk  # a short form is its own short form


def test_counter_names_by_resolution():
    at = datetime(2026, 11, 26, 7, 9, 59, tzinfo=timezone.utc)
    assert layout.hour_prefix(at) == "h07|" and layout.five_minute_prefix(at) == "m0705|"
    assert layout.breakdown_head(layout.DAY, "model") == "b|model|"
    assert layout.breakdown_head(layout.hour_prefix(at), "model", "gpt-4o") == "h07|b|model|gpt-4o|"
    assert layout.split_breakdown("gpt-4o|cost") == ("gpt-4o", "cost")
    assert layout.latency_counter("m0705|", 12) == "m0705|lat|12"
    assert layout.error_counter("timeout") == "err|timeout"
    assert layout.watermark(layout.lane_of("stream-1", "acme")) == layout.watermark("stream-1|acme")
    assert len(layout.watermark("x" * 128)) == len("hw|") + 12  # short: a hot item holds many lanes' marks


def test_each_counter_has_one_family_of_small_items_and_reads_back_under_its_day_view_name():
    assert [layout.split_view_name(n) for n in ("calls", "lat|3", "err|x", "h07|calls", "m0705|lat|2",
                                                "h07|b|provider|openai|cost", "h07|b|model|gpt|tok", "b|key|k|cost")] == [
        ("day", "calls"), ("day", "lat|3"), ("day", "err|x"), ("h", "calls"), ("m", "lat|2"),
        ("h", "b|provider|openai|cost"), ("bh|model", "b|model|gpt|tok"), ("b|key", "b|key|k|cost")]
    stored = [{"day": "2026-11-26~03", "calls": 1, "hw|abc": 9}, {"day": "2026-11-26~07", "calls": 2},
              {"day": "h|2026-11-26T07~03", "calls": 3}, {"day": "m|2026-11-26T0705", "calls": 4},
              {"day": "bh|model|2026-11-26T07|gpt", "b|model|gpt|tok": 5}, {"day": "2026-11-27", "calls": 6}]
    assert layout.day_views(stored) == [
        {"day": "2026-11-26", "calls": 3, "h07|calls": 3, "m0705|calls": 4, "h07|b|model|gpt|tok": 5},
        {"day": "2026-11-27", "calls": 6}]


def test_a_family_over_days_is_one_contiguous_range_of_sort_keys_that_holds_no_other_family():
    keys = ["2026-11-25", "2026-11-26~15", "b|model|2026-11-26|x~01", "b|provider|2026-11-26|y",
            "bh|model|2026-11-26T07|x", "h|2026-11-26T23~02", "m|2026-11-26T2355", "2026-11-27"]
    def inside(family):
        low, high = layout.sort_key_range(family, "2026-11-26", "2026-11-26")
        return [k for k in keys if low <= k <= high]
    assert inside("day") == ["2026-11-26~15"] and inside("h") == ["h|2026-11-26T23~02"]
    assert inside("m") == ["m|2026-11-26T2355"] and inside("b|model") == ["b|model|2026-11-26|x~01"]
    assert inside("bh|model") == ["bh|model|2026-11-26T07|x"]


def test_only_scopes_many_accounts_write_are_sharded_and_a_lane_always_writes_the_same_shard():
    assert layout.shard_of("account", "s|acme") is None and layout.shard_of("user", "s|acme") is None
    shards = {layout.shard_of("global", f"s|acct-{n}") for n in range(200)}
    assert shards == set(range(layout.SHARDS))
    assert layout.shard_of("model", "s|acme") == layout.shard_of("model", "s|acme")
