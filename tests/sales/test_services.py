import json
import time
from datetime import UTC, datetime, timedelta

import pytest
from django.core.management import call_command
from django.db import DatabaseError
from django.utils import timezone
from django_redis import get_redis_connection
from redis import Redis

from sales import stock
from sales.exceptions import CodeExpired, ItemReserved, ItemSold, UserLimitReached
from sales.models import CheckoutAttempt, Item, Outcome, Purchase, Sale
from sales.services import checkout_create, purchase_complete, sale_open, sale_open_hourly
from sales.stock import _attempts
from sales.stock._redis import CIRCUIT_OPEN_SECONDS
from sales.tasks import open_hourly_sale
from tests.metrics import sample

pytestmark = pytest.mark.django_db


@pytest.mark.smoke
def test_a_sale_opens_with_generated_distinct_items(settings):
    settings.APP_ITEM_NUMBER = 10_000
    sale = sale_open()
    items = Item.objects.filter(sale=sale)
    assert items.count() == sale.item_count == 10_000
    assert items.values("image_url").distinct().count() == 10_000
    assert items.values("name").distinct().count() == 10_000
    assert sale.user_limit == settings.APP_USER_LIMIT
    assert sale.ttl_seconds == settings.CHECKOUT_TTL_SECONDS


@pytest.mark.smoke
def test_the_hourly_sale_opens_once_per_hour(settings):
    settings.APP_ITEM_NUMBER = 20
    hour = datetime(2026, 11, 21, 9, tzinfo=UTC)
    first = sale_open_hourly(now=hour + timedelta(minutes=1))
    again = sale_open_hourly(now=hour + timedelta(minutes=59))
    assert first.pk == again.pk
    assert first.hour == first.starts_at == hour
    assert Item.objects.count() == 20
    assert sale_open_hourly(now=hour + timedelta(hours=1)).pk != first.pk


@pytest.mark.smoke
def test_the_beat_task_twice_opens_one_sale(settings):
    settings.APP_ITEM_NUMBER = 10
    assert open_hourly_sale.delay().get() == open_hourly_sale.delay().get()
    assert Sale.objects.count() == 1


@pytest.mark.smoke
def test_the_first_request_of_a_missed_hour_opens_its_sale(api, settings):
    settings.APP_ITEM_NUMBER = 10
    last_hour = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=1)
    sale_open(hour=last_hour)
    response = api.get("/sales/current")
    assert response.status_code == 200
    current = Sale.objects.get(hour=last_hour + timedelta(hours=1))
    assert response.json()["id"] == current.pk
    api.get("/sales/current")
    assert Sale.objects.count() == 2


@pytest.mark.smoke
def test_an_older_sale_keeps_selling_after_the_next_one_opens(api, open_sale):
    older = open_sale(items=2)
    open_sale(items=2)
    item = older.items.first()
    assert api.post(f"/checkout?user_id=late&id={item.pk}").status_code == 201


@pytest.mark.smoke
def test_start_sale_and_sale_report_commands(capsys, path):
    call_command("start_sale", "--items", "6", "--user-limit", "2", "--ttl", "30")
    opened = json.loads(capsys.readouterr().out)
    assert (opened["item_count"], opened["user_limit"], opened["ttl_seconds"]) == (6, 2, 30)
    sale = Sale.objects.get(pk=opened["id"])
    items = list(sale.items.all())
    purchase_complete(code=checkout_create(user_id="ann", item_id=items[0].pk).attempt.code)
    checkout_create(user_id="ann", item_id=items[1].pk)
    with pytest.raises(UserLimitReached):
        checkout_create(user_id="ann", item_id=items[2].pk)
    call_command("sale_report", str(sale.pk))
    report = json.loads(capsys.readouterr().out)
    assert report | {"starts_at": None} == {
        "id": sale.pk,
        "starts_at": None,
        "item_count": 6,
        "user_limit": 2,
        "ttl_seconds": 30,
        "sold": 1,
        "reserved": 1,
        "available": 4,
        "buyers": 1,
        "max_items_per_buyer": 1,
        "attempts_by_outcome": {"held": 2, "user_limit_reached": 1},
        "purchases": 1,
        "admission": {},  # no request went through the HTTP stack
        "no_oversell": True,
        "user_limit_respected": True,
        "every_sold_item_has_one_purchase": True,
        "buyer_counts_match_purchases": True,
    }


@pytest.mark.smoke
def test_sale_report_flags_a_broken_invariant(capsys, open_sale):
    sale = open_sale(items=2, user_limit=1)
    first, second = sale.items.all()
    for item in (first, second):  # written around the services, as only a bug could
        attempt = CheckoutAttempt.objects.create(
            sale=sale,
            item=item,
            user_id="x",
            outcome=Outcome.HELD,
            code=f"c{item.pk}",
            expires_at=timezone.now() + timedelta(minutes=1),
        )
        Purchase.objects.create(sale=sale, item=item, attempt=attempt, user_id="x")
    with pytest.raises(SystemExit):
        call_command("sale_report", str(sale.pk))
    report = json.loads(capsys.readouterr().out)
    assert report["user_limit_respected"] is False
    assert report["buyer_counts_match_purchases"] is False
    assert report["no_oversell"] is True


