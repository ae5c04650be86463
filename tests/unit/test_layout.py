"""The aggregate layout: every key and counter name the rollup writes and the readers ask for, spelled once."""
from __future__ import annotations

from datetime import datetime

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
    at = datetime(2026, 11, 26, 7, 9, 59)
    assert layout.hour_prefix(at) == "h07|" and layout.five_minute_prefix(at) == "m0705|"
    assert layout.breakdown_head(layout.DAY, "model") == "b|model|"
    assert layout.breakdown_head(layout.hour_prefix(at), "model", "gpt-4o") == "h07|b|model|gpt-4o|"
    assert layout.split_breakdown("gpt-4o|cost") == ("gpt-4o", "cost")
    assert layout.latency_counter("m0705|", 12) == "m0705|lat|12"
    assert layout.error_counter("timeout") == "err|timeout"
    assert layout.split_dim_entry(layout.dim_entry("team", "a|b")) == ("team", "a|b")
    assert layout.watermark(layout.lane_of("stream-1", "acme")) == "hw|stream-1|acme"
