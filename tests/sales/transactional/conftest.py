from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings

from sales.models import CheckoutAttempt
from testkit.engines import RedisCluster


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisCluster]:
    """A Redis Cluster of the suite's own: three masters, three replicas."""
    with RedisCluster() as cluster:
        yield cluster


@pytest.fixture(params=["redis", "cluster", "postgres"])
def path(request, settings) -> Iterator[str]:
    """The races run on one Redis, on a Redis Cluster (as REDIS_CLUSTER=true configures it)
    and on PostgreSQL alone."""
    if request.param == "postgres":
        settings.REDIS_URL = ""
    elif not django_settings.REDIS_URL:
        pytest.skip("Redis is not configured")
    elif request.param == "cluster":
        cluster: RedisCluster = request.getfixturevalue("redis_cluster")
        settings.REDIS_URL, settings.REDIS_CLUSTER = cluster.url, True
        factory = {"CONNECTION_FACTORY": "config.redis.ClusterConnectionFactory"}
        settings.CACHES = {
            alias: {**config, "LOCATION": cluster.url, "OPTIONS": {**config["OPTIONS"], **factory}}
            for alias, config in settings.CACHES.items()
        }
    yield request.param
    if request.param == "cluster":
        decided = CheckoutAttempt.objects.filter(via_redis=True).exists()
        assert decided, "the cluster decided checkouts, not the PostgreSQL fallback"
