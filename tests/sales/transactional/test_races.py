"""Races on the real PostgreSQL and Redis: the invariants hold whoever wins."""

import time

import pytest
from django.db.models import Count

from sales.models import CheckoutAttempt, Outcome, Purchase
from sales.selectors import INVARIANTS, sale_report
from sales.services import checkout_create, purchase_complete
from tests.sales.transactional.rush import race, rush

pytestmark = pytest.mark.django_db(transaction=True)


def assert_invariants(sale) -> dict:
    report = sale_report(sale=sale)
    assert {name: report[name] for name in INVARIANTS} == dict.fromkeys(INVARIANTS, True), report
    return report


def test_fifty_buyers_one_item_exactly_one_hold(path, open_sale):
    item = open_sale(items=1).items.get()
    results = race(50, lambda i: checkout_create(user_id=f"u{i}", item_id=item.pk))
    winners = [r for r in results if not isinstance(r, str)]
    assert len(winners) == 1
    assert sorted(set(r for r in results if isinstance(r, str))) == ["item_reserved"]
    assert CheckoutAttempt.objects.filter(outcome=Outcome.HELD).count() == 1
    assert CheckoutAttempt.objects.count() == 50


def test_twenty_purchases_with_one_code_make_one_purchase(path, open_sale):
    item = open_sale(items=1).items.get()
    code = checkout_create(user_id="alice", item_id=item.pk).attempt.code
    results = race(20, lambda i: purchase_complete(code=code).purchase.pk)
    purchase = Purchase.objects.get()
    assert results == [purchase.pk] * 20


def test_one_buyer_fifteen_items_at_once_never_exceeds_the_limit(path, open_sale):
    sale = open_sale(items=15, user_limit=10)
    item_ids = list(sale.items.values_list("pk", flat=True))

    def checkout_and_buy(i: int) -> int:
        code = checkout_create(user_id="greedy", item_id=item_ids[i]).attempt.code
        return purchase_complete(code=code).purchase.pk

    results = race(15, checkout_and_buy)
    assert sum(1 for r in results if isinstance(r, int)) == 10
    assert [r for r in results if isinstance(r, str)] == ["user_limit_reached"] * 5
    assert Purchase.objects.filter(user_id="greedy").count() == 10
    # the limit held at checkout already: holds plus purchases never went past it
    attempts = CheckoutAttempt.objects.filter(user_id="greedy")
    assert attempts.filter(outcome=Outcome.HELD).count() == 10
    assert attempts.filter(outcome=Outcome.USER_LIMIT_REACHED).count() == 5
    assert_invariants(sale)


def test_a_rush_sells_every_item_within_the_limits(path, open_sale):
    sale = open_sale(items=200, user_limit=3, ttl=1)
    stats = rush(sale, buyers=100, abandon_rate=0.3, deadline_seconds=120)
    report = assert_invariants(sale)
    assert report["sold"] == 200
    assert report["max_items_per_buyer"] <= 3
    assert CheckoutAttempt.objects.filter(sale=sale).count() == stats.checkouts
    assert stats.outcomes["held"] > 200  # some holds were abandoned and the items sold later
    per_user = Purchase.objects.values("user_id").annotate(n=Count("*"))
    assert max(row["n"] for row in per_user) <= 3


@pytest.mark.parametrize("restart", [False, True], ids=["redis-killed", "redis-restarted"])
def test_a_rush_survives_redis_dying_midway(own_redis, open_sale, restart):
    sale = open_sale(items=200, user_limit=3, ttl=1)
    killed_at: list[float] = []

    def fault() -> None:
        while Purchase.objects.filter(sale=sale).count() < 50:
            time.sleep(0.02)
        own_redis.kill()
        killed_at.append(time.monotonic())
        if restart:
            while Purchase.objects.filter(sale=sale).count() < 120:
                time.sleep(0.02)
            own_redis.start()

    stats = rush(sale, buyers=100, abandon_rate=0.3, deadline_seconds=120, during=fault)
    assert killed_at, "the fault never fired"
    report = assert_invariants(sale)
    assert report["sold"] == 200
    assert CheckoutAttempt.objects.filter(sale=sale).count() == stats.checkouts
    attempts = CheckoutAttempt.objects.filter(sale=sale).order_by("id")
    via_redis = list(attempts.values_list("via_redis", flat=True))
    assert via_redis[0] is True  # the rush began on the fast path
    assert False in via_redis  # PostgreSQL took over when Redis died
    if restart:
        # and the fast path came back by itself once Redis was up again
        first_fallback = via_redis.index(False)
        assert True in via_redis[first_fallback:]
    else:
        assert via_redis[-1] is False


def test_two_live_holds_on_one_item_end_in_one_purchase(path, open_sale):
    """A hold granted by Redis and another granted by PostgreSQL (the switch-over window) end
    in one purchase and one item_sold, whatever the order."""
    item = open_sale(items=1, user_limit=1).items.get()
    first = checkout_create(user_id="alice", item_id=item.pk).attempt
    second = CheckoutAttempt.objects.create(
        sale_id=item.sale_id,
        item=item,
        user_id="bob",
        outcome=Outcome.HELD,
        code="b" * 22,
        expires_at=first.expires_at,
    )
    codes = [first.code, second.code]
    results = race(2, lambda i: purchase_complete(code=codes[i]).purchase.user_id)
    assert sorted(results) in (["alice", "item_sold"], ["bob", "item_sold"])
    assert Purchase.objects.get().user_id in results
