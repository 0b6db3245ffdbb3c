"""Stock: the one module that knows how an item is held and sold.

Two paths decide a checkout, with the same rules:

- **Redis fast path**: one Lua script per decision, atomic in Redis, then one INSERT of the
  attempt into PostgreSQL. Per sale, Redis keeps the sold items, the live holds, each buyer's live
  holds (a sorted set scored by expiry, so expired holds stop counting without a sweeper) and each
  buyer's purchase count, all under one hash tag so that a sale lives in one cluster slot.
- **PostgreSQL path**, used when Redis is not configured, fails, or is being rebuilt: one
  transaction that locks the (sale, user) `Buyer` row and then the item row, decides from the
  attempts and purchases, and records the attempt before it commits.

PostgreSQL is the source of truth: every hold is a `CheckoutAttempt` row and every sale a
`Purchase` row, written before the client is answered. Redis can lose everything at any moment;
its state for a sale is rebuilt from PostgreSQL the first time it is found missing (the `ready`
key is gone) or after this process failed to write to it. A purchase always runs in PostgreSQL,
under the `Buyer` row lock and the unique item and attempt constraints, so no fault of Redis can
oversell or exceed a user's limit; at worst, during a switch between paths, an item can be held
twice, and the second buyer's purchase is refused with `item_sold`.

Locks are taken in one order everywhere: the (sale, user) pair, then the item.
"""

import logging
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.db.models import QuerySet
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis
from redis.commands.core import Script
from redis.exceptions import RedisError

from sales.exceptions import CodeExpired, ItemNotFound, ItemSold, UserLimitReached
from sales.metrics import REDIS_FALLBACKS
from sales.models import Buyer, CheckoutAttempt, Item, Outcome, Purchase, Sale

logger = logging.getLogger(__name__)

KEY_LIFETIME_SECONDS = 2 * 24 * 3600  # a sale's Redis state is rebuilt if it outlives this
CIRCUIT_OPEN_SECONDS = 1.0  # after a Redis error, how long this process uses PostgreSQL only
REBUILD_LOCK_MS = 10_000


@dataclass(frozen=True)
class ItemInfo:
    """An item and the rules of its sale: immutable once the sale is open, so cached."""

    id: int
    name: str
    image_url: str
    sale_id: int
    starts_at: datetime
    user_limit: int
    ttl_seconds: int


class _ItemCache:
    """Items by id, loaded a whole sale at a time: a rush touches every item of a sale, and one
    query for the sale costs less than one per item. Only the latest few sales are kept."""

    SALES_KEPT = 8

    def __init__(self) -> None:
        self.items: dict[int, ItemInfo] = {}
        self.sales: list[int] = []
        self.loading = threading.Lock()  # the first requests of a rush load a sale once

    def get(self, item_id: int) -> ItemInfo:
        item = self.items.get(item_id)
        if item is None:
            sale_id = Item.objects.filter(pk=item_id).values_list("sale_id", flat=True).first()
            if sale_id is None:
                raise ItemNotFound()
            with self.loading:
                if item_id not in self.items:
                    self.load(sale_id)
            item = self.items[item_id]
        return item

    def load(self, sale_id: int) -> None:
        sale = Sale.objects.get(pk=sale_id)
        rules = (sale.pk, sale.starts_at, sale.user_limit, sale.ttl_seconds)
        loaded = {
            pk: ItemInfo(pk, name, image_url, *rules)
            for pk, name, image_url in Item.objects.filter(sale_id=sale_id).values_list(
                "pk", "name", "image_url"
            )
        }
        self.sales = [*self.sales, sale_id][-self.SALES_KEPT :]
        kept = set(self.sales)
        self.items = {k: v for k, v in self.items.items() if v.sale_id in kept} | loaded


@dataclass(frozen=True)
class Decision:
    outcome: str
    code: str = ""
    expires_at: datetime | None = None


def new_code() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits, 22 URL-safe characters


def checkout(*, item: ItemInfo, user_id: str) -> CheckoutAttempt:
    """Decide a checkout of a started sale's item and persist the attempt with its outcome."""
    now = timezone.now()
    decision = _redis_checkout(item, user_id, now)
    if decision is None:
        return _db_checkout(item, user_id, now)
    try:
        return _record(item, user_id, decision, via_redis=True)
    except Exception:
        if decision.outcome == Outcome.HELD:  # a hold nobody was told of must not block the item
            _redis_release(item, user_id, decision)
        raise


