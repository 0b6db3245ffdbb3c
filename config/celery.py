"""The Celery app; its configuration is the CELERY_* block of the Django settings."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("config")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

from core import watchdog  # noqa: E402, F401 (its signals stop a worker that no longer consumes)


@signals.worker_init.connect
def metrics_port(**_: object) -> None:
    """A worker's pool processes make the parse durations and the tickets' outcomes. With
    APP_METRICS_PORT, and PROMETHEUS_MULTIPROC_DIR naming an empty directory from the start
    (the worker has made metrics before this runs), its main process serves their sum, as the
    web server's main process serves its workers'."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from config.serve import serve_metrics_port

        serve_metrics_port()
