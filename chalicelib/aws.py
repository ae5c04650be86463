"""boto3 clients, created lazily once per container so import stays fast and moto can patch them."""
from __future__ import annotations

from functools import lru_cache
from typing import Any

from chalicelib.settings import get_settings


@lru_cache(maxsize=None)
def client(service: str) -> Any:
    import boto3  # the proxy's hot path never needs boto3; only spill and jobs do

    settings = get_settings()
    return boto3.client(service, region_name=settings.region, endpoint_url=settings.aws_endpoint)


def transactions() -> Any:
    """A pynamodb Connection for TransactWrite, on the same region and endpoint as the models."""
    from pynamodb.connection import Connection

    settings = get_settings()
    return Connection(region=settings.region, host=settings.aws_endpoint)
