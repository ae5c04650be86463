"""The proxy as an ASGI app (Starlette): every provider route of CONTRACT §2, streamed or not.

In AWS it runs under uvicorn behind the Lambda Web Adapter (`run_proxy.sh`), so API Gateway
streams its answers; locally `local.server` serves it on the same port as the Chalice routes.
"""
from __future__ import annotations

import time
from contextlib import asynccontextmanager
from typing import AsyncIterator

import anyio
from starlette.applications import Starlette
from starlette.convertors import PathConvertor, register_url_convertor
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from chalicelib import provider_registry
from chalicelib.errors import RequestTimeout
from chalicelib.gateway import proxy, upstream
from chalicelib.gateway.providers import get_adapter
from chalicelib.settings import get_settings

WRITE_GRACE_SECONDS = 5  # after the call's deadline, for its last events and trailer (within proxy.RECORD_SECONDS)
BODY_SECONDS = 30  # a caller that takes longer to send its request is refused (API Gateway does this in AWS)
QUERY_MAX_BYTES = 4096  # a longer query string is ignored (no endpoint takes more than a few short parameters)


class RelayResponse(Response):
    """Sends a proxied answer; a streamed one piece by piece, noticing at once when the caller goes away.

    The body iterator is always closed here, whatever happens, so the proxy closes the upstream
    request and logs the call the moment the caller disconnects.
    """

    def __init__(self, answer: proxy.Answer) -> None:
        super().__init__(answer.body, answer.status, answer.headers)
        self.stream, self.deadline = answer.stream, answer.deadline

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.stream is None:
            return await super().__call__(scope, receive, send)
        del self.headers["content-length"]
        async with anyio.create_task_group() as group:
            async def watch_for_disconnect() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                group.cancel_scope.cancel()

            group.start_soon(watch_for_disconnect)
            try:
                # The relay ends the stream itself at the deadline; this catches a caller that stops reading.
                with anyio.move_on_after(self.deadline + WRITE_GRACE_SECONDS - time.monotonic()):
                    await send({"type": "http.response.start", "status": self.status_code,
                                "headers": self.raw_headers})
                    async for piece in self.stream:
                        await send({"type": "http.response.body", "body": piece, "more_body": True})
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            except OSError:  # the server says the caller has gone (ASGI spec 2.4)
                pass
            finally:
                with anyio.CancelScope(shield=True):
                    await self.stream.aclose()
                group.cancel_scope.cancel()


async def _body(request: Request, limit: int) -> bytes:
    """The request body, read no further than the chunk that crosses the limit (the proxy then refuses it)."""
    chunks, size = [], 0
    async for chunk in request.stream():
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            break
    return b"".join(chunks)


def _route(provider: str) -> Route:
    """Every path under `/<provider>/`; the provider's adapter says which are endpoints (others are a 404)."""
    async def endpoint(request: Request) -> Response:
        headers = {name.lower(): value for name, value in request.headers.items()}
        method = request.method
        query = dict(request.query_params) if len(request.url.query) <= QUERY_MAX_BYTES else {}
        try:
            with anyio.fail_after(BODY_SECONDS):
                body = await _body(request, get_settings().max_body_bytes) if method == "POST" else b""
        except TimeoutError:
            error = RequestTimeout(f"the request body did not arrive within {BODY_SECONDS} s")
            return RelayResponse(proxy.unlogged_answer(get_adapter(provider), error))
        except ClientDisconnect:  # gone before it finished asking: nobody to answer, nothing was sent upstream
            return Response(status_code=400)
        answer = await proxy.handle(provider, request.path_params["path"],
                                    proxy.IncomingRequest(method, headers, body, query))
        return RelayResponse(answer)

    return Route(f"/{provider}/{{path:anypath}}", endpoint, methods=["GET", "POST"], name=provider)


class AnyPath(PathConvertor):
    """Starlette's `path`, newlines included: a hostile path gets the provider's own 404, not a bare one."""

    regex = "(?s:.*)"


register_url_convertor("anypath", AnyPath())


async def ready(request: Request) -> Response:
    """The Lambda Web Adapter's readiness check: the app is imported and serving."""
    return JSONResponse({"status": "ready"})


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Before GET /ready: the upstream client, made on the loop that serves (its TLS context is ~20 ms of the
    first call otherwise). The rest of the proxy's init is chalicelib/gateway/warmup.py."""
    upstream.get_client()
    yield


ROUTES = [_route(name) for name in provider_registry.names()]
app = Starlette(routes=[*ROUTES, Route("/ready", ready, methods=["GET"])], lifespan=lifespan)
