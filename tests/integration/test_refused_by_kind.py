"""Refusals are a counter like the others in the `by_kind` index (issue #25, item 1): all traffic's split by
provider, model or any group of whole days counts them where they belong, not in `(none)`; and aggregates written
before refusals were told apart (they counted them as errors) are put right by `recalculate`."""
import json
from dataclasses import replace
from datetime import datetime, time, timedelta, timezone
from decimal import Decimal

from chalicelib.clock import utc_today
from chalicelib.ledger import calllog
from chalicelib.rollup import rebuild, store
from chalicelib.rollup.fold import Fact, fold
from tests.conftest import ADMIN_KEY
from tests.integration.helpers import roll_up


def get(gateway, path):
    response = gateway.client.http.get(path, headers={"X-Dashboard-Key": ADMIN_KEY})
    assert response.status_code == 200, response.body
    return json.loads(response.body)


def log_calls(at):
    """5 answered calls and 3 budget 429s (refused before anything went upstream), all on openai / gpt-4o."""
    for n in range(8):
        refused = n >= 5
        record = calllog.new_record(
            f"call_{n:06d}", at + timedelta(seconds=n), "acme", provider="openai", endpoint="chat/completions",
            model="gpt-4o", key_id="key-acme", operation="chat", status=429 if refused else 200,
            error_type="budget_exceeded" if refused else None, upstream_reached=not refused,
            input_tokens=0 if refused else 100, output_tokens=0 if refused else 10,
            cost_usd=Decimal(0) if refused else Decimal("0.001"), priced=True, latency_ms=300)
        assert calllog.write(record) == "written"


def split_refusals(gateway, query):
    """(whole's calls, errors, refused) and each group's refused, of every index-read split of whole days."""
    summary = get(gateway, f"/api/summary?{query}")
    splits = {f"by_{dim}": {name: row["refused"] for name, row in summary[f"by_{dim}"].items()}
              for dim in ("provider", "model")}
    for group_by in ("provider", "model", "account", "key", "operation"):
        [day] = get(gateway, f"/api/usage/daily?{query}&group_by={group_by}")["daily"]
        splits[group_by] = {name: group["refused"] for name, group in day["groups"].items()}
    return (summary["calls"], summary["errors"], summary["refused"]), splits


def test_all_traffics_splits_of_whole_days_count_refusals_in_their_group(gateway):
    now = datetime.now(timezone.utc).replace(microsecond=0)
    log_calls(now - timedelta(minutes=5))
    roll_up()
    whole, splits = split_refusals(gateway, "days=1")
    assert whole == (8, 0, 3)
    want = {"by_provider": {"openai": 3}, "by_model": {"gpt-4o": 3}, "provider": {"openai": 3},
            "model": {"gpt-4o": 3}, "account": {"acme": 3}, "key": {"key-acme": 3}, "operation": {"chat": 3}}
    assert splits == want  # no `(none)` row made of the refusals the index did not carry
    for query in ("hours=1", "days=1&account=acme", "hours=1&account=acme"):  # items' own splits read the same
        summary = get(gateway, f"/api/summary?{query}")
        assert summary["refused"] == 3, query
        for dim, value in (("provider", "openai"), ("model", "gpt-4o")):
            assert {name: row["refused"] for name, row in summary[f"by_{dim}"].items()} == {value: 3}, (query, dim)
    for query in ("days=1", "days=1&account=acme"):
        assert [(u["user"], u["refused"]) for u in get(gateway, f"/api/usage/users?{query}")["users"]] == [
            ("(none)", 3)], query
    points = get(gateway, "/api/usage/timeseries?hours=2&interval=1h")["points"]
    assert sum(p["by_provider"].get("openai", {}).get("refused", 0) for p in points) == 3
    assert not any("(none)" in p["by_provider"] for p in points)


def test_recalculate_moves_refusals_counted_as_errors_by_older_aggregates(gateway):
    """Before refusals were told apart, the fold counted a budget 429 as an error: such a day reads 3 errors and
    0 refused until `recalculate` rebuilds it from the call log; `reconcile` names the drift first."""
    closed = utc_today() - timedelta(days=2)  # closed for a rebuild at any hour (rollup/rebuild.py: 00:25 UTC after)
    day = closed.isoformat()
    log_calls(datetime.combine(closed, time(12), tzinfo=timezone.utc))
    facts = [Fact.from_call(call) for call in calllog.calls_of_day(day, newest_first=False)]
    assert sum(fact.refused for fact in facts) == 3
    store.replace_day(day, fold([replace(fact, refused=False) for fact in facts]))  # as the older fold wrote it
    query = f"start={day}&end={day}"
    whole, splits = split_refusals(gateway, query)
    assert whole == (8, 3, 0) and splits["by_provider"] == {"openai": 0}
    drift = rebuild.reconcile({"day": day})["drift"]
    assert {(d["scope"], d["counter"], d["aggregates"], d["call_log"]) for d in drift if d["scope"] == "global"} == {
        ("global", "errors", "3", "0"), ("global", "refused", "0", "3")}

    assert rebuild.recalculate({"from": day, "to": day})["calls"] == 8
    whole, splits = split_refusals(gateway, query)
    assert whole == (8, 0, 3)
    assert splits["by_provider"] == {"openai": 3} and splits["model"] == {"gpt-4o": 3}
    assert get(gateway, f"/api/summary?{query}")["refused_by_type"] == {"budget_exceeded": 3}
    assert rebuild.reconcile({"day": day})["drift"] == []
