"""Middleware of the platform: the request log line and the body size guard."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse

from config.errors import error_body

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


class BodyLimitMiddleware:
    """Refuse a body larger than API_MAX_BODY_BYTES from its declared length, before anything
    reads it. The ticket webhook has its own, larger limit, enforced while it reads."""

    exempt = ("/ticket",)

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        declared = request.META.get("CONTENT_LENGTH") or "0"
        limit = settings.API_MAX_BODY_BYTES
        if request.path not in self.exempt and (
            not (declared.isascii() and declared.isdigit()) or int(declared) > limit
        ):
            return JsonResponse(
                error_body("payload_too_large", f"The body must be at most {limit} bytes."),
                status=413,
            )
        return self.get_response(request)
