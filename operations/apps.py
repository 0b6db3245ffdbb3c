from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


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
