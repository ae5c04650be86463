"""Secrets (admin key, provider keys): env locally, SSM SecureString in AWS, cached briefly."""
from __future__ import annotations

from chalicelib.errors import ConfigurationError
from chalicelib.settings import get_settings

SECRET_MAX_AGE_SECONDS = 300


def _from_ssm(name: str) -> str:
    from aws_lambda_powertools.utilities import parameters  # only AWS stages pay this import

    try:
        return parameters.get_parameter(name, decrypt=True, max_age=SECRET_MAX_AGE_SECONDS)
    except parameters.exceptions.GetParameterError as exc:
        raise ConfigurationError(f"secret parameter {name!r} could not be read: set it with "
                                 f"`aws ssm put-parameter --type SecureString --name {name}`") from exc


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
