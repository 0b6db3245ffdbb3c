"""Middleware of the platform: every answer in the one error shape, request metrics and log
lines, the body size guard, and the middleware of pages run for pages only."""

import functools
import logging
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from typing import Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.handlers.exception import convert_exception_to_response
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils.module_loading import import_string
from django_prometheus.middleware import Metrics
from rest_framework.authentication import SessionAuthentication
from rest_framework.views import APIView

from core.errors import PayloadTooLarge, shaped

logger = logging.getLogger("requests")


class ErrorShapeMiddleware:
    """Outermost: what the views and handlers above leave outside the one shape is put in it
    here: answers that Django, WhiteNoise or a view build themselves (a 405 with no body, an
    HTML page), but for a page marked by `keep_page`. It also refuses a NUL character in the
    path or the query: no endpoint takes one, and PostgreSQL cannot store one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if "\x00" in request.path or "%00" in request.META.get("QUERY_STRING", ""):
            return shaped(400, "invalid_request", "The path or query holds a NUL character.")
        response = self.get_response(request)
        if (
            response.status_code < 400
            or response.get("Content-Type") == "application/json"
            or getattr(response, "keep_page", False)
        ):
            return response
        status_code = response.status_code
        default = "internal_error" if status_code >= 500 else "invalid_request"
        phrase = HTTPStatus(status_code).phrase if status_code in _PHRASES else "Error"
        reshaped = shaped(status_code, _STATUS_CODES.get(status_code, default), f"{phrase}.")
        for header in ("Allow", "Retry-After"):
            if header in response:
                reshaped[header] = response[header]
        return reshaped


_PHRASES = {s.value for s in HTTPStatus}


# The codes of the statuses that Django, WhiteNoise or a view answer without the one shape.
_STATUS_CODES = {
    400: "invalid_request",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "payload_too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    429: "rate_limited",
    431: "headers_too_large",
    503: "service_unavailable",
}


class RequestMetricsMiddleware:
    """Per request, the three series of django-prometheus that the dashboard, the alerts and
    operators read (requests by method, responses by status, view and method, latency by view
    and method), and a log line for a request that failed or was slow. django-prometheus's own
    pair of middlewares writes eleven series per request, which made it the largest cost of a
    request in this service. Query strings are left out of the log on purpose: checkout codes
    travel in them. A busy answer of admission control is shed load, counted and not logged. At
    DEBUG, every request is logged."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        method = request.method if request.method in _METHODS else "<invalid method>"
        requested(method)
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        view = (match.view_name if match else None) or "<unnamed view>"
        status = response.status_code
        answered(status, view, method, elapsed)
        failed = status >= 500 and not getattr(response, "shed", False)
        if failed or elapsed >= settings.SLOW_REQUEST_SECONDS:
            _log(logging.WARNING, request, status, elapsed)
        elif logger.isEnabledFor(logging.DEBUG):
            _log(logging.DEBUG, request, status, elapsed)
        return response


# Each series found once: labels() costs more than the count it leads to. There are as many as
# views, methods and statuses.
@functools.cache
def _requests(method: str) -> Any:
    return _metrics().requests_by_method.labels(method)


@functools.cache
def _answers(status: int, view: str, method: str) -> tuple[Any, Any]:
    metrics = _metrics()
    return (
        metrics.responses_by_status_view_method.labels(str(status), view, method),
        metrics.requests_latency_by_view_method.labels(view, method),
    )


_making = threading.Lock()


def _metrics() -> Metrics:
    """django-prometheus's series, made by the first request of a process. Its own accessor is
    not thread-safe, and a rush's first requests arrive together: two threads each making the
    series, the second's registration failed, and so did its request, with a 500 after the
    view had done its work (a checkout's row stored)."""
    with _making:
        return Metrics.get_instance()


def answered(status: int, view: str, method: str, elapsed: float) -> None:
    """Count an answer in the series of RequestMetricsMiddleware (the request by its method
    when it came in); whoever answers before Django (core/admission.py's door) counts its own."""
    responses, latency = _answers(status, view, method)
    responses.inc()
    latency.observe(elapsed)


def requested(method: str) -> None:
    _requests(method).inc()


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
    """Refuse a body larger than its view takes, or with an unreadable length, before anything
    reads it. A view names its limit in `body_limit`: the name of the setting that holds it
    (API_MAX_BODY_BYTES when it names none), or None when the view enforces a limit itself,
    as checkout does to record the refusal as an attempt. A path no view serves is answered 404
    with its body unread."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], *args: Any
    ) -> HttpResponse | None:
        setting = getattr(getattr(view, "view_class", view), "body_limit", "API_MAX_BODY_BYTES")
        try:
            body_within_limit(request, None if setting is None else getattr(settings, setting))
        except PayloadTooLarge as refusal:
            return shaped(refusal.status_code, refusal.code, refusal.message)
        return None


class PageMiddleware:
    """The middleware of pages, `settings.PAGE_MIDDLEWARE` (static files, sessions, CSRF,
    authentication, messages, the admin lockout), run in order around the requests that need
    it: every view but a DRF view that authenticates no session. The API of
    buyers and tills uses none of it, and it cost about a third of a checkout's CPU. A path no
    view serves counts as a page: static files, and Django's 404 with its trailing-slash
    redirect."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.api = get_response
        self.view_hooks: list[Callable[..., HttpResponse | None]] = []
        chain: Callable[[HttpRequest], Any] = get_response
        for path in reversed(settings.PAGE_MIDDLEWARE):
            middleware = import_string(path)(chain)
            for hook in ("process_exception", "process_template_response"):
                if hasattr(middleware, hook):
                    raise ImproperlyConfigured(f"PAGE_MIDDLEWARE: {path}.{hook} would not run")
            if hasattr(middleware, "process_view"):
                self.view_hooks.insert(0, middleware.process_view)
            chain = convert_exception_to_response(middleware)
        self.pages = chain

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return (self.pages if serves_page(request.path_info) else self.api)(request)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], *args: Any
    ) -> HttpResponse | None:
        if not serves_page(request.path_info):
            return None
        for hook in self.view_hooks:
            if (response := hook(request, view, *args)) is not None:
                return response
        return None


@functools.lru_cache(maxsize=4096)
def serves_page(path: str) -> bool:
    try:
        view = resolve(path).func
    except Resolver404:
        return True
    view_class = getattr(view, "view_class", None)
    return not (
        isinstance(view_class, type)
        and issubclass(view_class, APIView)
        and not any(issubclass(a, SessionAuthentication) for a in view_class.authentication_classes)
    )
