from typing import Any

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.core import checks

# The pages' middleware runs inside core.middleware.PageMiddleware: Django's and axes' checks
# look for it in MIDDLEWARE (silenced in settings), this one where it runs.
PAGE_PROTECTIONS = (
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "axes.middleware.AxesMiddleware",
)


@checks.register(checks.Tags.admin, checks.Tags.security)
def page_middleware(*args: Any, **kwargs: Any) -> list[checks.CheckMessage]:
    return [
        checks.Error(f"{name} must be in PAGE_MIDDLEWARE", id="operations.E001")
        for name in PAGE_PROTECTIONS
        if name not in settings.PAGE_MIDDLEWARE
    ]


class OperationsConfig(AppConfig):
    """The operators' room: the one app that reads both domains."""

    name = "operations"

    def ready(self) -> None:
        from operations import lockout  # connects the login failure counter

        lockout.register_admin()


class OperatorAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the site that opens on the operators' dashboard."""

    default = False  # named in INSTALLED_APPS; the operations app's own config stays the default
    default_site = "operations.admin.OperatorSite"
