"""Liveness and readiness probes of the platform's backends."""

import time

from celery import current_app as celery_app
from django.conf import settings
from django.db import connection
from django_redis import get_redis_connection
from kombu import Connection

from core.process import PerProcess

_BROKER_CHECK_SECONDS = 5.0


class _BrokerAnswer:
    """This process's last broker probe: when, and what it found."""

    def __init__(self) -> None:
        self.checked_at = float("-inf")
        self.answer = ""


_broker = PerProcess(_BrokerAnswer)


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
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return "disabled"
    last = _broker.get()
    if time.monotonic() - last.checked_at < _BROKER_CHECK_SECONDS:
        return last.answer
    try:
        with Connection(celery_app.conf.broker_url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)
        answer = "ok"
    except Exception:
        answer = "down"
    last.checked_at, last.answer = time.monotonic(), answer
    return answer
