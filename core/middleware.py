"""Middleware of the platform: request metrics and log lines, the body size guard, and messages
made only when used."""

import logging
import time
from collections.abc import Callable

from django.conf import settings
from django.contrib.messages.middleware import MessageMiddleware
from django.contrib.messages.storage import default_storage
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.functional import SimpleLazyObject, empty
from django_prometheus.middleware import Metrics

from core.errors import PayloadTooLarge, error_body

logger = logging.getLogger("requests")


class RequestMetricsMiddleware:
    """Per request, the three series of django-prometheus that the dashboard, the alerts and
    operators read (requests by method, responses by status, view and method, latency by view
    and method), and a log line for a request that failed or was slow. django-prometheus's own
    pair of middlewares writes eleven series per request, which made it the largest cost of a
    request in this service. Query strings are left out of the log on purpose: checkout codes
    travel in them. At DEBUG, every request is logged."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.metrics = Metrics.get_instance()

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        method = request.method if request.method in _METHODS else "<invalid method>"
        self.metrics.requests_by_method.labels(method).inc()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match else None) or "<unnamed view>"
        status = response.status_code
        self.metrics.responses_by_status_view_method.labels(str(status), view, method).inc()
        self.metrics.requests_latency_by_view_method.labels(view, method).observe(elapsed)
        if status >= 500 or elapsed >= settings.SLOW_REQUEST_SECONDS:
            _log(logging.WARNING, request, status, elapsed)
        elif logger.isEnabledFor(logging.DEBUG):
            _log(logging.DEBUG, request, status, elapsed)
        return response


_METHODS = frozenset(
    ("GET", "HEAD", "POST", "PUT", "DELETE", "TRACE", "OPTIONS", "CONNECT", "PATCH")
)


def _log(level: int, request: HttpRequest, status: int, elapsed: float) -> None:
    duration_ms = round(elapsed * 1000, 2)
    logger.log(
        level,
        "%s %s %s %sms",
        request.method,
        request.path,
        status,
        duration_ms,
        extra={
            "method": request.method,
            "path": request.path,
            "status": status,
            "duration_ms": duration_ms,
        },
    )


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


class LazyMessageMiddleware(MessageMiddleware):
    """Django's message storage, made when something first uses it. Only the admin's pages
    use messages; making the storage (a cookie and a session store) for every API request cost
    about 7 % of a ticket acknowledgement's CPU in a profile."""

    def process_request(self, request: HttpRequest) -> None:
        request._messages = SimpleLazyObject(lambda: default_storage(request))  # type: ignore[attr-defined]

    def process_response(self, request: HttpRequest, response: HttpResponse) -> HttpResponse:
        if request._messages._wrapped is empty:  # type: ignore[attr-defined]
            return response
        return super().process_response(request, response)
