"""Races on the real PostgreSQL and Redis: the invariants hold whoever wins."""

import os
import time

import pytest
from django.db.models import Count

from sales.models import CheckoutAttempt, Outcome, Purchase
from sales.selectors import INVARIANTS, sale_report
from sales.services import checkout_create, purchase_complete
from tests.sales.transactional.rush import race, service_rush

pytestmark = pytest.mark.django_db(transaction=True)

# The longest a rush may run: a cap against a hang, not a speed requirement (which
# test_a_rush_sells_out checks with a bound measured on the machine).
RUSH_SECONDS = 300


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


def test_a_rush_keeps_every_invariant(path, open_sale):
    sale = open_sale(items=200, user_limit=3, ttl=1)
    result = service_rush(sale, slots=100, abandon=0.3, deadline=60)
    report = assert_invariants(sale)
    assert report["max_items_per_buyer"] <= 3
    assert CheckoutAttempt.objects.filter(sale=sale).count() == result.checkouts
    per_user = Purchase.objects.values("user_id").annotate(n=Count("*"))
    assert max((row["n"] for row in per_user), default=0) <= 3


def sequential_seconds(open_sale, pairs: int = 10) -> float:
    """What one checkout and purchase take, one after the other, on this machine right now."""
    sale = open_sale(items=pairs, user_limit=pairs)
    started = time.monotonic()
    for item_id in sale.items.values_list("pk", flat=True):
        purchase_complete(code=checkout_create(user_id="timer", item_id=item_id).attempt.code)
    return (time.monotonic() - started) / pairs


def test_a_rush_sells_out(path, open_sale):
    """Liveness: no item is left unsold for good (holds expire by their time alone). The bound
    is thirty times what the rush's purchases and abandoned holds would take one after the
    other, measured just before, so that a loaded machine slows the bound as much as the rush.
    (A rush that sells out stops there: only a failing run waits for the bound.)"""
    items, abandon = 200, 0.3
    pair = sequential_seconds(open_sale)
    bound = max(60.0, 30 * pair * items / (1 - abandon))
    sale = open_sale(items=items, user_limit=3, ttl=1)
    result = service_rush(sale, slots=100, abandon=abandon, deadline=bound)
    sold = sale_report(sale=sale)["sold"]
    assert sold == items, (
        f"sold {sold} of {items} in {result.seconds} s; bound {bound:.0f} s from "
        f"{1000 * pair:.0f} ms per checkout and purchase; load average {os.getloadavg()}"
    )
    assert result.outcomes["checkout held"] > items  # abandoned holds expired and sold later


@pytest.mark.parametrize("restart", [False, True], ids=["redis-killed", "redis-restarted"])
def test_a_rush_survives_redis_dying_midway(own_redis, open_sale, restart):
    """PostgreSQL takes over when Redis dies and hands back once it returns; the invariants hold
    throughout. The faults follow the rush's progress, however slow the machine."""
    sale = open_sale(items=200, user_limit=3, ttl=1)
    purchases = Purchase.objects.filter(sale=sale)
    killed_at: list[float] = []
    started = time.monotonic()

    def progressed(n: int) -> bool:
        """Waits for n purchases; False if the rush ended first."""
        while purchases.count() < n:
            if time.monotonic() - started > RUSH_SECONDS:
                return False
            time.sleep(0.02)
        return True

    def fault() -> None:
        if not progressed(10):
            return
        own_redis.kill()
        killed_at.append(time.monotonic())
        if restart and progressed(30):
            own_redis.start()

    result = service_rush(sale, slots=50, abandon=0.3, deadline=RUSH_SECONDS, during=fault)
    assert killed_at, "the rush never made 10 purchases"
    assert_invariants(sale)
    assert CheckoutAttempt.objects.filter(sale=sale).count() == result.checkouts
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
