from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """The shared kernel: registered so that its management commands are found."""

    name = "config"
    label = "platform"
