"""Every grouping adds up to the total (issue #25, items 2 and 3): random calls folded by the rollup's pure fold,
read by the real report functions over a store that serves what the fold wrote; every split of every report
(summary, daily, timeseries, users, models) sums to the report's totals in calls, tokens (each kind) and cost,
and a group's `tokens` is always the object by kind."""
from contextlib import ExitStack
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from types import SimpleNamespace
from unittest import mock

from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib import clock
from chalicelib.ledger.auth import ADMIN
from chalicelib.query import Query
from chalicelib.reports import aggregates as agg
from chalicelib.reports import people, usage
from chalicelib.rollup.fold import Fact, fold
from chalicelib.rollup.layout import DAY_BREAKDOWNS, INDEXED_COUNTERS, day_views

DAY = datetime(2026, 11, 20, tzinfo=timezone.utc)
NOW = DAY + timedelta(hours=21)
TOKEN_FIELDS = ("input_tokens", "cache_read_tokens", "cache_write_tokens", "output_tokens", "reasoning_tokens")
MODELS = {"openai": ["gpt-4o", "gpt-4o-mini"], "anthropic": ["claude-haiku-4-5"], "groq": ["llama-3.3"]}


@st.composite
def calls(draw):
    provider = draw(st.sampled_from(sorted(MODELS)))
    refused = draw(st.booleans()) and draw(st.booleans())
    status = (draw(st.sampled_from([429, 400, 401])) if refused
              else draw(st.sampled_from([200, 200, 200, 500, 429])))
    return SimpleNamespace(
        ts=(DAY + timedelta(minutes=draw(st.integers(0, 20 * 60 - 1)), seconds=draw(st.integers(0, 59))))
        .strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        account=draw(st.sampled_from(["acme", "globex"])), key_id=draw(st.sampled_from(["k1", "k2"])),
        provider=provider, model=draw(st.none() | st.sampled_from(MODELS[provider])),
        operation=draw(st.none() | st.sampled_from(["chat", "summarise"])),
        team=draw(st.none() | st.sampled_from(["ml", "web"])), user=draw(st.none() | st.sampled_from(["alice", "bob"])),
        session=draw(st.none() | st.sampled_from(["s1", "s2"])), status=status,
        error_type=(None if status < 400 else
                    {429: "budget_exceeded", 400: "invalid_request_error", 401: "authentication_error"}[status]
                    if refused else "server_error"),
        upstream_reached=not refused,
        input_tokens=draw(st.integers(0, 5000)), cache_read_tokens=draw(st.integers(0, 100)),
        cache_write_tokens=draw(st.integers(0, 100)), output_tokens=draw(st.integers(0, 900)),
        reasoning_tokens=draw(st.integers(0, 50)),
        cost_usd=draw(st.none() | st.decimals(0, 5, places=6)), latency_ms=draw(st.integers(1, 60_000)),
        stream=draw(st.booleans()), ttft_ms=draw(st.integers(1, 500)))


class FoldedStore:
    """What rollup/store.py would return after these calls were rolled up: day views of each scope (every family:
    reports pick the counters they name) and the `by_kind` index's entries (day counters, shards summed)."""

    def __init__(self, records):
        self.deltas = fold([Fact.from_call(call, seq=n) for n, call in enumerate(records)])

    def query_days(self, scope, first_day, last_day, names=None, max_requests=3, parts=None, since=None,
                   five_minutes_until=None):
        return day_views({"day": key.sort_key, **delta.nonzero()} for key, delta in self.deltas.items()
                         if key.pk == scope.pk and key.day and first_day <= key.day <= last_day)

    def query_kind(self, kind, first_day, last_day, max_requests=3):
        entries = {}
        for key, delta in self.deltas.items():
            if key.kind == kind and key.is_day_item and first_day <= key.day <= last_day:
                entry = entries.setdefault(key.scope_id, {"day": key.day, "day_id": f"{key.day}#{key.scope_id}"})
                for name in INDEXED_COUNTERS:
                    entry[name] = entry.get(name, 0) + delta.counters.get(name, 0)
        return list(entries.values())


def _sums(groups):
    out = {"calls": 0, "cost": Decimal(0), **{field: 0 for field in (*TOKEN_FIELDS, "total")}}
    for group in groups:
        assert set(group["tokens"]) == {*TOKEN_FIELDS, "total"}, group  # one shape: the object by kind
        out["calls"] += group["calls"]
        out["cost"] += Decimal(group["cost_usd"] or 0)
        for field in (*TOKEN_FIELDS, "total"):
            out[field] += group["tokens"][field]
    return out


def _adds_up(groups, whole, where):
    want = _sums([whole])
    assert _sums(groups) == want, where


