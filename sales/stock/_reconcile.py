"""The reconciler: Redis learns what PostgreSQL decided, without waiting for a buyer to trip on it.

A process can die between PostgreSQL's commit and its Redis write (a purchase Redis never
heard of), or between its Redis write and PostgreSQL's commit (a hold Redis proposed and
PostgreSQL never stored). Every few seconds one web process of the fleet (a Redis lock elects
it) takes each recent sale's changes since its last pass: purchases and the holds of the
PostgreSQL path committed since then, and the holds Redis proposed more than `GRACE` ago, which
PostgreSQL has decided by now. Of those, only the items whose proposed code PostgreSQL did not
store as a hold are learned: in a rush the holds PostgreSQL committed as Redis proposed them
are nearly all the holds, and learning each one (reading its item's claim, setting it again in
Redis) took 7 % of the web processes' profile samples. It sets those items in Redis to their
claims in PostgreSQL (`_redis.learn`, idempotent), and records when the two last agreed. A pass
reads by primary key from a cursor kept in Redis; the cursor trails by `GRACE`, so a row whose
id was drawn before a later one's but committed after it is read again rather than missed.
"""

import logging
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, ExpressionWrapper, Q, Value
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis
from redis.exceptions import RedisError

from core.process import PerProcess
from sales.models import CheckoutAttempt, Outcome, Purchase, Sale
from sales.stock import _redis

logger = logging.getLogger(__name__)

GRACE = timedelta(seconds=5)
BATCH = 2000  # rows of each kind per sale and pass; the rest wait for the next pass
_LOCK = "stock:reconciler"


def _synced(sale_id: int) -> str:
    return f"{{sale:{sale_id}}}:synced"


def reconcile(*, now: datetime | None = None) -> int:
    """One pass over the sales started in the last two days; returns the items set."""
    now = now or timezone.now()
    client = get_redis_connection("stock")
    since = now - timedelta(seconds=_redis.KEY_LIFETIME_SECONDS)
    sales = Sale.objects.filter(starts_at__lte=now, starts_at__gt=since).values_list(
        "pk", flat=True
    )
    return sum(_reconcile_sale(client, sale_id, now) for sale_id in sales)


def _reconcile_sale(client: Redis, sale_id: int, now: datetime) -> int:
    keys = _redis.keys(sale_id)
    if not client.exists(keys.ready):
        return 0  # cold: the next checkout rebuilds it from PostgreSQL
    stored: dict[bytes, bytes] = client.hgetall(_synced(sale_id))  # type: ignore[assignment]
    cursor = {k.decode(): int(v) for k, v in stored.items()}
    cutoff = now - GRACE
    purchases = list(
        Purchase.objects.filter(sale_id=sale_id, pk__gt=cursor.get("purchase", 0))
        .annotate(learn=Value(True), settled=_before(cutoff, "purchased_at"))
        .order_by("pk")
        .values_list("pk", "item_id", "learn", "settled")[:BATCH]
    )
    holds = list(
        CheckoutAttempt.objects.filter(
            sale_id=sale_id, outcome=Outcome.HELD, pk__gt=cursor.get("attempt", 0)
        )
        .annotate(learn=~Q(via_redis=True), settled=_before(cutoff, "created_at"))
        .order_by("pk")
        .values_list("pk", "item_id", "learn", "settled")[:BATCH]
    )
    cutoff_ms = int(cutoff.timestamp() * 1000)
    fresh: list[bytes] = client.zrangebyscore(keys.fresh, "-inf", cutoff_ms)  # type: ignore[assignment]
    items = {item for _, item, learn, _ in purchases + holds if learn} | _not_stored(fresh)
    for start in range(0, len(items), BATCH):
        _redis.learn(sale_id, sorted(items)[start : start + BATCH])
    client.zremrangebyscore(keys.fresh, "-inf", cutoff_ms)
    client.hset(
        _synced(sale_id),
        mapping={
            "purchase": _trailing(purchases, cursor.get("purchase", 0)),
            "attempt": _trailing(holds, cursor.get("attempt", 0)),
            "agreed_at": int(now.timestamp() * 1000),
        },
    )
    client.expire(_synced(sale_id), _redis.KEY_LIFETIME_SECONDS)
    return len(items)


def _not_stored(fresh: list[bytes]) -> set[int]:
    """The items of the holds Redis proposed ("item code") that PostgreSQL did not store as
    proposed: no held attempt has their code."""
    proposed = dict(member.decode().partition(" ")[::2] for member in fresh)  # the latest, by item
    if not proposed:
        return set()
    with connection.cursor() as cursor:
        cursor.execute(_STORED, [list(proposed.values())])
        stored = {code for (code,) in cursor.fetchall()}
    return {int(item) for item, code in proposed.items() if code not in stored}


_STORED = (
    f"SELECT code FROM {CheckoutAttempt._meta.db_table}"  # noqa: S608 (the model's table)
    " WHERE code = ANY(%s) AND outcome = 'held'"
)


def _before(cutoff: datetime, field: str) -> ExpressionWrapper:
    return ExpressionWrapper(Q(**{f"{field}__lt": cutoff}), output_field=BooleanField())


def _trailing(rows: list[tuple[int, int, bool, bool]], cursor: int) -> int:
    """The new cursor: past the rows older than the grace period, and no further."""
    return max((pk for pk, _, _, settled in rows if settled), default=cursor)


def last_agreed(*, sale_id: int) -> datetime | None:
    """When the reconciler last brought this sale's Redis state to PostgreSQL's."""
    if not settings.REDIS_URL:
        return None
    try:
        at = get_redis_connection("stock").hget(_synced(sale_id), "agreed_at")
    except RedisError:
        return None
    return None if at is None else datetime.fromtimestamp(int(at) / 1000, tz=UTC)


class _Runner:
    """This process's reconciler thread; it reconciles when this process holds the lock."""

    def __init__(self) -> None:
        self.thread = threading.Thread(target=self._run, name="stock-reconciler", daemon=True)
        self.stopping = threading.Event()
        self.thread.start()

    def _run(self) -> None:
        interval = settings.STOCK_RECONCILE_SECONDS
        token = secrets.token_hex(8)
        while not self.stopping.wait(interval):
            try:
                client = get_redis_connection("stock")
                if client.set(_LOCK, token, nx=True, px=int(interval * 3000)):
                    started = time.perf_counter()
                    items = reconcile()
                    _redis.unlock(client, _LOCK, token)
                    logger.debug(
                        "stock reconciled",
                        extra={"items": items, "seconds": time.perf_counter() - started},
                    )
            except Exception:
                logger.warning("stock reconciliation failed; retrying", exc_info=True)
            finally:
                connection.close()

    def stop(self) -> None:
        self.stopping.set()


_runner = PerProcess(_Runner, close=_Runner.stop)


def start() -> None:
    """Start this process's reconciler (a web process calls this once); nothing without Redis."""
    if settings.REDIS_URL:
        _runner.get()
