"""Stock: the one seam that knows how an item is held and sold.

Two paths decide a checkout, with the same rules: the Redis fast path (`_redis`), and PostgreSQL
(`_postgres`) when Redis is not configured, fails or is being rebuilt. PostgreSQL is the source
of truth: every attempt is a `CheckoutAttempt` row and every sale a `Purchase` row, written
(`_attempts`) before the client is answered. A purchase always runs in PostgreSQL, under the
`Buyer` row lock and the unique item and attempt constraints, so no fault of Redis can oversell
or exceed a user's limit; at worst, during a switch between paths, an item can be held twice,
and the second buyer's purchase is refused with `item_sold`.
"""

from django.db import IntegrityError
from django.utils import timezone

from sales.exceptions import CodeExpired, CodeNotFound, ItemSold, UserLimitReached
from sales.models import CheckoutAttempt, Outcome, Purchase
from sales.stock import _attempts, _postgres, _redis
from sales.stock._items import ItemInfo, item_info

__all__ = ["ItemInfo", "checkout", "item_info", "purchase", "refuse", "sale_opened"]

_REFUSALS = {
    "code_not_found": CodeNotFound,
    "code_expired": CodeExpired,
    "user_limit_reached": UserLimitReached,
}


def checkout(*, item: ItemInfo, user_id: str) -> CheckoutAttempt:
    """Decide a checkout of a started sale's item and write the attempt with its outcome."""
    now = timezone.now()
    decision = _redis.decide(item, user_id, now)
    if decision is None:
        return _postgres.checkout(item, user_id, now)
    try:
        return _attempts.record_decision(item, user_id, decision, via_redis=True)
    except BaseException:
        if decision.outcome == Outcome.HELD:  # a hold nobody was told of must not block the item
            _redis.release(item, user_id, decision)
        raise


def refuse(
    *, user_id: str, requested_id: str, outcome: str, item: ItemInfo | None = None
) -> CheckoutAttempt:
    """Write an attempt refused before the stock was asked (bad input, rate limit, unknown
    item, sale not started), with the input as sent."""
    return _attempts.record(
        sale_id=item.sale_id if item else None,
        item_id=item.id if item else None,
        user_id=user_id,
        requested_id=requested_id,
        outcome=outcome,
    )


def purchase(*, code: str) -> tuple[Purchase, bool]:
    """Sell the item held under `code` to its holder: the purchase, and whether it was made by
    an earlier request (a retry is answered with the same purchase).

    Raises `CodeNotFound`, `CodeExpired`, `UserLimitReached` or `ItemSold`.
    """
    try:
        result = _postgres.purchase(code)
    except IntegrityError:
        return _purchase_lost(code)
    if isinstance(result, str):
        raise _REFUSALS[result]()
    sold, repeated = result
    if not repeated:
        _redis.sold(sold.sale_id, sold.item_id, sold.user_id)
    return sold, repeated


def _purchase_lost(code: str) -> tuple[Purchase, bool]:
    """The purchase hit a unique constraint: this code's own purchase made meanwhile by a retry
    of the same request, or another buyer's purchase of the item."""
    done = Purchase.objects.filter(attempt__code=code, attempt__outcome=Outcome.HELD).first()
    if done is not None:
        return done, True
    other = Purchase.objects.filter(
        item__attempts__code=code, item__attempts__outcome=Outcome.HELD
    ).first()
    if other is not None:
        _redis.sold(other.sale_id, other.item_id, other.user_id)  # heal a Redis that missed it
    raise ItemSold()


def sale_opened(*, sale_id: int) -> None:
    """Prime the fast path for a new sale."""
    _redis.sale_opened(sale_id)
