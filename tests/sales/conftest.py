from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone

from sales.models import Sale
from sales.services import sale_open
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
