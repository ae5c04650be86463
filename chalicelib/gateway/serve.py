"""The proxy function's process (`run_proxy.sh`): uvicorn serving `proxy_app`, loaded and warmed with the collector paused.

`python -m chalicelib.gateway.serve APP [--host H] [--port P] [--log-level L] [--no-access-log]
[--timeout-graceful-shutdown S]` takes those of uvicorn's options, meaning what they mean to `python -m uvicorn`.
uvicorn is run through its Config and Server, not its command line: `import uvicorn` runs the package's
`__init__`, which imports the command line (click, the reload and worker supervisors, multiprocessing), ~15 ms
of the cold start that one server process never uses (bench/coldstart.py). httpx's `__init__` imports its
command line too, which fails without rich and pygments (the zip has neither) but only after loading click: it
is marked missing here, so httpx takes its fallback at once.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from typing import Any

from chalicelib import coldstart_gc  # before uvicorn and the proxy: pauses the collector while they load (cold start)


sys.modules.setdefault("httpx._main", None)  # `import` raises ImportError at once: httpx's CLI, see above


def options(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="chalicelib.gateway.serve")
    parser.add_argument("app")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--log-level", default=None)
    parser.add_argument("--no-access-log", dest="access_log", action="store_false")
    parser.add_argument("--timeout-graceful-shutdown", type=int, default=None)
    return parser.parse_args(argv)


def _uvicorn_without_its_command_line() -> None:
    """uvicorn's package, registered without running its `__init__` (unless something imported it already),
    given the names of its `__init__` that the server's own modules import (`from uvicorn import Config`)."""
    if "uvicorn" not in sys.modules:
        sys.modules["uvicorn"] = importlib.util.module_from_spec(importlib.util.find_spec("uvicorn"))
    from uvicorn.config import Config
    from uvicorn.server import Server

    package = sys.modules["uvicorn"]
    package.Config, package.Server = Config, Server


def load(argv: list[str]) -> Any:
    """Everything before serving, with the collector paused: uvicorn's server, the app with uvicorn's protocol
    modules, the proxy's init (chalicelib/gateway/warmup.py). Returns the uvicorn Server, ready to run."""
    given = options(argv)
    _uvicorn_without_its_command_line()
    from uvicorn.config import Config
    from uvicorn.server import Server

    # asyncio and h11, as `auto` picks without uvloop and httptools (the zip has neither); no websockets (the
    # proxy has no websocket route); uvicorn's own defaults for the rest, as its command line has them.
    config = Config(given.app, host=given.host, port=given.port, log_level=given.log_level,
                    access_log=given.access_log, timeout_graceful_shutdown=given.timeout_graceful_shutdown,
                    loop="asyncio", http="h11", ws="none")
    config.load()  # imports the app and the protocol and lifespan modules, wraps the app in its middleware
    from chalicelib.gateway import warmup

    warmup.warm()  # before GET /ready: in Lambda's init, not in the first caller's call
    coldstart_gc.loaded()
    return Server(config)


def main() -> None:
    """As `python -m uvicorn` with one worker and no reload: serve until a signal; a failed start exits 3."""
    server = load(sys.argv[1:])
    from uvicorn.config import STARTUP_FAILURE  # after load(): uvicorn's package without its command line

    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)


if __name__ == "__main__":
    main()