def _reports(store):
    """(where, whole, groups) of every split of every report over the folded calls."""
    admin = ADMIN
    for filters in ({}, {"account": "acme"}, {"team": "ml"}):
        for period in ({"hours": "24"}, {"days": "1"}):
            summary = usage.summary(admin, Query({**period, **filters}))
            for dim in ("provider", "model"):
                if summary[f"by_{dim}"]:
                    yield f"summary {period} {filters} by {dim}", summary, summary[f"by_{dim}"].values()
        if "team" not in filters:
            for point in usage.timeseries(admin, Query({"hours": "24", "interval": "1h", **filters}))["points"]:
                if "by_provider" in point:
                    yield f"timeseries {filters} {point['ts']}", point, point["by_provider"].values()
        models = usage.models(admin, Query({"hours": "24", **filters}))["models"]
        yield f"models {filters}", usage.summary(admin, Query({"hours": "24", **filters})), models
        users = people.users(admin, Query({"days": "1", **filters}))["users"]
        yield f"users {filters}", usage.summary(admin, Query({"days": "1", **filters})), users
        kind = "account" if "account" in filters else "team" if "team" in filters else None
        for group_by in (DAY_BREAKDOWNS[kind] if kind else usage.GROUPS):
            for day in usage.daily(admin, Query({"days": "1", "group_by": group_by, **filters}))["daily"]:
                yield f"daily {filters} by {group_by}", day, day["groups"].values()


@settings(max_examples=60)
@given(st.lists(calls(), min_size=1, max_size=40))
def test_every_grouping_of_every_report_adds_up_to_its_total(records):
    store = FoldedStore(records)
    with ExitStack() as patches:
        for name in ("query_days", "query_kind"):
            patches.enter_context(mock.patch(f"chalicelib.rollup.store.{name}", getattr(store, name)))
        patches.enter_context(mock.patch.object(clock, "now", lambda: NOW))
        checked = 0
        for where, whole, groups in _reports(store):
            _adds_up(list(groups), whole, where)
            checked += 1
    assert checked > 20


def test_calls_without_a_user_team_or_operation_are_the_none_group():
    """The report: 42 calls by model, 30 by operation. The 12 without an operation are `(none)`."""
    records = [SimpleNamespace(
        ts=(DAY + timedelta(minutes=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), account="acme", key_id="k1",
        provider="openai", model="gpt-4o", operation="chat" if n < 30 else None, team="ml" if n < 30 else None,
        user="alice" if n < 30 else None, session=None, status=200, error_type=None, upstream_reached=True,
        input_tokens=10, cache_read_tokens=0, cache_write_tokens=0, output_tokens=1, reasoning_tokens=0,
        cost_usd=Decimal("0.01"), latency_ms=100, stream=False, ttft_ms=None) for n in range(42)]
    store = FoldedStore(records)
    with mock.patch("chalicelib.rollup.store.query_days", store.query_days), \
            mock.patch("chalicelib.rollup.store.query_kind", store.query_kind), \
            mock.patch.object(clock, "now", lambda: NOW):
        for filters in ({}, {"account": "acme"}):
            for group_by in ("model", "operation", "team", "user"):
                [day] = usage.daily(ADMIN, Query({"days": "1", "group_by": group_by, **filters}))["daily"]
                calls = {name: group["calls"] for name, group in day["groups"].items()}
                assert sum(calls.values()) == 42 and calls.get("(none)", 0) == (0 if group_by == "model" else 12)
        users = people.users(ADMIN, Query({"days": "1"}))["users"]
        assert [(u["user"], u["calls"]) for u in users] == [("alice", 30), ("(none)", 12)]


def test_histogram_counters_of_a_models_hour_never_read_as_models():
    """`/api/summary?hours=24` listed `gpt-4o|lat` and `gpt-4o|ttft` among the models."""
    records = [SimpleNamespace(
        ts=(DAY + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), account="acme", key_id="k1",
        provider="openai", model="gpt-4o", operation=None, team=None, user=None, session=None, status=200,
        error_type=None, upstream_reached=True, input_tokens=10, cache_read_tokens=0, cache_write_tokens=0,
        output_tokens=1, reasoning_tokens=0, cost_usd=Decimal("0.01"), latency_ms=100, stream=True, ttft_ms=40)]
    store = FoldedStore(records)
    with mock.patch("chalicelib.rollup.store.query_days", store.query_days), \
            mock.patch.object(clock, "now", lambda: NOW):
        for filters in ({}, {"account": "acme"}):
            summary = usage.summary(ADMIN, Query({"hours": "24", **filters}))
            assert list(summary["by_model"]) == ["gpt-4o"], summary["by_model"]
            assert summary["by_model"]["gpt-4o"]["tokens"]["total"] == 11
    assert agg.breakdown([{"b|model|gpt-4o|lat|3": 1, "b|model|gpt-4o|calls": 1}], None, "model").keys() == {"gpt-4o"}