def purchase(*, attempt: CheckoutAttempt, item: ItemInfo) -> Purchase:
    """Sell the attempt's item to its user, or return the purchase this attempt already made.

    Raises `CodeExpired`, `UserLimitReached` or `ItemSold`. Expiry is checked again once the
    buyer's row is locked: waiting for the lock must not stretch a hold.
    """
    try:
        with transaction.atomic():
            if _lock_buyer(item, attempt.user_id, add=1) is None:
                raise UserLimitReached()
            if attempt.expires_at is None or attempt.expires_at <= timezone.now():
                raise CodeExpired()
            sold = Purchase.objects.create(
                sale_id=item.sale_id, item_id=item.id, attempt=attempt, user_id=attempt.user_id
            )
    except (IntegrityError, UserLimitReached, CodeExpired) as refusal:
        # A retry of a purchase that went through is answered with that purchase.
        done = Purchase.objects.filter(attempt=attempt).first()
        if done is not None:
            return done
        if not isinstance(refusal, IntegrityError):
            raise
        other = Purchase.objects.filter(item_id=item.id).first()
        if other is not None:
            _redis_sold(item, other.user_id)  # heal a Redis that still thinks it is for sale
        raise ItemSold() from None
    _redis_sold(item, attempt.user_id)
    return sold


def sale_opened(*, sale_id: int) -> None:
    """Prime Redis for a new sale: nothing sold, held or bought yet, so only mark it ready."""
    try:
        client = _client(sale_id)
        if client is not None:
            client.set(_keys(sale_id)[0], 1, ex=KEY_LIFETIME_SECONDS)
    except RedisError:
        _trip(sale_id, "error")


def live_holds(now: datetime) -> QuerySet[CheckoutAttempt]:
    """Holds that still count: not expired, on an item nobody has bought."""
    return CheckoutAttempt.objects.filter(
        outcome=Outcome.HELD, expires_at__gt=now, item__purchase__isnull=True
    )


# --- PostgreSQL path -------------------------------------------------------------------------


def _lock_buyer(item: ItemInfo, user_id: str, *, add: int) -> int | None:
    """Lock the (sale, user) row, creating it, and add `add` purchases if that stays within the
    limit. Returns the purchase count, or None when adding would exceed the limit.

    Must run inside a transaction: the row stays locked until it ends. One statement, whether the
    row exists or not, in PostgreSQL and SQLite alike.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {Buyer._meta.db_table} (sale_id, user_id, purchased, user_limit)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (sale_id, user_id) DO UPDATE SET purchased = excluded.purchased
                + {Buyer._meta.db_table}.purchased
            WHERE excluded.purchased + {Buyer._meta.db_table}.purchased
                <= {Buyer._meta.db_table}.user_limit
            RETURNING purchased
            """,  # noqa: S608 (table name from the model, values bound)
            [item.sale_id, user_id, add, item.user_limit],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _db_checkout(item: ItemInfo, user_id: str, now: datetime) -> CheckoutAttempt:
    with transaction.atomic():
        purchased = _lock_buyer(item, user_id, add=0)
        assert purchased is not None  # adding nothing is always within the limit
        list(Item.objects.select_for_update(no_key=True).filter(pk=item.id).values_list("pk"))
        decision = _db_decide(item, user_id, now, purchased)
        return _record(item, user_id, decision, via_redis=False)


def _db_decide(item: ItemInfo, user_id: str, now: datetime, purchased: int) -> Decision:
    """The rules, read from PostgreSQL. Assumes the caller holds the buyer and item locks."""
    if Purchase.objects.filter(item_id=item.id).exists():
        return Decision(Outcome.ITEM_SOLD)
    hold = (
        live_holds(now)
        .filter(item_id=item.id)
        .order_by("-expires_at")
        .values_list("user_id", "code", "expires_at")
        .first()
    )
    if hold is not None:
        holder, code, expires_at = hold
        if holder == user_id:
            return Decision(Outcome.EXISTING, code, expires_at)
        return Decision(Outcome.ITEM_RESERVED)
    held = (
        live_holds(now)
        .filter(sale_id=item.sale_id, user_id=user_id)
        .values("item_id")
        .distinct()
        .count()
    )
    if held + purchased >= item.user_limit:
        return Decision(Outcome.USER_LIMIT_REACHED)
    return Decision(Outcome.HELD, new_code(), now + timedelta(seconds=item.ttl_seconds))


