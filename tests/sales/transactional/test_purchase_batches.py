"""Group-committed purchases: a batch's statements in one transaction, on the real PostgreSQL."""

import threading
import time

import pytest
from django.db import connection, connections, transaction

from sales.models import Buyer, Purchase
from sales.services import checkout_create
from sales.stock import _postgres

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60  # seconds: a bound against a hang, not a speed requirement


def hold(user_id: str, item_id: int) -> str:
    return checkout_create(user_id=user_id, item_id=item_id).attempt.code


def test_a_batch_answers_each_code_in_the_order_sent(open_sale):
    items = list(open_sale(items=3).items.values_list("pk", flat=True))
    bob, alice, carol = hold("bob", items[0]), hold("alice", items[1]), hold("carol", items[2])

    rows = _postgres._write(connection, [bob, alice, alice, "no-such-code", carol])

    assert rows[3] is None
    sold = [row for row in rows if row is not None]
    assert [row[3] for row in sold] == ["bob", "alice", "alice", "carol"]  # user_id
    assert [row[5] for row in sold] == [False, False, True, False]  # the second alice repeats
    assert sold[1][6] == sold[2][6]  # one purchase, answered twice
    assert Purchase.objects.count() == 3


def test_batches_that_name_the_same_buyers_in_opposite_orders_both_commit(open_sale):
    """Two processes' batches would deadlock if each locked its buyers in the order sent: here
    one waits for ben first, then the other locks ann and waits for ben behind it; released,
    the first would wait for ann while the second waits for ben. Every batch locks its buyers
    in one order, so both commit."""
    sale = open_sale(items=4)
    items = list(sale.items.values_list("pk", flat=True))
    batches = [
        [hold("ann", items[0]), hold("ben", items[1])],
        [hold("ben", items[2]), hold("ann", items[3])],
    ]
    Buyer.objects.bulk_create(
        Buyer(sale=sale, user_id=user, user_limit=sale.user_limit) for user in ("ann", "ben")
    )
    results: list[object] = [None, None]

    def write(n: int) -> None:
        own = connections.create_connection("default")
        try:
            results[n] = _postgres._write(own, batches[n])
        except Exception as failure:
            results[n] = failure
        finally:
            own.close()

    threads = [threading.Thread(target=write, args=(n,), daemon=True) for n in (1, 0)]
    with transaction.atomic():
        list(Buyer.objects.select_for_update().filter(user_id="ben"))
        for waiting, thread in enumerate(threads, start=1):
            thread.start()
            waiting_for_locks(waiting)
    for thread in threads:
        thread.join(WAIT)

    assert all(isinstance(rows, list) for rows in results), results
    assert Purchase.objects.count() == 4


def waiting_for_locks(sessions: int) -> None:
    """Until that many other sessions wait for a lock."""
    deadline = time.monotonic() + WAIT
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(DISTINCT pid) FROM pg_locks WHERE NOT granted")
            if cursor.fetchone()[0] >= sessions:
                return
            time.sleep(0.01)
    raise AssertionError(f"{sessions} sessions never waited for a lock")