@pytest.mark.smoke
def test_start_sale_rejects_a_bad_count(capsys):
    with pytest.raises(SystemExit):
        call_command("start_sale", "--items", "0")
    assert Sale.objects.count() == 0


def test_redis_state_is_rebuilt_from_postgresql_after_it_is_lost(open_sale):
    sale = open_sale(items=3, user_limit=2)
    a, b, c = sale.items.all()
    purchase_complete(code=checkout_create(user_id="ann", item_id=a.pk).attempt.code)
    held = checkout_create(user_id="ann", item_id=b.pk).attempt
    get_redis_connection("stock").flushdb()  # Redis restarted: it remembers nothing

    again = checkout_create(user_id="ann", item_id=b.pk).attempt
    assert (again.outcome, again.code, again.via_redis) == (Outcome.EXISTING, held.code, True)
    with pytest.raises(ItemSold):
        checkout_create(user_id="bob", item_id=a.pk)
    with pytest.raises(UserLimitReached):
        checkout_create(user_id="ann", item_id=c.pk)
    assert CheckoutAttempt.objects.filter(via_redis=False).count() == 0


def test_a_sale_is_rebuilt_on_a_redis_cluster_in_its_one_slot(on_redis_cluster, open_sale):
    sale = open_sale(items=2, user_limit=1)
    a, b = sale.items.all()
    held = checkout_create(user_id="ann", item_id=a.pk).attempt
    master = on_redis_cluster.master_of(f"{{sale:{sale.pk}}}:ready")
    assert Redis(port=master).delete(f"{{sale:{sale.pk}}}:ready") == 1  # as if it restarted

    again = checkout_create(user_id="ann", item_id=a.pk).attempt
    assert (again.outcome, again.code, again.via_redis) == (Outcome.EXISTING, held.code, True)
    with pytest.raises(UserLimitReached):
        checkout_create(user_id="ann", item_id=b.pk)
    assert CheckoutAttempt.objects.filter(via_redis=False).count() == 0


def test_writes_missed_during_a_redis_stall_are_repaired(own_redis, open_sale):
    """Redis kept its state but this process could not reach it for a while: what was decided
    in PostgreSQL meanwhile is in Redis before Redis decides again."""
    sale = open_sale(items=3, user_limit=3)
    a, b, c = sale.items.all()
    fallbacks = {reason: sample("sales_redis_fallback_total", reason=reason)
                 for reason in ("error", "circuit_open")}  # fmt: skip
    own_redis.pause()
    # times out and opens the circuit (Redis may still run the command once it wakes up)
    assert checkout_create(user_id="ann", item_id=a.pk).attempt.via_redis is False
    # decided while the circuit is open: Redis is not even asked
    assert checkout_create(user_id="ann", item_id=b.pk).attempt.via_redis is False
    assert {
        reason: sample("sales_redis_fallback_total", reason=reason) - before
        for reason, before in fallbacks.items()
    } == {"error": 1, "circuit_open": 1}, "each fallback is counted, with its reason"
    own_redis.resume()
    time.sleep(CIRCUIT_OPEN_SECONDS)
    with pytest.raises(ItemReserved):
        checkout_create(user_id="bob", item_id=b.pk)
    assert CheckoutAttempt.objects.get(user_id="bob").via_redis is True
    assert checkout_create(user_id="bob", item_id=c.pk).attempt.via_redis is True


def test_a_redis_hold_whose_attempt_cannot_be_written_is_released(open_sale, monkeypatch):
    """The hold is made in Redis first; if PostgreSQL then refuses the attempt, the client gets
    an error and the item must not stay blocked behind a code nobody was given."""
    item = open_sale(items=1).items.get()
    record = _attempts.record

    def database_fails(*args, **kwargs):
        raise DatabaseError("the insert failed")

    monkeypatch.setattr(_attempts, "record", database_fails)
    with pytest.raises(DatabaseError):
        checkout_create(user_id="ann", item_id=item.pk)
    monkeypatch.setattr(_attempts, "record", record)
    held = checkout_create(user_id="bob", item_id=item.pk).attempt
    assert (held.outcome, held.via_redis) == (Outcome.HELD, True)


@pytest.mark.smoke
def test_a_code_that_expires_while_waiting_for_the_lock_is_refused(open_sale):
    item = open_sale(items=1).items.get()
    attempt = checkout_create(user_id="ann", item_id=item.pk).attempt
    CheckoutAttempt.objects.filter(pk=attempt.pk).update(expires_at=timezone.now())
    attempt.refresh_from_db()
    assert stock.purchase(code=attempt.code).outcome == CodeExpired.code
    assert not Purchase.objects.exists()
