"""The Redis fast path: one Lua script per decision, atomic in Redis.

Per sale, Redis keeps the sold items, the live holds, each buyer's live holds and each buyer's
purchase count, all under one hash tag so that a sale lives in one cluster slot. Redis may lose
everything at any moment: a sale's state is rebuilt from PostgreSQL the first time it is found
missing (its `ready` key is gone) or after this process failed to write to it.
"""

import logging
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from django.conf import settings
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from core.process import PerProcess
from sales.metrics import REDIS_FALLBACKS
from sales.models import Buyer, Item, Purchase
from sales.selectors import live_holds
from sales.stock._decision import Decision, new_code
from sales.stock._items import ItemInfo

logger = logging.getLogger(__name__)

KEY_LIFETIME_SECONDS = 2 * 24 * 3600  # a sale's Redis state is rebuilt if it outlives this
CIRCUIT_OPEN_SECONDS = 1.0  # after a Redis error, how long this process uses PostgreSQL only
REBUILD_LOCK_MS = 10_000
LEARN_BATCH = 500  # items per script call: a script blocks Redis while it runs

_LUA = {
    name: (Path(__file__).parent / f"{name}.lua").read_text()
    for name in ("checkout", "sold", "release", "unlock", "learn")
}


class _FastPath:
    """This process's view of Redis: its client, its scripts and a circuit breaker. The sales
    whose Redis state missed one of this process's writes are `stale`, and rebuilt before Redis
    decides for them again."""

    def __init__(self) -> None:
        self.client: Redis | None = None
        self.down_until = 0.0
        self.stale: set[int] = set()
        self.scripts: dict[str, Script] = {}

    def script(self, client: Redis, name: str) -> Script:
        if name not in self.scripts:
            self.scripts[name] = client.register_script(_LUA[name])
        return self.scripts[name]


_state = PerProcess(_FastPath)


class Keys(NamedTuple):
    """A sale's keys, in the order the scripts take them (KEYS[1], KEYS[2]...)."""

    ready: str
    sold: str
    holds: str
    user: str  # the buyer's live holds
    bought: str
    fresh: str  # holds proposed lately, for the reconciler to check against PostgreSQL


def keys(sale_id: int, user_id: str = "") -> Keys:
    tag = f"{{sale:{sale_id}}}"
    return Keys(
        f"{tag}:ready",
        f"{tag}:sold",
        f"{tag}:holds",
        f"{tag}:user:{user_id}",
        f"{tag}:bought",
        f"{tag}:fresh",
    )


def _client(sale_id: int) -> Redis | None:
    """The Redis client, or None while Redis is unconfigured or the circuit is open."""
    if not settings.REDIS_URL:
        return None
    state = _state.get()
    if time.monotonic() < state.down_until:
        _trip(sale_id, "circuit_open")
        return None
    if state.client is None:
        state.client = get_redis_connection("stock")
    client = state.client
    if sale_id in state.stale:
        # This process changed the sale while Redis was away: rebuild before trusting it.
        client.delete(keys(sale_id).ready)
        state.stale.discard(sale_id)
    return client


def _trip(sale_id: int, reason: str) -> None:
    state = _state.get()
    if reason == "error":
        state.down_until = time.monotonic() + CIRCUIT_OPEN_SECONDS
        logger.warning("redis unavailable; using PostgreSQL", extra={"sale_id": sale_id})
    state.stale.add(sale_id)
    REDIS_FALLBACKS.labels(reason).inc()


def decide(item: ItemInfo, user_id: str, now: datetime) -> Decision | None:
    """The decision from Redis, or None when PostgreSQL must decide."""
    now_ms = int(now.timestamp() * 1000)
    expires_ms = now_ms + item.ttl_seconds * 1000
    try:
        client = _client(item.sale_id)
        if client is None:
            return None
        run = _state.get().script(client, "checkout")
        sale_keys = keys(item.sale_id, user_id)
        args: list[str | int] = [item.id, user_id, new_code(), now_ms, expires_ms]
        args += [item.user_limit, KEY_LIFETIME_SECONDS]
        answer = run(keys=sale_keys, args=args, client=client)
        if answer[0] == b"cold":
            if not _rebuild(client, item.sale_id):
                # Not marked stale: another process is rebuilding, and a mark would make every
                # process ask for one more rebuild, forever, under a rush.
                REDIS_FALLBACKS.labels("rebuilding").inc()
                return None
            answer = run(keys=sale_keys, args=args, client=client)
    except RedisError:
        _trip(item.sale_id, "error")
        return None
    outcome = answer[0].decode()
    if outcome == "cold":
        return None
    if len(answer) == 1:
        return Decision(outcome)
    expires_at = datetime.fromtimestamp(int(answer[2]) / 1000, tz=UTC)
    return Decision(outcome, answer[1].decode(), expires_at)


