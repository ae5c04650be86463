"""Secrets (admin key, provider keys): env locally, SSM SecureString in AWS, cached briefly.

SSM is read with a botocore client on the process's shared session (chalicelib/aws.py): the proxy's first call
needs its provider's key, and Powertools' parameters with boto3 cost that call ~100 ms of imports and a session.
"""
from __future__ import annotations

import threading
import time

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import aws
from chalicelib.errors import ConfigurationError
from chalicelib.settings import get_settings

SECRET_MAX_AGE_SECONDS = 300


class SecretCache:
    """SSM parameter name → (expires at, value), and the SSM client that reads them (one per process)."""

    def __init__(self) -> None:
        self._values: dict[str, tuple[float, str]] = {}
        self._client = None
        self._lock = threading.Lock()

    def get(self, name: str) -> str:
        hit = self._values.get(name)
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        try:
            value = self.client().get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
        except (ClientError, BotoCoreError) as exc:
            raise ConfigurationError(f"secret parameter {name!r} could not be read: set it with "
                                     f"`aws ssm put-parameter --type SecureString --name {name}`") from exc
        self._values[name] = (time.monotonic() + SECRET_MAX_AGE_SECONDS, value)
        return value

    def client(self):
        with self._lock:
            if self._client is None:
                self._client = aws.botocore_client("ssm")
            return self._client

    def clear(self) -> None:
        """Forget every value and the client (tests: a fresh container)."""
        with self._lock:
            self._values.clear()
            self._client = None


secrets = SecretCache()


def _from_ssm(name: str) -> str:
    return secrets.get(name)


def admin_key() -> str | None:
    settings = get_settings()
    if settings.admin_key_parameter:
        return _from_ssm(settings.admin_key_parameter)
    return settings.admin_key


def provider_key(provider: str, required: bool = True) -> str | None:
    """The provider's API key; None for a provider that may go without (a local model server)."""
    settings = get_settings()
    if name := settings.provider_key_parameters.get(provider):
        return _from_ssm(name)
    if key := settings.provider_keys.get(provider):
        return key
    if not required:
        return None
    raise ConfigurationError(f"no API key configured for provider {provider!r}")


def slack_webhook_url() -> str | None:
    """The Slack incoming-webhook URL is a secret too (anyone holding it can post to the channel)."""
    settings = get_settings()
    if settings.slack_webhook_parameter:
        return _from_ssm(settings.slack_webhook_parameter)
    return settings.slack_webhook_url