_ATTEMPT_COLUMNS = (
    "sale_id",
    "item_id",
    "user_id",
    "requested_id",
    "outcome",
    "code",
    "expires_at",
    "via_redis",
    "created_at",
)
# The hottest statement of the service, written out: the ORM's create() costs several times
# the database's own work for it.
_INSERT_ATTEMPT = (
    f"INSERT INTO {CheckoutAttempt._meta.db_table} ({', '.join(_ATTEMPT_COLUMNS)}) "  # noqa: S608
    f"VALUES ({', '.join(['%s'] * len(_ATTEMPT_COLUMNS))}) RETURNING id"
)


def _record(
    item: ItemInfo, user_id: str, decision: Decision, *, via_redis: bool
) -> CheckoutAttempt:
    values = (
        item.sale_id,
        item.id,
        user_id,
        str(item.id),
        decision.outcome,
        decision.code,
        decision.expires_at,
        via_redis,
        timezone.now(),
    )
    with connection.cursor() as cursor:
        cursor.execute(_INSERT_ATTEMPT, values)
        (pk,) = cursor.fetchone()
    return CheckoutAttempt(id=pk, **dict(zip(_ATTEMPT_COLUMNS, values, strict=True)))


# --- Redis fast path -------------------------------------------------------------------------

# KEYS: ready, sold, holds, buyer's holds, bought.  ARGV: item, user, code, now, expires (ms),
# limit, key lifetime (s). A hold is "user code expires_ms" in the holds hash.
_CHECKOUT_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return {'cold'} end
local item, user, now = ARGV[1], ARGV[2], tonumber(ARGV[4])
if redis.call('SISMEMBER', KEYS[2], item) == 1 then return {'item_sold'} end
local hold = redis.call('HGET', KEYS[3], item)
if hold then
  local holder, code, expires = string.match(hold, '^(%S+) (%S+) (%d+)$')
  if tonumber(expires) > now then
    if holder == user then return {'existing', code, expires} end
    return {'item_reserved'}
  end
end
redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
local taken = redis.call('ZCARD', KEYS[4]) + tonumber(redis.call('HGET', KEYS[5], user) or '0')
if taken >= tonumber(ARGV[6]) then return {'user_limit_reached'} end
redis.call('HSET', KEYS[3], item, user .. ' ' .. ARGV[3] .. ' ' .. ARGV[5])
redis.call('ZADD', KEYS[4], ARGV[5], item)
redis.call('EXPIRE', KEYS[3], ARGV[7])
redis.call('EXPIRE', KEYS[4], ARGV[7])
return {'held', ARGV[3], ARGV[5]}
"""

# Same KEYS. ARGV: item, user, key lifetime. Idempotent: a retry does not count twice.
_SOLD_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
if redis.call('SADD', KEYS[2], ARGV[1]) == 1 then
  redis.call('HINCRBY', KEYS[5], ARGV[2], 1)
end
redis.call('HDEL', KEYS[3], ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('EXPIRE', KEYS[2], ARGV[3])
redis.call('EXPIRE', KEYS[5], ARGV[3])
return 1
"""


def item_info(item_id: int) -> ItemInfo:
    """The item with its sale's rules; raises `ItemNotFound`."""
    return _fast.item_cache.get(item_id)


# Same KEYS. ARGV: item, the hold as stored. Removes that hold only, not a newer one.
_RELEASE_LUA = """
if redis.call('HGET', KEYS[3], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[3], ARGV[1])
  redis.call('ZREM', KEYS[4], ARGV[1])
end
return 1
"""


class _FastPath:
    """This process's view of Redis: its scripts and a circuit breaker. Losing it loses nothing
    but speed; the sales whose Redis state missed one of this process's writes are rebuilt."""

    def __init__(self) -> None:
        self.down_until = 0.0
        self.stale: set[int] = set()
        self.scripts: dict[str, Script] = {}
        self.item_cache = _ItemCache()

    def script(self, client: Redis, source: str) -> Script:
        if source not in self.scripts:
            self.scripts[source] = client.register_script(source)
        return self.scripts[source]


_fast = _FastPath()


def forget() -> None:
    """Drop this process's caches and circuit state, as a new process would start."""
    global _fast
    _fast = _FastPath()


