from collections.abc import Iterator

import pytest
from django.conf import settings
from rest_framework.test import APIClient

from core.process import reset_all
from testkit.engines import RedisCluster


@pytest.fixture(scope="session", autouse=True)
def _clean_redis(django_db_setup, django_db_blocker):
    """The suite owns its Redis db index: start from nothing."""
    if settings.REDIS_URL:
        from django_redis import get_redis_connection

        get_redis_connection("stock").flushdb()


@pytest.fixture(autouse=True)
def _new_process_state():
    """Each test starts as a new server process would: no cached items, breakers closed."""
    reset_all()
    yield
    reset_all()


@pytest.fixture
def api() -> APIClient:
    return APIClient()


@pytest.fixture
def staff_api(django_user_model) -> APIClient:
    client = APIClient()
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    client.force_authenticate(user)
    return client


@pytest.fixture(scope="session", autouse=True)
def _tasks_in_process():
    """Tests run Celery tasks in-process unless a test starts a real worker itself."""
    from config.celery import app

    app.conf.task_always_eager = True


@pytest.fixture(scope="session", autouse=True)
def _close_connection_pools(django_db_setup):
    """Hand pooled connections back before the test database is dropped."""
    yield
    from django.db import connections

    for conn in connections.all():
        if hasattr(conn, "close_pool"):
            conn.close_pool()


@pytest.fixture(autouse=True)
def _no_rate_limits(settings):
    """Tests send many requests from one address; the rate limit tests set their own limits."""
    settings.RATE_LIMITS = {"user": None, "code": None, "address": None}


@pytest.fixture(autouse=True)
def _no_admission(settings):
    """A loaded machine slows every request, which admission control answers with `busy`;
    tests of other things must not see it. The admission tests turn it on."""
    settings.ADMISSION = {**settings.ADMISSION, "enabled": False}


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of the suite's own: three masters, three replicas."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def on_redis_cluster(settings, redis_cluster) -> RedisCluster:
    """Point the service's Redis aliases at the suite's cluster, as REDIS_CLUSTER=true does."""
    if not settings.REDIS_URL:
        pytest.skip("Redis is not configured")
    settings.REDIS_URL, settings.REDIS_CLUSTER = redis_cluster.url, True
    factory = {"CONNECTION_FACTORY": "core.redis.ClusterConnectionFactory"}
    settings.CACHES = {
        alias: {
            **config,
            "LOCATION": redis_cluster.url,
            "OPTIONS": {**config["OPTIONS"], **factory},
        }
        for alias, config in settings.CACHES.items()
    }
    return redis_cluster
