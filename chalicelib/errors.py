"""Exception types of the gateway; the edge renders them in the caller's wire format."""
from __future__ import annotations


class TollgateError(Exception):
    """An error with an HTTP status and a stable machine-readable type."""

    status = 500
    error_type = "api_error"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class AuthenticationError(TollgateError):
    status = 401
    error_type = "authentication_error"


class PermissionDenied(TollgateError):
    status = 403
    error_type = "permission_error"


class NotFound(TollgateError):
    status = 404
    error_type = "not_found_error"


class InvalidRequest(TollgateError):
    status = 400
    error_type = "invalid_request_error"


class PayloadTooLarge(TollgateError):
    status = 413
    error_type = "request_too_large"


class BudgetExceeded(TollgateError):
    status = 429
    error_type = "budget_exceeded"


class UpstreamError(TollgateError):
    """The provider could not be reached or did not answer in time; upstream was (maybe) reached."""


class UpstreamUnreachable(UpstreamError):
    status = 502
    error_type = "upstream_unreachable"


class UpstreamAnswerTooLarge(UpstreamError):
    status = 502
    error_type = "upstream_answer_too_large"


class RequestTimeout(TollgateError):
    status = 408
    error_type = "request_timeout"


class UpstreamTimeout(UpstreamError):
    status = 504
    error_type = "upstream_timeout"


class ConfigurationError(TollgateError):
    status = 500
    error_type = "configuration_error"


class PriceOverridesInvalid(ConfigurationError):
    """chalicelib/gateway/price_overrides.json says something pricing cannot take: the tests and `make package` stop on it,
    and a call never meets it (a deployed file that fails to load leaves calls unpriced, never guessed)."""


class DeliveryFailed(TollgateError):
    """A channel refused or did not answer a message sent on request (a test notification)."""

    status = 502
    error_type = "delivery_failed"