def sold(sale_id: int, item_id: int, user_id: str) -> None:
    """Tell Redis the item is sold (idempotent); a missed write marks the sale stale."""
    try:
        client = _client(sale_id)
        if client is not None:
            run = _state.get().script(client, "sold")
            sale_keys = keys(sale_id, user_id)
            if not run(
                keys=sale_keys, args=[item_id, user_id, KEY_LIFETIME_SECONDS], client=client
            ):
                # Not ready: a rebuild may have read PostgreSQL before this purchase.
                _state.get().stale.add(sale_id)
    except RedisError:
        _trip(sale_id, "error")


def release(item: ItemInfo, user_id: str, decision: Decision) -> None:
    """Drop a hold nobody was told of, so that it does not block the item."""
    assert decision.expires_at is not None
    hold = f"{user_id} {decision.code} {int(decision.expires_at.timestamp() * 1000)}"
    try:
        client = _client(item.sale_id)
        if client is not None:
            run = _state.get().script(client, "release")
            run(keys=keys(item.sale_id, user_id), args=[item.id, hold], client=client)
    except RedisError:
        _trip(item.sale_id, "error")


def learn(sale_id: int, item_ids: list[int]) -> None:
    """Set Redis to the items' claims in PostgreSQL: sold, held (by whom, until when), or,
    when Redis holds one that PostgreSQL does not, free. One script call per few hundred items
    (a sale's keys share one cluster slot); idempotent."""
    now = timezone.now()
    try:
        client = _client(sale_id)
        if client is None:
            return
        run = _state.get().script(client, "learn")
        claims = list(
            Item.objects.filter(pk__in=item_ids).values_list(
                "pk", "sold", "claimed_by", "claim_code", "claimed_until"
            )
        )
        sale = keys(sale_id)
        for start in range(0, len(claims), LEARN_BATCH):
            holders: list[str] = []
            args: list[str | int] = [KEY_LIFETIME_SECONDS]
            for item_id, sold, holder, code, until in claims[start : start + LEARN_BATCH]:
                claim = "sold" if sold else ""
                if not sold and until is not None and until > now:
                    claim = f"{holder} {code} {int(until.timestamp() * 1000)}"
                holders.append(keys(sale_id, holder).user)
                args += [item_id, holder, claim]
            run(keys=[sale.ready, sale.sold, sale.holds, sale.bought, *holders], args=args)
    except RedisError:
        _trip(sale_id, "error")


def sale_opened(sale_id: int) -> None:
    """A new sale has nothing sold, held or bought: only mark it ready."""
    try:
        client = _client(sale_id)
        if client is not None:
            client.set(keys(sale_id).ready, 1, ex=KEY_LIFETIME_SECONDS)
    except RedisError:
        _trip(sale_id, "error")


def _rebuild(client: Redis, sale_id: int) -> bool:
    """Rebuild a sale's Redis state from PostgreSQL. False if another process is doing it.

    Writes only add or overwrite with what PostgreSQL says, so leftovers of an older state are
    either corrected or harmless (a stale hold on a sold item is never read past the sold set).
    """
    lock, token = f"{{sale:{sale_id}}}:rebuilding", secrets.token_hex(8)
    if not client.set(lock, token, nx=True, px=REBUILD_LOCK_MS):
        return False
    try:
        now = timezone.now()
        ready, sold_key, holds_key, _, bought_key, _ = keys(sale_id)
        pipe = client.pipeline(transaction=True)
        sold = list(Purchase.objects.filter(sale_id=sale_id).values_list("item_id", "user_id"))
        if sold:
            pipe.sadd(sold_key, *(item for item, _ in sold))
        for item_id, user_id in sold:
            pipe.zrem(keys(sale_id, user_id).user, item_id)
        holds: dict[int, Any] = {}
        for hold in (
            live_holds(now)
            .filter(sale_id=sale_id)
            .order_by("expires_at")
            .values_list("item_id", "user_id", "code", "expires_at")
        ):
            holds[hold[0]] = hold  # the latest hold on an item wins
        for item_id, user_id, code, expires_at in holds.values():
            expires_ms = int(expires_at.timestamp() * 1000)
            pipe.hset(holds_key, str(item_id), f"{user_id} {code} {expires_ms}")
            user_key = keys(sale_id, user_id).user
            pipe.zadd(user_key, {str(item_id): expires_ms})
            pipe.expire(user_key, KEY_LIFETIME_SECONDS)
        for user_id, purchased in Buyer.objects.filter(
            sale_id=sale_id, purchased__gt=0
        ).values_list("user_id", "purchased"):
            pipe.hset(bought_key, user_id, purchased)
        for key in (sold_key, holds_key, bought_key):
            pipe.expire(key, KEY_LIFETIME_SECONDS)
        pipe.set(ready, 1, ex=KEY_LIFETIME_SECONDS)
        pipe.execute()
        logger.info(
            "redis state rebuilt from PostgreSQL",
            extra={"sale_id": sale_id, "sold": len(sold), "holds": len(holds)},
        )
        return True
    finally:
        unlock(client, lock, token)


def unlock(client: Redis, lock: str, token: str) -> None:
    """Release a lock if it is still ours: past its expiry, another process may hold a new
    one."""
    _state.get().script(client, "unlock")(keys=[lock], args=[token], client=client)
