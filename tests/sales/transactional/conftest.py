from collections.abc import Iterator

import pytest
from django.conf import settings as django_settings

from sales.models import CheckoutAttempt


@pytest.fixture(params=["redis", "cluster", "postgres"])
def path(request, settings) -> Iterator[str]:
    """The races run on one Redis, on a Redis Cluster and on PostgreSQL alone."""
    if request.param == "postgres":
        settings.REDIS_URL = ""
    elif not django_settings.REDIS_URL:
        pytest.skip("Redis is not configured")
    elif request.param == "cluster":
        request.getfixturevalue("on_redis_cluster")
    yield request.param
    if request.param == "cluster":
        decided = CheckoutAttempt.objects.filter(via_redis=True).exists()
        assert decided, "the cluster decided checkouts, not the PostgreSQL fallback"
