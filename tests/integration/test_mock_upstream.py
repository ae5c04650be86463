"""The mock upstream takes a burst of new connections as a provider does, so a test's 502 means the gateway."""
import asyncio

import httpx

from local.mock_upstream import MockUpstream

BURST, ROUNDS = 40, 3


def test_a_burst_of_new_connections_is_answered_without_resets():
    upstream = MockUpstream()
    url = upstream.start()

    async def burst() -> list[object]:
        async with httpx.AsyncClient(timeout=30) as client:
            async def one() -> object:
                try:
                    response = await client.post(f"{url}/v1/chat/completions", headers={"Authorization": "Bearer k"},
                                                 json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]})
                    return response.status_code
                except httpx.TransportError as exc:
                    return type(exc).__name__
            for _ in range(BURST):
                upstream.enqueue(delay_seconds=0.2)
            return await asyncio.gather(*(one() for _ in range(BURST)))

    try:
        outcomes = [outcome for _ in range(ROUNDS) for outcome in asyncio.run(burst())]
    finally:
        upstream.stop()
    assert outcomes == [200] * BURST * ROUNDS


def test_make_runs_mock_streams_at_a_models_pace_unless_told_otherwise():
    """`make run`'s mock pauses 20-50 ms before each streamed event (TOLLGATE_MOCK_EVENT_MS), so streaming can be
    seen locally; a test's script still sets its own pace. Sleeps only lengthen: the lower bound is safe to assert."""
    import time

    from local.stack import mock_pace

    assert (mock_pace({}), mock_pace({"TOLLGATE_MOCK_EVENT_MS": "0"})) == ((0.02, 0.05), (0.0, 0.0))
    assert mock_pace({"TOLLGATE_MOCK_EVENT_MS": "30"}) == (0.03, 0.03)
    for bad in ("fast", "50-20", "-5", "20000"):
        try:
            mock_pace({"TOLLGATE_MOCK_EVENT_MS": bad})
        except SystemExit as refused:
            assert "TOLLGATE_MOCK_EVENT_MS" in str(refused)
        else:
            raise AssertionError(f"{bad!r} was taken")
    upstream = MockUpstream(pace_seconds=mock_pace({}))
    url = upstream.start()
    try:
        started, arrivals = time.monotonic(), []
        with httpx.stream("POST", f"{url}/v1/chat/completions", headers={"Authorization": "Bearer k"},
                          json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                          timeout=30) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    arrivals.append(time.monotonic() - started)
        upstream.enqueue(event_interval_seconds=0)  # told otherwise: at once
        with httpx.stream("POST", f"{url}/v1/chat/completions", headers={"Authorization": "Bearer k"},
                          json={"model": "gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                          timeout=30) as response:
            assert sum(line.startswith("data:") for line in response.iter_lines()) == len(arrivals)
    finally:
        upstream.stop()
    assert len(arrivals) >= 10 and arrivals[-1] - arrivals[0] >= 0.02 * (len(arrivals) - 1)


def test_fault_models_answer_a_providers_bad_hour():
    upstream = MockUpstream()
    url = upstream.start()
    chat = {"messages": [{"role": "user", "content": "hi"}]}
    try:
        with httpx.Client(timeout=5) as client:
            def post(model):
                return client.post(f"{url}/v1/chat/completions", json={**chat, "model": model})

            assert post("fault-429").status_code == 429
            assert post("fault-503").json()["error"]["message"] == "scripted fault 503"
            try:
                outcome = post("fault-reset").status_code
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            assert outcome in ("RemoteProtocolError", "ReadError", "ConnectError")
            try:
                outcome = client.post(f"{url}/v1/chat/completions", json={**chat, "model": "fault-silence-3"},
                                      timeout=1).status_code
            except httpx.TimeoutException as exc:
                outcome = type(exc).__name__
            assert outcome == "ReadTimeout"
            assert post("fault-unknown").status_code == 404
            assert post("gpt-4o").status_code == 200
    finally:
        upstream.stop()
