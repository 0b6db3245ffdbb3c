"""Liveness and readiness probes of the platform's backends."""

import time

from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection
from kombu import Connection

from config.celery import app as celery_app

_BROKER_CHECK_SECONDS = 5.0
_broker_checked: tuple[float, str] = (0.0, "")


def database_status() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        return "down"


def redis_status() -> str:
    if not settings.REDIS_URL:
        return "disabled"
    try:
        get_redis_connection("stock").ping()
        return "ok"
    except Exception:
        return "down"


def broker_status() -> str:
    """Connecting to the broker costs a handshake, so one answer serves for a few seconds."""
    global _broker_checked
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "disabled"
    checked_at, answer = _broker_checked
    if time.monotonic() - checked_at < _BROKER_CHECK_SECONDS:
        return answer
    try:
        with Connection(celery_app.conf.broker_url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        answer = "ok"
    except Exception:
        answer = "down"
    _broker_checked = (time.monotonic(), answer)
    return answer
