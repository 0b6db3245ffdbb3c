"""Rate limits: fixed-window counters per client address and per caller identity.

The counters live in Redis when it is configured, so a limit holds across processes and
machines; without Redis they live in the in-process cache. A limiter that cannot reach its
counters lets the request through: a rate limit must not take the sale down with Redis.
"""

import logging
import time
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django_redis import get_redis_connection
from redis.exceptions import RedisError
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle

from core.inputs import request_fields_as_sent

logger = logging.getLogger(__name__)


def _count(windows: dict[str, int]) -> list[int] | None:
    """Increment each key's counter (expiring after its window) in one round trip; None when
    the counters are unreachable. Each counter is made with its expiry before it is counted, so
    a client killed between the two commands never leaves a counter that would refuse its
    caller for good (keys of one request may sit in several cluster slots: no MULTI)."""
    try:
        if settings.REDIS_URL:
            pipe = get_redis_connection("default").pipeline(transaction=False)
            for key, window in windows.items():
                pipe.set(key, 0, ex=window, nx=True)
                pipe.incr(key)
            return [int(n) for n in pipe.execute()[1::2]]
        counts = []
        for key, window in windows.items():
            cache.add(key, 0, window)
            counts.append(cache.incr(key))
        return counts
    except (RedisError, ValueError, OSError):
        logger.warning("rate limit counters unreachable; letting the request through")
        return None


class RateLimit(BaseThrottle):
    """Subclasses name the identities to count (`identities`); the address is always counted.

    Rates, `(requests, window seconds)` or None for no limit, come from
    `settings.RATE_LIMITS[scope]` and `settings.RATE_LIMITS["address"]`.
    """

    scope = ""

    def __init__(self) -> None:
        self.retry_after: float | None = None

    def identities(self, request: Request) -> list[str]:
        return []

    def allow_request(self, request: Request, view: Any) -> bool:
        now = time.time()
        active: list[tuple[str, tuple[int, int]]] = []
        if rate := settings.RATE_LIMITS[self.scope]:
            active += [(f"{self.scope}:{ident}", rate) for ident in self.identities(request)]
        if rate := settings.RATE_LIMITS["address"]:
            active.append((f"address:{self.get_ident(request)}", rate))
        if not active:
            return True
        windows = {
            f"ratelimit:{key}:{window}:{int(now // window)}": window for key, (_, window) in active
        }
        counts = _count(windows) or [0] * len(active)
        for (_, (allowed, window)), counted in zip(active, counts, strict=True):
            if counted > allowed:
                self.retry_after = window - now % window
                return False
        return True

    def wait(self) -> float | None:
        return self.retry_after


def request_value(request: Request, name: str) -> str | None:
    """A field as the view reads it, cut to a counter key's size."""
    value = request_fields_as_sent(request).get(name)
    return None if value is None else str(value)[:64]
