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
