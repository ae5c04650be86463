"""HTTP to the providers with httpx: one pooled async client per event loop, fixed URLs, explicit timeouts.

Nothing is shared between tenants through it: it keeps no cookies and follows no redirects.
"""
from __future__ import annotations

import asyncio
from http.cookiejar import CookieJar, DefaultCookiePolicy

import httpx

from chalicelib.errors import UpstreamTimeout, UpstreamUnreachable
from chalicelib.settings import get_settings

_client: httpx.AsyncClient | None = None
_client_loop: asyncio.AbstractEventLoop | None = None
_transport: httpx.AsyncBaseTransport | None = None


def use_transport(transport: httpx.AsyncBaseTransport | None) -> None:
    """Swap the transport (tests use httpx.MockTransport); the next request builds a new client."""
    global _client, _transport
    _client, _transport = None, transport


def _no_cookies() -> CookieJar:
    """A jar that refuses every cookie: an upstream Set-Cookie on one tenant's call never rides on another's."""
    return CookieJar(policy=DefaultCookiePolicy(allowed_domains=[]))


def get_client() -> httpx.AsyncClient:
    """The client of the running event loop (a client's connections belong to the loop that opened them)."""
    global _client, _client_loop
    loop = asyncio.get_running_loop()
    if _client is None or _client_loop is not loop:
        settings = get_settings()
        _client_loop = loop
        _client = httpx.AsyncClient(
            transport=_transport,
            follow_redirects=False,
            cookies=_no_cookies(),
            timeout=httpx.Timeout(settings.upstream_read_seconds, connect=settings.upstream_connect_seconds),
            limits=httpx.Limits(max_connections=256, max_keepalive_connections=32, keepalive_expiry=60),
        )
    return _client


async def open_stream(method: str, url: str, headers: dict[str, str], body: bytes | None) -> httpx.Response:
    """Send one request and return as soon as the answer's headers arrive; the caller reads and closes it."""
    client = get_client()
    request = client.build_request(method, url, headers=headers, content=body)
    try:
        return await client.send(request, stream=True)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"upstream did not answer in time ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise UpstreamUnreachable(f"upstream unreachable ({type(exc).__name__})") from exc


def response_headers(response: httpx.Response) -> dict[str, str]:
    """Lower-case names; repeated headers joined as HTTP allows."""
    return {name.lower(): value for name, value in response.headers.items()}
