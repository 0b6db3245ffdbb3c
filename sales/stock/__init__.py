"""Stock: the one seam that knows how an item is held and sold.

Two paths propose a checkout's outcome, with the same rules: the Redis fast path (`_redis`), and
PostgreSQL (`_postgres`) when Redis is not configured, fails or is being rebuilt. PostgreSQL is
the arbiter of every answer: the statement that writes the attempt (`_attempts`) claims the item
in its own row, and the answer is what it committed, whatever Redis proposed; Redis is corrected
when the two disagree, and the reconciler (`_reconcile`) brings it to PostgreSQL's state after
anything it missed (a process killed between the two writes, an outage). A purchase always runs
in PostgreSQL, under the `Buyer` row lock and the unique item and attempt constraints.

What this seam returns is typed data; the services turn refusals into errors.
"""

from django.db import IntegrityError
from django.utils import timezone

from sales.exceptions import ItemSold
from sales.models import CheckoutAttempt, Outcome, Purchase
from sales.stock import _attempts, _postgres, _reconcile, _redis
from sales.stock._decision import REPEATED, Purchased
from sales.stock._items import ItemInfo, item_info

__all__ = [
    "ItemInfo",
    "Purchased",
    "checkout",
    "item_info",
    "last_agreed",
    "purchase",
    "reconcile",
    "refuse",
    "sale_opened",
    "start_reconciler",
]

last_agreed = _reconcile.last_agreed
reconcile = _reconcile.reconcile
start_reconciler = _reconcile.start


def checkout(*, item: ItemInfo, user_id: str) -> CheckoutAttempt:
    """Decide a checkout of a started sale's item and write the attempt with its outcome."""
    now = timezone.now()
    proposal = _redis.decide(item, user_id, now)
    if proposal is None:
        return _postgres.checkout(item, user_id, now)
    try:
        attempt = _attempts.record_decision(item, user_id, proposal, via_redis=True)
    except BaseException:
        if proposal.outcome == Outcome.HELD:  # a hold nobody was told of must not block the item
            _redis.release(item, user_id, proposal)
        raise
    if proposal.outcome in _attempts.PROPOSED and attempt.code != proposal.code:
        # PostgreSQL knew better (the item sold, or held under another code): Redis learns the
        # item's claim, which drops the hold it proposed.
        _redis.learn(item.sale_id, [item.id])
    return attempt


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


def purchase(*, code: str) -> Purchased:
    """Sell the item held under `code` to its holder, or say why not."""
    try:
        result = _postgres.purchase(code)
    except IntegrityError:
        return _purchase_lost(code)
    if result.purchase is not None and result.outcome != REPEATED:
        _redis.sold(result.purchase.sale_id, result.purchase.item_id, result.purchase.user_id)
    return result


def _purchase_lost(code: str) -> Purchased:
    """The purchase hit a unique constraint: this code's own purchase made meanwhile by a retry
    of the same request, or another buyer's purchase of the item."""
    done = Purchase.objects.filter(attempt__code=code, attempt__outcome=Outcome.HELD).first()
    if done is not None:
        return Purchased(REPEATED, done)
    other = Purchase.objects.filter(
        item__attempts__code=code, item__attempts__outcome=Outcome.HELD
    ).first()
    if other is not None:
        _redis.sold(other.sale_id, other.item_id, other.user_id)  # heal a Redis that missed it
    return Purchased(ItemSold.code)


def sale_opened(*, sale_id: int) -> None:
    """Prime the fast path for a new sale."""
    _redis.sale_opened(sale_id)
