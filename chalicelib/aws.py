"""boto3 clients, created lazily once per container so import stays fast and moto can patch them.

Also the process's one botocore session, which the proxy's clients share, and `no_requests`, the guard that
lets the proxy run its checks on the event loop when they need no AWS request.
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from typing import Any, Callable, Iterator

from botocore import handlers
from botocore.exceptions import ClientError
from botocore.loaders import Loader, create_loader
from pynamodb.exceptions import PynamoDBException

from chalicelib.settings import get_settings

# What DynamoDB answers when a write's condition does not hold: on one item, or on a transaction (a condition
# of one of its items failed, or another transaction held one of them: either way, someone got there first).
CONDITION_FAILED = ("ConditionalCheckFailedException", "TransactionCanceledException")
POOL_CONNECTIONS = 32


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    import boto3  # the proxy's hot path never needs boto3; only spill and jobs do

    from botocore.config import Config

    settings = get_settings()
    # connections as the rollup's writers (chalicelib/rollup/store.py WRITERS): botocore's default pool is 10
    return boto3.client(service, region_name=settings.region, endpoint_url=settings.aws_endpoint,
                        config=Config(max_pool_connections=POOL_CONNECTIONS))


@lru_cache(maxsize=None)
def transactions() -> Any:
    """A pynamodb Connection for TransactWrite, on the same region and endpoint as the models: one per container,
    as the clients are (a new one loads botocore's service model again: tenths of a second)."""
    from pynamodb.connection import Connection

    settings = get_settings()
    return Connection(region=settings.region, host=settings.aws_endpoint)


@lru_cache(maxsize=1)
def botocore_session() -> Any:
    """The process's one botocore session. A session loads the endpoint data and each service's model the first
    time a client needs them (60-100 ms on a cold start), so every client made on this one after the first
    costs a few ms: the proxy's first call made four sessions (three pynamodb models and SSM) before."""
    from botocore.session import get_session

    session = get_session()
    paths = create_loader(session.get_config_variable("data_path")).search_paths
    session.register_component("data_loader", _ServiceDirectories(paths, include_default_search_paths=False))
    return session


class _ServiceDirectories(Loader):
    """botocore's data loader, but a service is any directory on its search paths: botocore opens each of ~400
    service directories to see that it holds the file asked for, twice for the first client (~900 directory
    reads, 10-20 ms of the proxy's cold start). A directory without the file fails on loading it instead."""

    def list_available_services(self, type_name: str) -> list[str]:
        return sorted({name for path in self.search_paths if os.path.isdir(path) for name in os.listdir(path)})


_creating = threading.Lock()  # botocore's client creation is not thread-safe on a shared session


def botocore_client(service: str) -> Any:
    """A new botocore client on the shared session (no boto3: the proxy never imports it)."""
    settings = get_settings()
    with _creating:
        return botocore_session().create_client(service, region_name=settings.region,
                                                endpoint_url=settings.aws_endpoint)


def share_session(*connections: Any) -> None:
    """Have pynamodb connections (a model's `_get_connection().connection`, `transactions()`) make their clients
    now, on the shared session. pynamodb makes a session per connection and thread, and keeps the client it
    made with it for every thread; so giving this thread's slot the shared session before the first request
    is enough (pynamodb 6 keeps that slot in `_local`). Connections configured alike (the models' TableMeta)
    share one client, as pynamodb's threads do: each more client is ~3 ms of the cold start (botocore copies
    the session's event handlers and builds the client's class), and botocore's clients are thread-safe."""
    made: dict[tuple, Any] = {}
    with _creating:
        for connection in connections:
            connection._local.session = botocore_session()
            alike = _client_settings(connection)
            if alike in made:
                connection._client = made[alike]
            else:
                made[alike] = connection.client


def _client_settings(connection: Any) -> tuple:
    """What a pynamodb connection makes its client from (pynamodb 6's Connection.client)."""
    return (connection.region, connection.host, connection._connect_timeout_seconds,
            connection._read_timeout_seconds, connection._max_retry_attempts_exception,
            repr(connection._retry_configuration), connection._max_pool_connections, repr(connection._extra_headers))


class WouldRequest(Exception):
    """An AWS request was about to start where none may (`no_requests`): the caller does the work elsewhere."""


_requests_refused: ContextVar[bool] = ContextVar("requests_refused", default=False)


@contextmanager
def no_requests() -> Iterator[None]:
    """Inside, any botocore request (DynamoDB, SSM, SQS; pynamodb's too) raises WouldRequest before it starts.

    The proxy runs its checks on the event loop this way: with warm caches they make no request, and a cold
    cache (or a hard limit's reservation) stops them at the request, to be run again in a worker thread."""
    token = _requests_refused.set(True)
    try:
        yield
    finally:
        _requests_refused.reset(token)


def _refuse_request(model: Any, **_: Any) -> None:
    if _requests_refused.get():
        raise WouldRequest(f"{model.service_model.service_name} {model.name}")


# On every botocore session made from now on (as moto installs its stubber): the proxy's models make theirs
# lazily, on their first request, so whichever session serves them carries the guard.
handlers.BUILTIN_HANDLERS.append(("before-parameter-build", _refuse_request))


def conditional(write: Callable[[], Any]) -> bool:
    """Run a conditional write: True if it was applied, False if its condition did not hold. Every conditional
    write goes through here, so none tells a failed condition from a failure by hand; anything else is raised."""
    try:
        write()
    except (ClientError, PynamoDBException) as exc:
        if _error_code(exc) not in CONDITION_FAILED:
            raise
        return False
    return True


def _error_code(exc: ClientError | PynamoDBException) -> str | None:
    """DynamoDB's error code: botocore's ClientError carries it, pynamodb's errors wrap one as their cause."""
    if isinstance(exc, ClientError):
        return exc.response.get("Error", {}).get("Code")
    return exc.cause_response_code


def transact(write: Callable[[], Any]) -> list[str] | None:
    """Run a transaction: None if it was applied; else why each item stopped it, in the items' order: "condition"
    (its condition did not hold), "conflict" (another write to the item was under way: try again), "" (not at
    fault) or another DynamoDB reason code. Anything that is not a cancellation is raised."""
    try:
        write()
    except (ClientError, PynamoDBException) as exc:
        if _error_code(exc) != "TransactionCanceledException":
            raise
        reasons = getattr(exc, "cancellation_reasons", None) or []
        return [_REASONS.get(reason.code, reason.code) if reason is not None and reason.code else ""
                for reason in reasons]
    return None


_REASONS = {"ConditionalCheckFailed": "condition", "TransactionConflict": "conflict", "None": ""}
