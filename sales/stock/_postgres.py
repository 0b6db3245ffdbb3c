"""The PostgreSQL path, and the purchase, which always runs here.

Checkout, when Redis cannot decide: one transaction that locks the (sale, user) `Buyer` row, then
the item row, decides from the item's claim and the buyer's holds and purchases, and writes the
attempt (which claims the item) before it commits.
Locks are taken in that order everywhere.

Purchase: one statement decides and writes (code lookup, the earlier purchase of a retried
request, the buyer's limit under the `Buyer` row lock, the purchase row, the item's row marked
sold so that no later claim takes it), with the unique item
and attempt constraints as the last line of defence. Expiry is checked with the database's clock
once the buyer's row is locked: waiting for the lock must not stretch a hold. Concurrent
purchases are group-committed (core/groupcommit.py): one read orders the batch by buyer, then
their statements, sent together, run one after the other in one transaction, each seeing what
the ones before it wrote (a buyer's second purchase counts the first); locking its buyers in
one order, a batch never waits for another that waits for it. A batch that fails (another
buyer's purchase of an item) is run again purchase by purchase.
"""

from collections.abc import Sequence
from contextlib import nullcontext
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from core.groupcommit import GroupCommit
from core.process import PerProcess
from sales.exceptions import CodeExpired, CodeNotFound, UserLimitReached
from sales.models import Buyer, CheckoutAttempt, Item, Outcome, Purchase, Sale
from sales.selectors import live_holds
from sales.stock import _attempts
from sales.stock._decision import PURCHASED, REPEATED, Decision, Purchased, new_code
from sales.stock._items import ItemInfo

_BUYER = Buyer._meta.db_table


def _lock_buyer(sale_id: int, user_id: str, user_limit: int, *, add: int) -> int | None:
    """Lock the (sale, user) row, creating it, and add `add` purchases if that stays within the
    limit. Returns the purchase count, or None when adding would exceed the limit.

    Must run inside a transaction: the row stays locked until it ends.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            INSERT INTO {_BUYER} AS b (sale_id, user_id, purchased, user_limit)
            VALUES (%s, %s, %s, %s)
            ON CONFLICT (sale_id, user_id) DO UPDATE SET purchased = excluded.purchased
                + b.purchased
            WHERE excluded.purchased + b.purchased <= b.user_limit
            RETURNING purchased
            """,  # noqa: S608 (table name from the model, values bound)
            [sale_id, user_id, add, user_limit],
        )
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def checkout(item: ItemInfo, user_id: str, now: datetime) -> CheckoutAttempt:
    with transaction.atomic():
        purchased = _lock_buyer(item.sale_id, user_id, item.user_limit, add=0)
        assert purchased is not None  # adding nothing is always within the limit
        claim = (
            Item.objects.select_for_update(no_key=True)
            .values_list("sold", "claimed_by", "claim_code", "claimed_until")
            .get(pk=item.id)
        )
        decision = _decide(item, user_id, now, purchased, *claim)
        return _attempts.record_decision(item, user_id, decision, via_redis=False)


def _decide(
    item: ItemInfo,
    user_id: str,
    now: datetime,
    purchased: int,
    sold: bool,
    claimed_by: str,
    claim_code: str,
    claimed_until: datetime | None,
) -> Decision:
    """The rules, read from PostgreSQL: the item's claim, the buyer's live holds and purchases.
    Assumes the caller holds the buyer and item locks."""
    if sold:
        return Decision(Outcome.ITEM_SOLD)
    if claimed_until is not None and claimed_until > now:
        if claimed_by == user_id:
            return Decision(Outcome.EXISTING, claim_code, claimed_until)
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


_TABLES = {
    "attempts": CheckoutAttempt._meta.db_table,
    "items": Item._meta.db_table,
    "sales": Sale._meta.db_table,
    "purchases": Purchase._meta.db_table,
    "buyers": _BUYER,
}
# One round trip: every CTE runs, and the statement is one transaction in autocommit.
_PURCHASE = """
WITH attempt AS (
    SELECT a.id, a.sale_id, a.item_id, a.user_id, a.expires_at, s.user_limit
    FROM {attempts} a JOIN {sales} s ON s.id = a.sale_id
    WHERE a.code = %(code)s AND a.outcome = 'held'
), earlier AS (
    SELECT p.id, p.purchased_at FROM {purchases} p JOIN attempt ON p.attempt_id = attempt.id
), buyer AS (
    INSERT INTO {buyers} AS b (sale_id, user_id, purchased, user_limit)
    SELECT sale_id, user_id, 1, user_limit FROM attempt
    WHERE NOT EXISTS (SELECT FROM earlier) AND expires_at > clock_timestamp()
    ON CONFLICT (sale_id, user_id) DO UPDATE SET purchased = b.purchased + 1
    WHERE b.purchased < b.user_limit AND (SELECT expires_at FROM attempt) > clock_timestamp()
    RETURNING 1
), sold AS (
    INSERT INTO {purchases} (sale_id, item_id, attempt_id, user_id, purchased_at)
    SELECT sale_id, item_id, id, user_id, clock_timestamp() FROM attempt
    WHERE EXISTS (SELECT FROM buyer)
    RETURNING id, item_id, purchased_at
), claim AS (
    UPDATE {items} SET sold = true WHERE id = (SELECT item_id FROM sold)
)
SELECT attempt.id, attempt.sale_id, attempt.item_id, attempt.user_id,
    attempt.expires_at <= clock_timestamp(), EXISTS (SELECT FROM earlier),
    COALESCE((SELECT id FROM sold), (SELECT id FROM earlier)),
    COALESCE((SELECT purchased_at FROM sold), (SELECT purchased_at FROM earlier))
FROM attempt
""".format(**_TABLES)  # noqa: S608 (table names from the models, values bound)


