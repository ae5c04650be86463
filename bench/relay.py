"""The floor of a streamed call: a bare relay on the gateway's own libraries, in a process of its own.

uvicorn (configured as the local server configures it) serving one Starlette route that reads the body and
parses it, opens the upstream request with an httpx AsyncClient and relays its bytes as they come. What it adds
to the time to first byte is what these libraries cost on this machine before any of Tollgate's own work.
It takes no hop to a worker thread: the gateway checks a caller on the event loop once its caches are warm
(until issue #30 it took one, as the gateway then did: floors measured before then include that hop).
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


class Relay:
    def __init__(self, upstream_url: str, key: str) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "bench.relay", upstream_url, key], cwd=ROOT,
                                        text=True, stdout=subprocess.PIPE)
        self.url = self.process.stdout.readline().strip()
        if not self.url:
            raise SystemExit("the relay did not start")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)


def app(upstream_url: str, key: str):
    import httpx
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route

    clients: list[httpx.AsyncClient] = []

    async def relay(request):
        body = await request.body()
        json.loads(body)
        if not clients:
            clients.append(httpx.AsyncClient(timeout=60))
        upstream = clients[0].build_request("POST", f"{upstream_url}/v1/chat/completions", content=body,
                                            headers={"authorization": f"Bearer {key}",
                                                     "content-type": "application/json"})
        response = await clients[0].send(upstream, stream=True)

        async def pieces():
            try:
                async for piece in response.aiter_raw():
                    yield piece
            finally:
                await response.aclose()

        return StreamingResponse(pieces(), response.status_code, media_type="text/event-stream")

    return Starlette(routes=[Route("/v1/chat/completions", relay, methods=["POST"])])


def main() -> None:
    """Serve in a thread, as `local.server` does, and print the URL once started."""
    import threading

    import uvicorn

    from local.stack import free_port

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app(*sys.argv[1:3]), host="127.0.0.1", port=port, log_level="warning",
                                           access_log=False, lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        thread.join(0.01)
    print(f"http://127.0.0.1:{port}", flush=True)
    thread.join()


if __name__ == "__main__":
    main()
