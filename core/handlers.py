"""Django's error views, for what fails outside DRF's views (admin, metrics, middleware, URL
resolution): each answers in the one shape, through `core.errors`."""

import sys

from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, JsonResponse

from core.errors import Forbidden, InternalError, NotFound, error_response, refusal_for, shaped


def bad_request(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(exception or SuspiciousOperation(), request.path)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(Forbidden(), request.path)


def not_found(request: HttpRequest, exception: Exception | None = None) -> JsonResponse:
    return error_response(NotFound(f"No endpoint at {request.path}."), request.path)


def server_error(request: HttpRequest) -> JsonResponse:
    # Django calls handler500 inside its `except` block.
    exc = sys.exc_info()[1]
    refusal = refusal_for(exc) if exc is not None else None
    if refusal is None:  # Django has logged the trace already
        refusal = InternalError()
    return shaped(refusal.status_code, refusal.code, refusal.message, refusal.headers)


def csrf_failure(request: HttpRequest, reason: str = "") -> JsonResponse:
    return shaped(403, "csrf_failed", f"CSRF verification failed: {reason}")
