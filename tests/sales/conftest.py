import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
import redis
from django.conf import settings as django_settings
from django.utils import timezone

from sales import stock
from sales.models import Sale
from sales.services import sale_open


@pytest.fixture(autouse=True)
def _new_process_state():
    """Each test starts as a new server process would: no cached items, circuit closed."""
    stock.forget()
    yield
    stock.forget()


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


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ThrowawayRedis:
    """A redis-server of the test's own, on a spare port, that the test may kill and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
        )
        client = redis.Redis.from_url(self.url)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("throw-away redis-server did not start")

    def pause(self) -> None:
        """Stop answering without losing anything, like a stalled server or a network cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def own_redis(settings) -> Iterator[ThrowawayRedis]:
    """Point the service at a throw-away redis-server (never the shared one)."""
    server = ThrowawayRedis()
    server.start()
    settings.REDIS_URL = server.url
    settings.CACHES = {
        alias: {**config, "LOCATION": server.url} for alias, config in settings.CACHES.items()
    }
    yield server
    server.kill()
