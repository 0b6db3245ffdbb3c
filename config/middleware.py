"""Middleware of the platform: the request log line and the body size guard."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.errors import PayloadTooLarge, error_body

logger = logging.getLogger("requests")


class RequestLogMiddleware:
    """One log line per request: method, path, status and duration. Query strings are left out
    on purpose: checkout codes travel in them."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        duration_ms = round((time.perf_counter() - started) * 1000, 2)
        logger.info(
            "%s %s %s %sms",
            request.method,
            request.path,
            response.status_code,
            duration_ms,
            extra={
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": duration_ms,
            },
        )
        return response


def body_within_limit(request: HttpRequest, limit: int | None) -> None:
    """Raise PayloadTooLarge when the declared length is unreadable or over `limit` (None: no
    limit here): checked before anything reads the body."""
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not (declared.isascii() and declared.isdigit()):
        raise PayloadTooLarge("Content-Length must be a whole number of bytes.")
    if limit is not None and int(declared) > limit:
        raise PayloadTooLarge(f"The body must be at most {limit} bytes.")


class BodyLimitMiddleware:
    """Refuse a body larger than API_MAX_BODY_BYTES, or with an unreadable length, before
    anything reads it. Two views enforce the size themselves: the ticket webhook (a larger one,
    also while it reads) and checkout (which records the refusal as a checkout attempt)."""

    exempt = ("/ticket", "/checkout")

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        limit = None if request.path in self.exempt else settings.API_MAX_BODY_BYTES
        try:
            body_within_limit(request, limit)
        except PayloadTooLarge as refusal:
            return JsonResponse(error_body(refusal.code, refusal.message), status=413)
        return self.get_response(request)
