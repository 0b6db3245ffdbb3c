"""The admin login's lockout (django-axes, configured in config/settings.py): the client address it
counts by, the page a locked-out login is answered with, the metrics and log lines of failures
and refusals, and the admin page of failed logins that shows and lifts lockouts."""

import ipaddress
import logging
from typing import Any, cast

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt, AccessFailureLog
from django.conf import settings
from django.contrib import admin
from django.contrib.auth.signals import user_login_failed
from django.db.models import Max, OuterRef, Q, QuerySet, Subquery, Sum
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from prometheus_client import Counter
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.admin import badge
from core.errors import keep_page

logger = logging.getLogger(__name__)

LOGIN_FAILURES = Counter(
    "admin_login_failures_total",
    "Admin logins refused: a wrong username or password, or any try while locked out.",
)
LOCKOUTS = Counter(
    "admin_lockouts_total",
    "Admin logins answered with the lockout page: the failure that locked a username or an "
    "address, and every try while it stays locked.",
)


def client_address(request: HttpRequest) -> str | None:
    """The client's address as the rate limits see it (TRUSTED_PROXY_COUNT), or the connection's
    when what the proxies forwarded is not an address; None rather than a value the address
    column cannot store."""
    forwarded = BaseThrottle().get_ident(cast(Request, request))  # reads only headers and META
    for candidate in (forwarded, request.META.get("REMOTE_ADDR")):
        try:
            return str(ipaddress.ip_address(str(candidate).strip()))
        except ValueError:
            continue
    return None


@receiver(user_login_failed)
def count_failure(sender: Any, credentials: dict[str, Any], request: Any = None, **_: Any) -> None:
    LOGIN_FAILURES.inc()


def _duration(seconds: int) -> str:
    if seconds % 60:
        return f"{seconds} seconds"
    minutes = seconds // 60
    return "1 minute" if minutes == 1 else f"{minutes} minutes"


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict[str, Any] | None
) -> HttpResponse:
    """A login refused for a lockout: a page saying why, for how long and how to get unlocked,
    with 429 and Retry-After (each try while locked out starts the wait again)."""
    username = str((credentials or {}).get("username") or request.POST.get("username", ""))
    address = getattr(request, "axes_ip_address", None) or client_address(request)
    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    LOCKOUTS.inc()
    logger.warning(
        "admin login locked out: username=%r address=%s failures=%s",
        username,
        address,
        getattr(request, "axes_failures_since_start", None),
    )
    context = {
        **admin.site.each_context(request),
        "title": "Too many failed logins",
        "username": username,
        "address": address,
        "failure_limit": settings.AXES_FAILURE_LIMIT,
        "wait": _duration(seconds),
        "embedded": settings.EMBEDDED,
    }
    response = render(request, "admin/locked_out.html", context, status=429)
    response["Retry-After"] = str(seconds)
    return keep_page(response)


# -- the admin page ------------------------------------------------------------------------


def _recent_failures(field: str) -> QuerySet[AccessAttempt]:
    """Per row, the failures counted against its username (or address): those of every row
    with the same value within the cool-off, as the lockout counts them."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    return (
        AccessAttempt.objects.filter(attempt_time__gte=since, **{field: OuterRef(field)})
        .order_by()
        .values(field)
        .annotate(failures=Sum("failures_since_start"), last=Max("attempt_time"))
    )


class LockedOutFilter(admin.SimpleListFilter):
    title = "locked out"
    parameter_name = "locked"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        limit = settings.AXES_FAILURE_LIMIT
        locked = Q(user_failures__gte=limit) | Q(address_failures__gte=limit)
        if self.value() == "yes":
            return queryset.filter(locked)
        if self.value() == "no":
            return queryset.exclude(locked)
        return queryset


class LoginAttemptAdmin(AccessAttemptAdmin):
    """Failed admin logins (django-axes' records): which username or address is locked out and
    until when, and an action that unlocks them."""

    list_display = [
        "attempt_time",
        "username",
        "ip_address",
        "failures_since_start",
        "lockout",
        "user_agent",
        "path_info",
    ]
    list_filter = [LockedOutFilter, "attempt_time", "path_info"]
    actions = ["unlock", "cleanup_expired_attempts"]

    class Media:
        css = {"all": ("operator/admin.css",)}

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessAttempt]:
        by_user, by_address = _recent_failures("username"), _recent_failures("ip_address")
        return (
            super()
            .get_queryset(request)
            .annotate(
                user_failures=Subquery(by_user.values("failures")),
                user_last=Subquery(by_user.values("last")),
                address_failures=Subquery(by_address.values("failures")),
                address_last=Subquery(by_address.values("last")),
            )
        )

    @admin.display(description="locked out")
    def lockout(self, attempt: AccessAttempt) -> SafeString | str:
        """Whether the row's username or address is locked out now, and until when at the
        latest (a try before then starts the wait again)."""
        limit, cool_off = settings.AXES_FAILURE_LIMIT, settings.AXES_COOLOFF_TIME
        locked = [
            (what, getattr(attempt, f"{prefix}_last") + cool_off)
            for what, prefix in (("username", "user"), ("address", "address"))
            if (getattr(attempt, f"{prefix}_failures", None) or 0) >= limit
        ]
        if not locked:
            return "no"
        until = max(until for _, until in locked)
        what = " and ".join(what for what, _ in locked)
        return format_html(
            "{} until {}", badge(what, "#c62828"), f"{timezone.localtime(until):%H:%M:%S}"
        )

    @admin.action(description="Unlock the usernames and addresses of the selected rows")
    def unlock(self, request: HttpRequest, queryset: QuerySet[AccessAttempt]) -> None:
        rows = list(queryset.values_list("username", "ip_address"))
        usernames = sorted({username for username, _ in rows if username is not None})
        addresses = sorted({address for _, address in rows if address is not None})
        deleted, _ = AccessAttempt.objects.filter(
            Q(username__in=usernames) | Q(ip_address__in=addresses)
        ).delete()
        logger.warning(
            "admin login unlocked by %s: usernames=%s addresses=%s",
            request.user.get_username(),
            usernames,
            addresses,
        )
        self.message_user(
            request,
            f"Unlocked {', '.join([*usernames, *addresses])} "
            f"({deleted} failed-login records removed).",
        )


def register_admin() -> None:
    """django-axes registers its pages on the default admin site, the operators' (OperatorSite),
    when the admin discovers them; its page of failed logins is then replaced by the one above.
    Called from the operations app's ready(), which runs after the admin's (first in
    INSTALLED_APPS) has discovered every app's pages. Its page of the failure log goes: that
    log is off (AXES_ENABLE_ACCESS_FAILURE_LOG), the page would stay empty."""
    for model in (AccessAttempt, AccessFailureLog):
        if admin.site.is_registered(model):
            admin.site.unregister(model)
    admin.site.register(AccessAttempt, LoginAttemptAdmin)
