from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from sales.models import Sale
from sales.services import sale_open
from testkit.engines import RedisCluster
from testkit.stack import RedisServer


@pytest.fixture(params=["redis", "postgres"])
def path(request, settings) -> str:
    """Run the test on the Redis fast path and again on the PostgreSQL path."""
    if request.param == "redis":
        if not django_settings.REDIS_URL:
            pytest.skip("Redis is not configured")
    else:
        settings.REDIS_URL = ""
    return request.param


@pytest.fixture
def open_sale() -> Callable[..., Sale]:
    def open_(items: int = 5, user_limit: int = 3, ttl: int = 120, starts_in: float = 0) -> Sale:
        return sale_open(
            starts_at=timezone.now() + timedelta(seconds=starts_in),
            item_count=items,
            user_limit=user_limit,
            ttl_seconds=ttl,
        )

    return open_


@pytest.fixture
def own_redis(settings) -> Iterator[RedisServer]:
    """Point the service at a throw-away redis-server (never the shared one)."""
    server = RedisServer()
    server.start()
    settings.REDIS_URL = server.url
    settings.CACHES = {
        alias: {**config, "LOCATION": server.url} for alias, config in settings.CACHES.items()
    }
    yield server
    server.kill()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of the suite's own: three masters, three replicas."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture
def on_redis_cluster(settings, redis_cluster) -> RedisCluster:
    """Point the service's Redis aliases at the suite's cluster, as REDIS_CLUSTER=true does."""
    if not django_settings.REDIS_URL:
        pytest.skip("Redis is not configured")
    settings.REDIS_URL, settings.REDIS_CLUSTER = redis_cluster.url, True
    factory = {"CONNECTION_FACTORY": "config.redis.ClusterConnectionFactory"}
    settings.CACHES = {
        alias: {
            **config,
            "LOCATION": redis_cluster.url,
            "OPTIONS": {**config["OPTIONS"], **factory},
        }
        for alias, config in settings.CACHES.items()
    }
    return redis_cluster
