from django.apps import AppConfig


class SalesConfig(AppConfig):
    name = "sales"

    def ready(self) -> None:
        from core import admission
        from sales.services import admission_minutes_add

        admission.on_flush(admission_minutes_add)
