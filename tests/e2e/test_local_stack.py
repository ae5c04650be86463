"""`make run` as a user meets it: built-in mock upstream, a printed demo key, state kept across a restart."""
import time

import httpx
import openai

from tests.conftest import ADMIN_KEY
from tests.e2e.conftest import RunningStack


def test_defaults_serve_the_sdk_and_survive_a_restart(tmp_path):
    data_dir = tmp_path / "data"
    first = RunningStack({}, data_dir).start()
    try:
        demo_key = first.banner_value("Demo key")
        assert first.banner_value("Admin key") and "curl" in first.output.read_text()
        client = openai.OpenAI(base_url=f"{first.url}/openai/v1", api_key=demo_key)
        answer = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        assert "mock answer" in answer.choices[0].message.content
        [call] = first.calls()
        assert call["account"] == "demo" and call["priced"] and call["input_tokens"] > 0
        assert httpx.get(f"{first.url}/health").json()["status"] == "healthy"
        assert summary_calls(first, expect=1) == 1
    finally:
        output = first.stop()
    assert "saving state" in output

    second = RunningStack({}, data_dir, port=first.port).start()
    try:
        assert second.banner_value("Demo key") == demo_key  # same key after a restart
        assert [c["call_id"] for c in second.calls()] == [call["call_id"]]
        client = openai.OpenAI(base_url=f"{second.url}/openai/v1", api_key=demo_key)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "again"}])
        assert len(second.calls()) == 2
        # restored items reach the new stream too: the pump must not count them again
        assert summary_calls(second, expect=2) == 2
    finally:
        second.stop()


def summary_calls(stack, expect, seconds=10):
    deadline = time.monotonic() + seconds
    while True:
        calls = httpx.get(f"{stack.url}/api/summary?hours=24", headers={"X-Dashboard-Key": ADMIN_KEY}).json()["calls"]
        if calls == expect or time.monotonic() > deadline:
            time.sleep(1.5)  # and it stays there once the pump has caught up
            return httpx.get(f"{stack.url}/api/summary?hours=24",
                             headers={"X-Dashboard-Key": ADMIN_KEY}).json()["calls"]
        time.sleep(0.2)
