"""The proxy function's process (`run_proxy.sh`): uvicorn serving `proxy_app`, loaded and warmed with the collector paused.

`python -m chalicelib.gateway.serve` takes uvicorn's own command line, as `python -m uvicorn` does.
"""
from __future__ import annotations

from chalicelib import coldstart_gc  # before uvicorn and the proxy: pauses the collector while they load (cold start)


def main() -> None:
    # Imported here, after the pause above, whatever order an import sorter would put them in.
    from uvicorn import main as uvicorn_main

    from chalicelib.gateway import proxy_app  # noqa: F401  loaded now; uvicorn finds it imported
    from chalicelib.gateway import warmup

    warmup.warm()  # before GET /ready: in Lambda's init, not in the first caller's call
    coldstart_gc.loaded()
    uvicorn_main()  # reads sys.argv as `python -m uvicorn` does, and exits with its status


if __name__ == "__main__":
    main()
