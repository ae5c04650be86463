"""A key's requests and tokens per minute: set through the admin API, counted with a conditional write per
minute window, refused with 429 and the headers the OpenAI SDK reads."""
import json
import time

from chalicelib import clock

CHAT = {"model": "gpt-4o-mini", "max_tokens": 50, "messages": [{"role": "user", "content": "hi"}]}


def _within_one_minute():
    """The checks below count within one UTC minute: start them early in one."""
    if clock.now().second >= 50:
        time.sleep(61 - clock.now().second)


def _key_id(key):
    return key.split("_")[0].removeprefix("tg-")


def test_requests_per_minute_refuse_the_call_past_the_limit_in_the_callers_format(gateway, upstream):
    key = gateway.new_key()
    status, view = gateway.admin("put", f"/admin/keys/{_key_id(key)}/limits", {"rpm": 2})
    assert status == 200 and view == {"key_id": _key_id(key), "rpm": 2, "tpm": None}
    _within_one_minute()
    assert [gateway.call("/openai/v1/chat/completions", CHAT, key).status_code for _ in range(2)] == [200, 200]
    refused = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert refused.status_code == 429
    assert json.loads(refused.body)["error"]["type"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    assert refused.headers["x-ratelimit-limit-requests"] == "2"
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    anthropic = gateway.call("/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                        "messages": []}, key)
    assert anthropic.status_code == 429 and json.loads(anthropic.body)["type"] == "error"
    assert len(upstream.requests) == 2
    from chalicelib.ledger import reservations
    window = reservations.rate_window("key", _key_id(key), clock.now().strftime("%Y-%m-%dT%H:%M"))
    assert window.requests == 2  # a refused call counts nothing
    other = gateway.new_key()
    assert gateway.call("/openai/v1/chat/completions", CHAT, other).status_code == 200


def test_tokens_per_minute_count_the_input_bytes_and_the_output_cap(gateway, upstream):
    key = gateway.new_key()
    one_call = len(json.dumps(CHAT)) + CHAT["max_tokens"]
    assert gateway.admin("put", f"/admin/keys/{_key_id(key)}/limits", {"tpm": one_call * 2})[0] == 200
    _within_one_minute()
    assert gateway.call("/openai/v1/chat/completions", CHAT, key).status_code == 200
    assert gateway.call("/openai/v1/chat/completions", CHAT, key).status_code == 200
    refused = gateway.call("/openai/v1/chat/completions", CHAT, key)
    assert refused.status_code == 429 and refused.headers["x-ratelimit-limit-tokens"] == str(one_call * 2)
    assert gateway.admin("put", f"/admin/keys/{_key_id(key)}/limits", {"tpm": None})[0] == 200
    from chalicelib.ledger.auth import key_cache
    key_cache.clear()
    assert gateway.call("/openai/v1/chat/completions", CHAT, key).status_code == 200


def test_limits_are_checked(gateway):
    key = gateway.new_key()
    path = f"/admin/keys/{_key_id(key)}/limits"
    for bad in ({"rpm": "10"}, {"rpm": 0}, {"tpm": 1.5}, {"rpm": True}, {}, {"burst": 3}, [1]):
        status, answer = gateway.admin("put", path, bad)
        assert status == 400, bad
    assert gateway.admin("put", "/admin/keys/nope/limits", {"rpm": 5})[0] == 404


def _minute():
    return clock.now().strftime("%Y-%m-%dT%H:%M")


def test_an_accounts_requests_per_minute_hold_across_its_keys(gateway, upstream):
    first, second, elsewhere = gateway.new_key(), gateway.new_key(), gateway.new_key(account="globex")
    status, view = gateway.admin("put", "/admin/limits/account/acme", {"rpm": 3})
    assert status == 200 and view == {"scope": "account", "scope_id": "acme", "rpm": 3, "tpm": None}
    _within_one_minute()
    statuses = [gateway.call("/openai/v1/chat/completions", CHAT, key).status_code
                for key in (first, second, first, second)]
    assert statuses == [200, 200, 200, 429]
    refused = gateway.call("/anthropic/v1/messages", {"model": "claude-haiku-4-5", "max_tokens": 5,
                                                      "messages": []}, first)
    assert refused.status_code == 429 and json.loads(refused.body)["type"] == "error"
    assert refused.headers["x-ratelimit-limit-requests"] == "3" and 1 <= int(refused.headers["Retry-After"]) <= 60
    assert "account 'acme'" in json.loads(refused.body)["error"]["message"]
    assert gateway.call("/openai/v1/chat/completions", CHAT, elsewhere).status_code == 200
    from chalicelib.ledger import reservations
    assert reservations.rate_window("account", "acme", _minute()).requests == 3
    assert len(upstream.requests) == 4


def test_a_teams_tokens_per_minute_count_every_key_of_the_team(gateway, upstream):
    ml, ml_elsewhere, other_team = gateway.new_key(team="ml"), gateway.new_key(account="globex", team="ml"), \
        gateway.new_key(team="web")
    one_call = len(json.dumps(CHAT)) + CHAT["max_tokens"]
    assert gateway.admin("put", "/admin/limits/team/ml", {"tpm": one_call * 2})[0] == 200
    _within_one_minute()
    assert gateway.call("/openai/v1/chat/completions", CHAT, ml).status_code == 200
    assert gateway.call("/openai/v1/chat/completions", CHAT, ml_elsewhere).status_code == 200  # as budgets name teams
    refused = gateway.call("/openai/v1/chat/completions", CHAT, ml)
    assert refused.status_code == 429 and refused.headers["x-ratelimit-limit-tokens"] == str(one_call * 2)
    assert refused.headers["x-ratelimit-remaining-tokens"] == "0"
    assert gateway.call("/openai/v1/chat/completions", CHAT, other_team).status_code == 200


def test_key_account_team_limits_and_a_hard_budget_are_one_transaction_all_or_nothing(gateway, upstream, aws_calls):
    """Every counter and hold of a call in one TransactWriteItems before upstream; a refusal by one writes none."""
    from chalicelib.ledger import reservations
    from tests.integration.test_budget_holds import hard_budget, today_ledger

    key = gateway.new_key(team="ml")
    assert gateway.admin("put", f"/admin/keys/{_key_id(key)}/limits", {"rpm": 100})[0] == 200
    assert gateway.admin("put", "/admin/limits/account/acme", {"rpm": 100, "tpm": 10 ** 6})[0] == 200
    assert gateway.admin("put", "/admin/limits/team/ml", {"rpm": 2})[0] == 200
    hard_budget(gateway, "acme-daily", 1)
    _within_one_minute()
    assert gateway.call("/openai/v1/chat/completions", CHAT, key).status_code == 200  # warms the caches
    aws_calls.clear()
    assert gateway.call("/openai/v1/chat/completions", CHAT, key).status_code == 200
    assert aws_calls == ["TransactWriteItems", "TransactWriteItems"]  # admission, then the record with its settlement
    refused = gateway.call("/openai/v1/chat/completions", CHAT, key)  # the team's third: no room
    assert refused.status_code == 429 and "team 'ml'" in json.loads(refused.body)["error"]["message"]
    minute = _minute()
    counts = [reservations.rate_window(scope, scope_id, minute).requests
              for scope, scope_id in (("key", _key_id(key)), ("account", "acme"), ("team", "ml"))]
    assert counts == [2, 2, 2]  # the refused call counted on none of them
    ledger = today_ledger("acme-daily")
    assert ledger.calls == 2 and ledger.held == 0 and reservations.holds_of("acme-daily") == []


def test_a_caller_without_limits_or_hard_budgets_makes_no_request_before_upstream(gateway, upstream, aws_calls):
    key = gateway.new_key(account="free", team="free-team")
    assert gateway.admin("put", "/admin/limits/account/acme", {"rpm": 5})[0] == 200  # another account's
    assert gateway.admin("put", "/admin/limits/team/ml", {"rpm": 5})[0] == 200
    gateway.call("/openai/v1/chat/completions", CHAT, key)
    aws_calls.clear()
    assert gateway.call("/openai/v1/chat/completions", CHAT, key).status_code == 200
    assert aws_calls == ["PutItem"]  # the call record, after the answer


def test_scope_limits_are_listed_cleared_deleted_and_audited(gateway):
    assert gateway.admin("put", "/admin/limits/team/ml", {"rpm": 5, "tpm": 9000})[0] == 200
    assert gateway.admin("put", "/admin/limits/account/acme", {"tpm": 100})[0] == 200
    assert gateway.admin("put", "/admin/limits/team/ml", {"tpm": None}) == (
        200, {"scope": "team", "scope_id": "ml", "rpm": 5, "tpm": None})  # a field left out is kept
    status, listed = gateway.admin("get", "/admin/limits")
    assert status == 200 and listed["limits"] == [
        {"scope": "account", "scope_id": "acme", "rpm": None, "tpm": 100},
        {"scope": "team", "scope_id": "ml", "rpm": 5, "tpm": None}]
    assert gateway.admin("put", "/admin/limits/account/acme", {"tpm": None})[0] == 200  # nothing left: gone
    assert gateway.admin("delete", "/admin/limits/team/ml")[0] == 200
    assert gateway.admin("get", "/admin/limits") == (200, {"limits": []})
    assert gateway.admin("delete", "/admin/limits/team/ml")[0] == 404
    status, trail = gateway.admin("get", "/admin/audit")
    paths = [entry["path"] for entry in trail["entries"]]
    assert "/admin/limits/team/ml" in paths and "/admin/limits/account/acme" in paths


def test_scope_limits_are_checked_and_the_field_at_fault_is_named(gateway):
    for bad, field in (({"rpm": True}, "rpm"), ({"tpm": -5}, "tpm"), ({"rpm": 1.5}, "rpm"), ({"rpm": "10"}, "rpm"),
                       ({"tpm": 10 ** 12}, "tpm"), ({"rpm": 0}, "rpm"), ({}, "rpm"), ({"burst": 3}, "rpm")):
        status, answer = gateway.admin("put", "/admin/limits/account/acme", bad)
        assert status == 400 and f"`{field}`" in answer["error"]["message"], (bad, answer)
    status, answer = gateway.admin("put", "/admin/limits/key/abc", {"rpm": 5})
    assert status == 400 and "`scope`" in answer["error"]["message"]
    status, answer = gateway.admin("put", "/admin/limits/account/" + "a" * 300, {"rpm": 5})
    assert status == 400 and "`scope_id`" in answer["error"]["message"]
    assert gateway.admin("get", "/admin/limits") == (200, {"limits": []})
    from chalicelib.reports.openapi import PATHS
    assert {"put", "delete"} <= set(PATHS["/admin/limits/{scope}/{scope_id}"])
