"""/metrics: django-prometheus's exporter, after the gauges derived from the database and the
spool (sale figures, ticket backlog, spool depth) are set, so that a scrape sees current values."""

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django_prometheus.exports import ExportToDjangoView

from operations import gauges


def metrics(request: HttpRequest) -> HttpResponse:
    gauges.refresh(now=timezone.now())
    return ExportToDjangoView(request)
