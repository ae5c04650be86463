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


class RateLimited(TollgateError):
    status = 429
    error_type = "rate_limit_exceeded"


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


# The gateway's own refusals: a call turned away before it was sent on (its key, its body, its budget, its pace),
# never an answer of the provider. Logged with these types and `upstream_reached` false; counted apart from
# the provider's errors (`refused`), so they weigh on no provider's or model's error rate, success rate or latency.
REFUSALS = frozenset(error.error_type for error in (
    AuthenticationError, PermissionDenied, NotFound, InvalidRequest, PayloadTooLarge, RequestTimeout, BudgetExceeded,
)) | {"rate_limit_exceeded"}  # a key's requests or tokens per minute (CONTRACT §3, `PUT /admin/keys/{key_id}/limits`)


def is_refusal(error_type: str | None, upstream_reached: bool) -> bool:
    """Whether a logged call is the gateway's own refusal: one of REFUSALS, the provider never asked (a provider's
    own `invalid_request_error` reached it, so it stays the provider's error)."""
    return not upstream_reached and error_type in REFUSALS
