"""Over real HTTP, what an in-process client cannot send: raw header bytes, and a stop in the middle of traffic."""
import threading
import time

import httpx

from tests.conftest import ADMIN_KEY, UPSTREAM_KEY
from tests.e2e.conftest import RunningStack

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_attribution_headers_are_utf8_and_invalid_bytes_are_refused_and_logged(stack, gateway_key, upstream):
    headers = {"Authorization": f"Bearer {gateway_key}"}
    ok = httpx.post(f"{stack.url}/openai/v1/chat/completions", json=CHAT,
                    headers={**headers, "X-Tollgate-User": "usér😀".encode()})
    bad = httpx.post(f"{stack.url}/openai/v1/chat/completions", json=CHAT,
                     headers={**headers, "X-Tollgate-User": b"\xff\xfe"})
    assert ok.status_code == 200 and bad.status_code == 400
    assert "not valid UTF-8" in bad.json()["error"]["message"]
    calls = {c["call_id"]: c for c in stack.calls(limit=20)}
    assert calls[ok.headers["x-tollgate-call-id"]]["user"] == "usér😀"
    assert calls[bad.headers["x-tollgate-call-id"]]["status"] == 400


def test_stopping_the_stack_under_traffic_loses_no_answered_call(fake_upstream, tmp_path):
    env = {"TOLLGATE_OPENAI_BASE_URL": f"{fake_upstream.url}/v1", "TOLLGATE_OPENAI_API_KEY": UPSTREAM_KEY}
    data = tmp_path / "data"
    first = RunningStack(env, data).start()
    key = first.admin("POST", "/admin/keys", json={"name": "load", "account": "load"}).json()["key"]
    answered, stop = [], threading.Event()

    def traffic():
        with httpx.Client(base_url=first.url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as client:
            while not stop.is_set():
                try:
                    response = client.post("/openai/v1/chat/completions", json=CHAT)
                except httpx.HTTPError:
                    continue  # refused while stopping: never answered, so nothing to keep
                if response.status_code == 200:
                    answered.append(response.headers["x-tollgate-call-id"])
                time.sleep(0.1)

    workers = [threading.Thread(target=traffic) for _ in range(3)]
    for worker in workers:
        worker.start()
    time.sleep(3)
    first.stop()  # SIGTERM in the middle of the traffic
    stop.set()
    for worker in workers:
        worker.join()
    assert len(answered) >= 10

    second = RunningStack(env, data).start()
    try:
        response = httpx.get(f"{second.url}/api/calls", params={"limit": 500, "account": "load"},
                             headers={"X-Dashboard-Key": ADMIN_KEY})
        kept = {c["call_id"] for c in response.json()["calls"]}
    finally:
        second.stop()
    assert set(answered) <= kept, f"{len(set(answered) - kept)} of {len(answered)} answered calls lost"
