"""What operators see: the admin pages and the Prometheus metrics."""

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from operations import gauges
from sales.services import checkout_create, purchase_complete
from tests.metrics import sample

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client, django_user_model):
    user = django_user_model.objects.create_superuser("root", password="pw")
    client.force_login(user)
    return client


@pytest.mark.smoke
def test_admin_lists_sales_items_attempts_and_purchases(admin_client, open_sale):
    sale = open_sale(items=3)
    item = sale.items.first()
    checkout_create(user_id="ann", item_id=item.pk)
    pages = {
        "/admin/sales/sale/": "0 / 1 / 2",
        "/admin/sales/item/?status=reserved": item.name,
        "/admin/sales/checkoutattempt/?outcome=held": "ann",
        "/admin/sales/purchase/": "0 purchases",
    }
    for url, expected in pages.items():
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert expected in response.content.decode(), url
    available = admin_client.get("/admin/sales/item/?status=available").content.decode()
    assert item.name not in available


@pytest.mark.smoke
def test_the_sale_page_and_the_attempts_list_speak_plainly(admin_client, open_sale):
    sale = open_sale(items=3)
    checkout_create(user_id="ann", item_id=sale.items.first().pk)
    page = admin_client.get(f"/admin/sales/sale/{sale.pk}/change/").content.decode()
    for raw in ("no_oversell", "user_limit_respected", "max_items_per_buyer", "Ttl", "Item count"):
        assert raw not in page, raw
    assert "no item sold twice" in page
    assert "A reservation lasts" in page
    attempts = admin_client.get("/admin/sales/checkoutattempt/").content.decode()
    assert "via redis" not in attempts.lower()
    assert "By decided in" in attempts
    assert f'<a href="/admin/sales/sale/{sale.pk}/change/">#{sale.pk}</a>' in attempts
    decided = "redis" if settings.REDIS_URL else "database"
    for value, shown in ((decided, True), ({"redis": "database"}.get(decided, "redis"), False)):
        listing = admin_client.get(f"/admin/sales/checkoutattempt/?decided_in={value}")
        assert ("ann" in listing.content.decode()) is shown, value


@pytest.mark.smoke
def test_admin_is_for_staff_only(client):
    response = client.get("/admin/sales/sale/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.smoke
def test_metrics_count_outcomes_and_available_items(api, open_sale):
    sale = open_sale(items=3)
    item = sale.items.first()
    outcomes = ("held", "item_reserved", "user_limit_reached")
    before = {outcome: sample("sales_checkout_total", outcome=outcome) for outcome in outcomes}
    purchased = sample("sales_purchase_total", outcome="purchased")
    code = api.post(f"/checkout?user_id=ann&id={item.pk}").json()["code"]
    api.post(f"/checkout?user_id=bob&id={item.pk}")
    api.post(f"/checkout?user_id=cid&id={item.pk}")
    api.post(f"/purchase?code={code}")
    moved = {outcome: sample("sales_checkout_total", outcome=outcome) - before[outcome]
             for outcome in outcomes}  # fmt: skip
    assert moved == {"held": 1, "item_reserved": 2, "user_limit_reached": 0}
    assert sample("sales_purchase_total", outcome="purchased") - purchased == 1
    text = api.get("/metrics").content.decode()
    assert f'sales_available_items{{sale="{sale.pk}"}} 2.0' in text
    assert f'sales_reserved_items{{sale="{sale.pk}"}} 0.0' in text
    assert f'sales_sold_items{{sale="{sale.pk}"}} 1.0' in text
    assert "django_http_requests_latency_seconds_by_view_method" in text


@pytest.mark.smoke
def test_a_sold_out_sale_gets_its_final_gauges_once_then_costs_nothing(api, open_sale):
    older = open_sale(items=1, starts_in=-60)
    current = open_sale(items=2)
    api.get("/metrics")
    code = checkout_create(user_id="ann", item_id=older.items.get().pk).attempt.code
    purchase_complete(code=code)
    text = api.get("/metrics").content.decode()
    assert f'sales_sold_items{{sale="{older.pk}"}} 1.0' in text
    assert f'sales_available_items{{sale="{older.pk}"}} 0.0' in text
    assert f'sales_available_items{{sale="{current.pk}"}} 2.0' in text
    assert older.pk not in gauges._shown.get()


def test_the_sale_gauges_cost_the_same_queries_however_many_sales_still_sell(
    open_sale, settings, tmp_path
):
    settings.TICKET_SPOOL_DIR = tmp_path
    open_sale(items=2, starts_in=-60)
    with CaptureQueriesContext(connection) as one:
        gauges.refresh(now=timezone.now())
    for _ in range(3):
        open_sale(items=2, starts_in=-30)
    with CaptureQueriesContext(connection) as four:
        gauges.refresh(now=timezone.now())
    assert len(four) == len(one)
