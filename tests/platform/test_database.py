"""The database backend: django-prometheus's query metrics, at no class per connection."""

import pytest
from django.db import connection
from prometheus_client import REGISTRY

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="the PostgreSQL backend"),
    pytest.mark.django_db,
]


def _executed() -> float:
    labels = {"alias": connection.alias, "vendor": connection.vendor}
    return REGISTRY.get_sample_value("django_db_execute_total", labels) or 0.0


def test_every_connect_uses_one_cursor_class_that_counts_queries():
    factories = {connection.get_connection_params()["cursor_factory"] for _ in range(3)}
    assert len(factories) == 1, "a cursor class made per connect"
    before = _executed()
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        assert type(cursor.cursor) is next(iter(factories))
    assert _executed() == before + 1
