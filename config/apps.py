from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class PlatformConfig(AppConfig):
    """The shared kernel: registered so that its management commands are found."""

    name = "config"
    label = "platform"


class OperatorAdminConfig(admin_apps.AdminConfig):
    """Django's admin, with the site that opens on the operators' dashboard."""

    default = False  # named in INSTALLED_APPS; the platform's own config stays the default
    default_site = "config.admin.OperatorSite"