def _keys(sale_id: int, user_id: str = "") -> list[str]:
    tag = f"{{sale:{sale_id}}}"
    return [f"{tag}:ready", f"{tag}:sold", f"{tag}:holds", f"{tag}:user:{user_id}", f"{tag}:bought"]


def _client(sale_id: int) -> Redis | None:
    """The Redis client, or None while Redis is unconfigured or the circuit is open."""
    if not settings.REDIS_URL:
        return None
    if time.monotonic() < _fast.down_until:
        _trip(sale_id, "circuit_open")
        return None
    client: Redis = get_redis_connection("stock")
    if sale_id in _fast.stale:
        # This process changed the sale while Redis was away: rebuild before trusting it.
        client.delete(_keys(sale_id)[0])
        _fast.stale.discard(sale_id)
    return client


def _trip(sale_id: int, reason: str) -> None:
    if reason == "error":
        _fast.down_until = time.monotonic() + CIRCUIT_OPEN_SECONDS
        logger.warning("redis unavailable; using PostgreSQL", extra={"sale_id": sale_id})
    _fast.stale.add(sale_id)
    REDIS_FALLBACKS.labels(reason).inc()


def _redis_checkout(item: ItemInfo, user_id: str, now: datetime) -> Decision | None:
    """The decision from Redis, or None when PostgreSQL must decide."""
    now_ms = int(now.timestamp() * 1000)
    expires_ms = now_ms + item.ttl_seconds * 1000
    try:
        client = _client(item.sale_id)
        if client is None:
            return None
        run = _fast.script(client, _CHECKOUT_LUA)
        args: list[str | int] = [item.id, user_id, new_code(), now_ms, expires_ms, item.user_limit]
        keys = _keys(item.sale_id, user_id)
        answer = run(keys=keys, args=[*args, KEY_LIFETIME_SECONDS], client=client)
        if answer[0] == b"cold":
            if not _rebuild(client, item.sale_id):
                # Not marked stale: another process is rebuilding, and a mark would make every
                # process ask for one more rebuild, forever, under a rush.
                REDIS_FALLBACKS.labels("rebuilding").inc()
                return None
            answer = run(keys=keys, args=[*args, KEY_LIFETIME_SECONDS], client=client)
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


def _redis_sold(item: ItemInfo, user_id: str) -> None:
    try:
        client = _client(item.sale_id)
        if client is not None:
            run = _fast.script(client, _SOLD_LUA)
            keys = _keys(item.sale_id, user_id)
            if not run(keys=keys, args=[item.id, user_id, KEY_LIFETIME_SECONDS], client=client):
                # Not ready: a rebuild may have read PostgreSQL before this purchase.
                _fast.stale.add(item.sale_id)
    except RedisError:
        _trip(item.sale_id, "error")


def _redis_release(item: ItemInfo, user_id: str, decision: Decision) -> None:
    assert decision.expires_at is not None
    hold = f"{user_id} {decision.code} {int(decision.expires_at.timestamp() * 1000)}"
    try:
        client = _client(item.sale_id)
        if client is not None:
            run = _fast.script(client, _RELEASE_LUA)
            run(keys=_keys(item.sale_id, user_id), args=[item.id, hold], client=client)
    except RedisError:
        _trip(item.sale_id, "error")


def _rebuild(client: Redis, sale_id: int) -> bool:
    """Rebuild a sale's Redis state from PostgreSQL. False if another process is doing it.

    Writes only add or overwrite with what PostgreSQL says, so leftovers of an older state are
    either corrected or harmless (a stale hold on a sold item is never read past the sold set).
    """
    lock = f"{{sale:{sale_id}}}:rebuilding"
    if not client.set(lock, 1, nx=True, px=REBUILD_LOCK_MS):
        return False
    try:
        now = timezone.now()
        ready, sold_key, holds_key, _, bought_key = _keys(sale_id)
        pipe = client.pipeline(transaction=True)
        sold = list(Purchase.objects.filter(sale_id=sale_id).values_list("item_id", "user_id"))
        if sold:
            pipe.sadd(sold_key, *(item for item, _ in sold))
        for item_id, user_id in sold:
            pipe.zrem(_keys(sale_id, user_id)[3], item_id)
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
            user_key = _keys(sale_id, user_id)[3]
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
        client.delete(lock)
