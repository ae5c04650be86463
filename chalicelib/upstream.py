"""HTTP to the providers with httpx: one pooled client per container, fixed URLs, explicit timeouts."""
from __future__ import annotations

import time
from dataclasses import dataclass

import httpx

from .errors import UpstreamTimeout, UpstreamUnreachable
from .settings import get_settings

_client: httpx.Client | None = None
_transport: httpx.BaseTransport | None = None


@dataclass(frozen=True)
class UpstreamResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes
    latency_ms: int
    truncated: bool = False  # the connection broke mid-body; `body` holds what arrived


def use_transport(transport: httpx.BaseTransport | None) -> None:
    """Swap the transport (tests use httpx.MockTransport); the next request builds a new client."""
    global _client, _transport
    if _client is not None:
        _client.close()
    _client, _transport = None, transport


def get_client() -> httpx.Client:
    global _client
    if _client is None:
        settings = get_settings()
        _client = httpx.Client(
            transport=_transport,
            follow_redirects=False,
            timeout=httpx.Timeout(settings.upstream_read_seconds, connect=settings.upstream_connect_seconds),
            limits=httpx.Limits(max_connections=64, max_keepalive_connections=16, keepalive_expiry=60),
        )
    return _client


def send(method: str, url: str, headers: dict[str, str], body: bytes | None) -> UpstreamResponse:
    """Send one request and read the whole answer; a broken stream returns what arrived so far."""
    started = time.monotonic()
    chunks: list[bytes] = []
    try:
        with get_client().stream(method, url, headers=headers, content=body) as response:
            try:
                for chunk in response.iter_bytes():
                    chunks.append(chunk)
                truncated = False
            except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ReadTimeout):
                if not chunks:
                    raise
                truncated = True
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(f"upstream did not answer in time ({type(exc).__name__})") from exc
    except httpx.TransportError as exc:
        raise UpstreamUnreachable(f"upstream unreachable ({type(exc).__name__})") from exc
    return UpstreamResponse(
        status=response.status_code,
        headers={k.lower(): v for k, v in response.headers.items()},
        body=b"".join(chunks),
        latency_ms=round((time.monotonic() - started) * 1000),
        truncated=truncated,
    )
