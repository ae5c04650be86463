"""The local stack's one HTTP server: uvicorn serving the proxy app, the dashboard files and the Chalice routes.

One port and one base URL, as API Gateway gives in AWS: the provider routes go to the streaming
proxy app (as the proxy function does there), `/dashboard/` is the static site (S3 there), `/exports/`
the files of large exports (presigned S3 URLs there), and everything else is handed to Chalice's own
local gateway in a worker thread (the API function).
"""
from __future__ import annotations

import threading
from pathlib import Path

import uvicorn
from anyio.to_thread import run_sync
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles


def chalice_fallback(chalice_app):
    """An ASGI endpoint that runs a request through Chalice's LocalGateway, as `chalice local` does."""
    from chalice.config import Config
    from chalice.local import CustomLocalChalice, LocalChalice, LocalGateway, LocalGatewayException

    if not isinstance(chalice_app, LocalChalice):  # thread-local current_request, as chalice.local does it
        CustomLocalChalice.__bases__ = (LocalChalice, chalice_app.__class__)
        chalice_app.__class__ = CustomLocalChalice
    config = Config.create(chalice_stage="local", app_name=chalice_app.app_name)

    def run(method: str, path: str, headers: dict[str, str], body: bytes) -> Response:
        try:
            answer = LocalGateway(chalice_app, config).handle_request(method, path, headers, body)
        except LocalGatewayException as error:
            return Response(error.body, error.CODE, dict(error.headers))
        headers = {**answer["headers"], **{k: ", ".join(v) for k, v in answer["multiValueHeaders"].items()}}
        content = answer["body"]
        if answer.get("isBase64Encoded"):
            import base64

            content = base64.b64decode(content)
        return Response(content, answer["statusCode"], headers)

    async def endpoint(request: Request) -> Response:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        headers = {name: value for name, value in request.headers.items()}
        return await run_sync(run, request.method, path, headers, await request.body())

    return endpoint


async def export_file(request: Request) -> Response:
    """`/exports/<export_id>.<csv|json>`: a ready export's file, which the local stack serves itself (in AWS the
    download link is a presigned S3 URL); streamed from the bucket (moto) a megabyte at a time."""
    from starlette.concurrency import iterate_in_threadpool
    from starlette.responses import JSONResponse, StreamingResponse

    from chalicelib.reports import exports

    found = await run_sync(exports.open_file, request.path_params["name"])
    if found is None:
        return JSONResponse({"error": {"type": "not_found_error", "message": "no such export file: it is not ready, "
                                       "has expired, or the local stack was restarted since (ask for it again)"}}, 404)
    chunks, headers = found
    return StreamingResponse(iterate_in_threadpool(chunks), headers=headers)


def build_app(chalice_app, dashboard_dir: Path) -> Starlette:
    from chalicelib.gateway.proxy_app import ROUTES, ready

    fallback = chalice_fallback(chalice_app)
    every_method = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "QUERY"]
    return Starlette(routes=[
        *ROUTES,
        Route("/ready", ready, methods=["GET"]),
        Route("/dashboard", lambda request: RedirectResponse("/dashboard/", 301)),
        Mount("/dashboard", StaticFiles(directory=dashboard_dir, html=True, check_dir=False)),
        Route("/exports/{name}", export_file, methods=["GET"]),
        Route("/{path:path}", fallback, methods=every_method),
    ])


class Server:
    """uvicorn in a thread of the stack's process; `stop` stops accepting, then waits for answers in flight."""

    def __init__(self, app: Starlette, host: str, port: int) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                lifespan="off", backlog=512, timeout_graceful_shutdown=30)
        self.uvicorn = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.uvicorn.run, daemon=True, name="http")

    def start(self, timeout: float = 30) -> None:
        self.thread.start()
        for _ in range(int(timeout * 100)):
            if self.uvicorn.started:
                return
            if not self.thread.is_alive():
                raise RuntimeError("the HTTP server did not start (is the port in use?)")
            threading.Event().wait(0.01)
        raise RuntimeError("the HTTP server did not start in time")

    def stop(self) -> None:
        self.uvicorn.should_exit = True
        self.thread.join(timeout=35)