def purchase(code: str) -> Purchased:
    """Sell the item held under `code`, or say why not. Raises IntegrityError when another
    buyer has the item."""
    if connection.vendor != "postgresql":
        return _purchase_portable(code)
    row = _writer.get().insert(code)
    if row is None:
        return Purchased(CodeNotFound.code)
    attempt_id, sale_id, item_id, user_id, expired, repeated, pk, purchased_at = row
    if pk is None:
        return Purchased(CodeExpired.code if expired else UserLimitReached.code)
    sold = Purchase(
        id=pk,
        sale_id=sale_id,
        item_id=item_id,
        attempt_id=attempt_id,
        user_id=user_id,
        purchased_at=purchased_at,
    )
    return Purchased(REPEATED if repeated else PURCHASED, sold)


# The buyers a batch will lock, in the order every batch locks them, so that two batches never
# wait for each other's buyers.
_IN_LOCK_ORDER = (
    f"SELECT code FROM {_TABLES['attempts']} WHERE code = ANY(%s) AND outcome = 'held'"  # noqa: S608
    " ORDER BY sale_id, user_id"
)


def _write(db: BaseDatabaseWrapper, codes: Sequence[str]) -> list[tuple[Any, ...] | None]:
    """The purchases of `codes`: one statement each, sent together, in one transaction."""
    if len(codes) == 1:
        # Inside a caller's transaction a savepoint keeps a refusal from spoiling it; in
        # autocommit the statement is its own transaction.
        savepoint = transaction.atomic(using=db.alias) if db.in_atomic_block else nullcontext()
        with savepoint, db.cursor() as cursor:
            cursor.execute(_PURCHASE, {"code": codes[0]})
            return [cursor.fetchone()]
    db.ensure_connection()
    results: list[tuple[Any, ...] | None] = [None] * len(codes)  # None: no such hold
    with db.wrap_database_errors, db.connection.transaction(), db.connection.cursor() as cursor:
        cursor.execute(_IN_LOCK_ORDER, [list(codes)])
        rank = {code: n for n, (code,) in enumerate(cursor.fetchall())}
        # A code sent twice is run twice, in the order it came: the second is the repeat.
        known = (n for n, code in enumerate(codes) if code in rank)
        run = sorted(known, key=lambda n: rank[codes[n]])
        if run:
            cursor.executemany(_PURCHASE, [{"code": codes[n]} for n in run], returning=True)
            for n in run:
                results[n] = cursor.fetchone()
                cursor.nextset()
    return results


_writer = PerProcess(lambda: GroupCommit(_write, custom_plans=False), close=GroupCommit.close)


def _purchase_portable(code: str) -> Purchased:
    """The same decision in several statements, for databases without writes in CTEs (the
    embedded SQLite default, one process)."""
    attempt = CheckoutAttempt.objects.filter(code=code, outcome=Outcome.HELD).first()
    if attempt is None or attempt.sale_id is None or attempt.item_id is None:
        return Purchased(CodeNotFound.code)
    earlier = Purchase.objects.filter(attempt=attempt).first()
    if earlier is not None:
        return Purchased(REPEATED, earlier)
    limit = Sale.objects.values_list("user_limit", flat=True).get(pk=attempt.sale_id)
    with transaction.atomic():
        within_limit = _lock_buyer(attempt.sale_id, attempt.user_id, limit, add=1) is not None
        if attempt.expires_at is None or attempt.expires_at <= timezone.now():
            transaction.set_rollback(True)
            return Purchased(CodeExpired.code)
        if not within_limit:
            return Purchased(UserLimitReached.code)
        Item.objects.filter(pk=attempt.item_id).update(sold=True)
        sold = Purchase.objects.create(
            sale_id=attempt.sale_id,
            item_id=attempt.item_id,
            attempt=attempt,
            user_id=attempt.user_id,
        )
    return Purchased(PURCHASED, sold)
