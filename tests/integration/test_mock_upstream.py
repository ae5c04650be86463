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
