"""PostgreSQL is the arbiter of every checkout answer, and Redis learns what it decided.

Each test leaves the two stores as a process killed between its two writes would (by writing
one of them alone) and checks the answer, then the reconciler's pass."""

from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from django_redis import get_redis_connection

from sales import stock
from sales.exceptions import ItemReserved, ItemSold
from sales.models import CheckoutAttempt, Item, Outcome
from sales.services import checkout_create, purchase_complete
from sales.stock import _postgres, _reconcile, _redis

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _needs_redis() -> None:
    if not django_settings.REDIS_URL:
        pytest.skip("Redis is not configured")


def in_redis(sale_id: int, item_id: int) -> tuple[bool, str | None]:
    """Whether Redis has the item sold, and its hold there."""
    client = get_redis_connection("stock")
    keys = _redis.keys(sale_id)
    hold = client.hget(keys.holds, item_id)
    return bool(client.sismember(keys.sold, item_id)), hold and hold.decode()


def test_a_purchase_redis_never_heard_of_is_refused_then_learned(open_sale):
    sale = open_sale(items=1)
    item = sale.items.get()
    code = checkout_create(user_id="ann", item_id=item.pk).attempt.code
    assert _postgres.purchase(code).purchase is not None  # killed before Redis heard of it
    get_redis_connection("stock").hdel(_redis.keys(sale.pk).holds, item.pk)  # ann's hold ended
    assert in_redis(sale.pk, item.pk) == (False, None)
    with pytest.raises(ItemSold):
        checkout_create(user_id="bob", item_id=item.pk)  # Redis proposed a hold: refused
    assert CheckoutAttempt.objects.filter(user_id="bob").get().outcome == Outcome.ITEM_SOLD
    assert in_redis(sale.pk, item.pk) == (True, None), "corrected on the spot"


def test_the_reconciler_marks_sold_what_redis_missed(open_sale):
    sale = open_sale(items=2)
    first, second = sale.items.all()
    code = checkout_create(user_id="ann", item_id=first.pk).attempt.code
    _postgres.purchase(code)  # killed before Redis heard of it
    assert stock.last_agreed(sale_id=sale.pk) is None
    stock.reconcile()
    assert in_redis(sale.pk, first.pk) == (True, None)
    client = get_redis_connection("stock")
    assert int(client.hget(_redis.keys(sale.pk).bought, "ann")) == 1
    assert stock.last_agreed(sale_id=sale.pk) is not None
    assert in_redis(sale.pk, second.pk) == (False, None), "nothing else touched"


def test_a_hold_only_redis_knows_is_not_promised_and_is_dropped(open_sale):
    sale = open_sale(items=1)
    item = sale.items.get()
    info = stock.item_info(item.pk)
    ghost = _redis.decide(info, "ghost", timezone.now())  # killed before PostgreSQL stored it
    assert ghost is not None
    assert ghost.outcome == Outcome.HELD
    assert not Item.objects.get(pk=item.pk).claimed_by
    stock.reconcile()  # within the grace period: the statement may still be on its way
    assert in_redis(sale.pk, item.pk)[1] is not None
    assert stock.reconcile(now=timezone.now() + _reconcile.GRACE + timedelta(seconds=1)) == 1
    assert in_redis(sale.pk, item.pk) == (False, None)
    assert checkout_create(user_id="ann", item_id=item.pk).created


def test_holds_stored_as_redis_proposed_them_are_not_learned_again(open_sale):
    sale = open_sale(items=3)
    first, second, third = sale.items.all()
    stored = [checkout_create(user_id="ann", item_id=i.pk).attempt for i in (first, second)]
    ghost = _redis.decide(stock.item_info(third.pk), "ghost", timezone.now())
    assert ghost is not None
    later = timezone.now() + _reconcile.GRACE + timedelta(seconds=1)
    assert stock.reconcile(now=later) == 1, "only the hold PostgreSQL never stored"
    assert in_redis(sale.pk, third.pk) == (False, None)
    for attempt, item in zip(stored, (first, second), strict=True):
        assert (in_redis(sale.pk, item.pk)[1] or "").startswith(f"ann {attempt.code} ")


def test_already_yours_writes_the_hold_row_that_was_lost(open_sale):
    sale = open_sale(items=1)
    item = sale.items.get()
    info = stock.item_info(item.pk)
    lost = _redis.decide(info, "ann", timezone.now())  # the hold row died with its process
    assert lost is not None
    again = checkout_create(user_id="ann", item_id=item.pk)  # Redis: "already yours"
    assert again.attempt.code == lost.code
    assert CheckoutAttempt.objects.get(code=lost.code, outcome=Outcome.HELD).user_id == "ann"
    assert purchase_complete(code=lost.code).purchase.user_id == "ann"


def test_a_live_hold_in_postgresql_wins_over_a_redis_that_lost_it(open_sale):
    sale = open_sale(items=1)
    item = sale.items.get()
    checkout_create(user_id="ann", item_id=item.pk)
    get_redis_connection("stock").hdel(_redis.keys(sale.pk).holds, item.pk)  # Redis lost it
    with pytest.raises(ItemReserved):
        checkout_create(user_id="bob", item_id=item.pk)
    assert CheckoutAttempt.objects.filter(user_id="bob").get().outcome == Outcome.ITEM_RESERVED
    assert (in_redis(sale.pk, item.pk)[1] or "").startswith("ann "), "Redis learned the hold"
