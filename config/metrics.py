"""/metrics: django-prometheus's exporter, after each app refreshes the gauges it derives from
the database (available items, backlog, spool depth), so that a scrape sees current values."""

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.utils.module_loading import import_string
from django_prometheus.exports import ExportToDjangoView


def metrics(request: HttpRequest) -> HttpResponse:
    for path in settings.METRICS_REFRESH:
        import_string(path)()
    return ExportToDjangoView(request)
