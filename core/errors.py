"""The platform's one error type, and the one place that turns a failure into an answer.

Every error a client sees has the shape `{"error": {"code": ..., "message": ...}}`: domain errors,
DRF's validation and HTTP errors, what Django refuses (sizes, field counts, hosts, CSRF), the
answers a view or WhiteNoise builds without a body, and anything unhandled (whose detail goes to
the log only). 4xx is what the client did, 503 with Retry-After a backing service that is down,
500 a bug. DRF's views fail through `exception_handler` here; Django's own error views are in
`core.handlers`, and `core.middleware.ErrorShapeMiddleware` reshapes the answers built without it.
"""

import logging
from typing import Any

from django import db
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import (
    RequestDataTooBig,
    SuspiciousOperation,
    TooManyFieldsSent,
    TooManyFilesSent,
)
from django.http import Http404, HttpResponse, JsonResponse, UnreadablePostError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from rest_framework import exceptions, status

logger = logging.getLogger(__name__)


class DomainError(Exception):
    """A refusal the client can act on. Subclasses set `status_code`, `code` and `message`."""

    status_code: int = status.HTTP_400_BAD_REQUEST
    code = "invalid_request"
    message = "The request is invalid."
    headers: dict[str, str] = {}

    def __init__(self, message: str | None = None) -> None:
        if message is not None:
            self.message = message
        super().__init__(self.message)


class ServiceUnavailable(DomainError):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    code = "service_unavailable"
    message = "The service cannot take this request right now; retry shortly."


class BackendUnavailable(ServiceUnavailable):
    message = "A backing service is unreachable; retry shortly."
    headers = {"Retry-After": "5"}


class PayloadTooLarge(DomainError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"
    message = "The body is larger than this endpoint takes."


class NotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "not_found"
    message = "Not found."


class Forbidden(DomainError):
    status_code = status.HTTP_403_FORBIDDEN
    code = "permission_denied"
    message = "Permission denied."


class InternalError(DomainError):
    status_code = status.HTTP_500_INTERNAL_SERVER_ERROR
    code = "internal_error"
    message = "An internal error occurred; it has been logged."


def error_body(code: str, message: str, **extra: object) -> dict[str, dict[str, object]]:
    """The one shape; `extra` adds fields beside the code and message (a busy answer's token)."""
    return {"error": {"code": code, "message": message, **extra}}


# What a client did wrong, and what is down, for the exceptions that are not DomainErrors.
# Every other exception is a bug: a 500, logged with its trace.
_DRF_CODES = {
    exceptions.ValidationError: "invalid_request",
    exceptions.ParseError: "invalid_request",
    exceptions.UnsupportedMediaType: "unsupported_media_type",
    exceptions.NotAuthenticated: "not_authenticated",
    exceptions.AuthenticationFailed: "authentication_failed",
    exceptions.PermissionDenied: "permission_denied",
    exceptions.NotFound: "not_found",
    exceptions.MethodNotAllowed: "method_not_allowed",
    exceptions.NotAcceptable: "not_acceptable",
    exceptions.Throttled: "rate_limited",
}
# The database's OperationalError covers a refused or lost connection, an exhausted pool, a
# cancelled statement and a deadlock: all passing, all worth a retry. Its other errors
# (IntegrityError, DataError, ProgrammingError) are bugs.
_UNAVAILABLE = (db.OperationalError, db.InterfaceError, RedisConnectionError, RedisTimeoutError)


def _validation_message(detail: Any) -> str:
    """Flatten DRF's nested validation detail into one sentence naming each field."""
    if isinstance(detail, dict):
        return "; ".join(
            f"{field}: {_validation_message(value)}" for field, value in detail.items()
        )
    if isinstance(detail, list):
        return " ".join(_validation_message(item) for item in detail)
    return str(detail)


def refusal_for(exc: BaseException) -> DomainError | None:
    """The refusal a failure stands for, or None when it is a bug. Every failure a client can
    see passes through here, from DRF views and from Django alike."""
    if isinstance(exc, DomainError):
        return exc
    if isinstance(exc, exceptions.APIException):
        refusal = DomainError(
            _validation_message(exc.detail)
            if isinstance(exc, exceptions.ValidationError)
            else str(exc.detail)
        )
        refusal.status_code = exc.status_code
        refusal.code = next((c for t, c in _DRF_CODES.items() if isinstance(exc, t)), "error")
        wait = getattr(exc, "wait", None)
        if isinstance(exc, exceptions.Throttled) and wait is not None:
            refusal.headers = {"Retry-After": str(int(wait) + 1)}
        return refusal
    if isinstance(exc, Http404):
        return NotFound()
    if isinstance(exc, DjangoPermissionDenied):
        return Forbidden()
    if isinstance(exc, RequestDataTooBig):
        return PayloadTooLarge()
    if isinstance(exc, TooManyFieldsSent | TooManyFilesSent):
        return DomainError("The request has more fields than this API takes.")
    if isinstance(exc, UnreadablePostError):
        return DomainError("The body could not be read to its end.")
    if isinstance(exc, SuspiciousOperation):
        return DomainError("The request is malformed.")
    if isinstance(exc, _UNAVAILABLE):
        return BackendUnavailable()
    return None


def error_response(exc: BaseException, path: str) -> JsonResponse:
    """The one rendering of every failure. A bug is logged with its trace and answered 500
    without detail; a backing service that is down is logged and answered 503."""
    refusal = refusal_for(exc)
    if refusal is None:
        logger.error("unhandled error in %s", path, exc_info=exc)
        refusal = InternalError()
    elif isinstance(refusal, BackendUnavailable):
        logger.warning("backing service unavailable in %s: %r", path, exc)
    return shaped(refusal.status_code, refusal.code, refusal.message, refusal.headers)


def shaped(
    status_code: int,
    code: str,
    message: str,
    headers: dict[str, str] | None = None,
    **extra: object,
) -> JsonResponse:
    response = JsonResponse(error_body(code, message, **extra), status=status_code)
    for name, value in (headers or {}).items():
        response[name] = value
    return response


def exception_handler(exc: Exception, context: dict[str, Any]) -> HttpResponse:
    """DRF's hook. The answer is a plain JSON response, not a DRF Response, so that views whose
    renderers are not JSON (the schema in YAML, the docs in HTML) still fail in the one shape."""
    response = error_response(exc, context["request"].path)
    if isinstance(exc, exceptions.MethodNotAllowed):
        response["Allow"] = ", ".join(context["view"].allowed_methods)
    return response


def keep_page(response: HttpResponse) -> HttpResponse:
    """An error page made for a person at a browser, which the one shape would hide (the admin
    login's lockout page): ErrorShapeMiddleware lets it pass as it is."""
    response.keep_page = True  # type: ignore[attr-defined]
    return response
