"""boto3 clients, created lazily once per container so import stays fast and moto can patch them."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Callable

from botocore.exceptions import ClientError
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
