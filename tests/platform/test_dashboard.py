"""What operators and newcomers see: the dashboard on the admin index, the sale and ticket pages,
and the landing page."""

import re
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from operations.dashboard import CHART_WIDTH, MIN_SPAN_MINUTES, PURCHASES, outcome_chart
from sales.exceptions import ItemReserved
from sales.models import CheckoutAttempt, Sale
from sales.selectors import sale_report
from sales.services import checkout_create, purchase_complete, sale_open
from testkit.tickets import SAMPLE
from tickets import services as ticket_services
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

REJECTED = b"Order: 9\nVAT: 0\nTotal: 1\n\nproduct,product_id,price\nx,X,one\n"


@pytest.fixture(autouse=True)
def _own_spool(settings, tmp_path):
    settings.TICKET_SPOOL_DIR = tmp_path / "spool"


@pytest.fixture
def open_sale():
    def open_(items: int, user_limit: int = 3) -> Sale:
        started = timezone.now() - timedelta(seconds=1)
        return sale_open(
            starts_at=started, item_count=items, user_limit=user_limit, ttl_seconds=120
        )

    return open_


@pytest.fixture
def operator(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("boss", password="pw"))
    return client


def figure(page: str, sale_id: int, name: str) -> int:
    row = re.search(rf'<tr data-sale="{sale_id}">(.*?)</tr>', page, re.S)
    assert row, page
    value = re.search(rf'data-figure="{name}">(\d+)<', row.group(1))
    assert value, row.group(1)
    return int(value.group(1))


@pytest.mark.smoke
def test_the_admin_index_shows_the_sale_outcomes_and_tickets_live(operator, open_sale):
    sale = open_sale(items=4, user_limit=3)
    first, second, _, _ = sale.items.all()
    purchase_complete(code=checkout_create(user_id="ann", item_id=first.pk).attempt.code)
    checkout_create(user_id="bob", item_id=second.pk)
    with pytest.raises(ItemReserved):
        checkout_create(user_id="cid", item_id=second.pk)
    ticket_services.ticket_ingest(body=REJECTED)
    ticket_services.tickets_parse()
    ticket_services.ticket_ingest(body=SAMPLE)  # left in the backlog

    for url in ("/admin/", "/admin/dashboard/"):
        page = operator.get(url).content.decode()
        report = sale_report(sale=sale)
        for name in ("sold", "reserved", "available"):
            assert figure(page, sale.pk, name) == report[name]
        assert 'data-series="held"' in page
        assert 'data-series="item_reserved"' in page
        assert 'data-series="purchased"' in page
        assert 'data-figure="backlog">1<' in page
        assert 'data-figure="spool">0<' in page
        assert "100.0 % (1 of 1)" in page  # rejected, of the tickets parsed this hour
    assert "operator/dashboard.js" in operator.get("/admin/").content.decode()


@pytest.mark.smoke
def test_the_chart_spans_the_activity_with_purchases_beside_checkouts(open_sale):
    sale = open_sale(items=3)
    first, second, _ = sale.items.all()
    purchase_complete(code=checkout_create(user_id="ann", item_id=first.pk).attempt.code)
    now = timezone.now()
    chart = outcome_chart(now=now)
    assert chart.minutes == MIN_SPAN_MINUTES - 1  # a minute of activity: the shortest span
    lines = {series.name: series for series in chart.series}
    assert (lines["held"].total, lines[PURCHASES].total) == (1, 1)
    last_x, last_y = lines[PURCHASES].points.split()[-1].split(",")
    assert (float(last_x), float(last_y)) == (CHART_WIDTH, 0)  # now, at the top

    attempt = checkout_create(user_id="bob", item_id=second.pk).attempt
    CheckoutAttempt.objects.filter(pk=attempt.pk).update(created_at=now - timedelta(minutes=20))
    chart = outcome_chart(now=now)
    assert chart.minutes == 20
    held = next(series for series in chart.series if series.name == "held")
    assert held.points.split()[0] == "0.0,0.0"  # 20 minutes ago, on the left edge


@pytest.mark.smoke
def test_the_dashboard_is_for_staff_only(client):
    response = client.get("/admin/dashboard/")
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]


@pytest.mark.smoke
def test_a_sale_page_shows_its_invariants_and_links_to_its_records(operator, open_sale):
    sale = open_sale(items=3)
    item = sale.items.first()
    checkout_create(user_id="ann", item_id=item.pk)
    page = operator.get(f"/admin/sales/sale/{sale.pk}/change/").content.decode()
    assert page.count("holds</span>") == 4
    assert "BROKEN" not in page
    assert f"/admin/sales/checkoutattempt/?sale__id__exact={sale.pk}" in page
    assert f"/admin/sales/purchase/?sale__id__exact={sale.pk}" in page
    items = operator.get(f"/admin/sales/item/?sale__id__exact={sale.pk}&status=reserved")
    assert "ann" in items.content.decode()  # who holds it


@pytest.mark.smoke
def test_times_show_seconds(operator, open_sale):
    sale = open_sale(items=1)
    page = operator.get("/admin/sales/sale/").content.decode()
    assert sale.starts_at.strftime("%Y-%m-%d %H:%M:%S") in page


@pytest.mark.smoke
def test_a_rejected_ticket_has_a_button_that_parses_it_again(operator):
    ticket_id = ticket_services.ticket_ingest(body=REJECTED).id
    ticket_services.tickets_parse()
    page = operator.get(f"/admin/tickets/ticket/{ticket_id}/change/").content.decode()
    assert f"/admin/tickets/ticket/{ticket_id}/reprocess/" in page
    Ticket.objects.filter(id=ticket_id).update(raw=REJECTED.replace(b"one", b"1"))
    response = operator.post(f"/admin/tickets/ticket/{ticket_id}/reprocess/", follow=True)
    assert '<li class="success">Parsed again: parsed.</li>' in response.content.decode()
    page = response.content.decode()
    assert "/reprocess/" not in page  # parsed: counted already, nothing to redo
    order_link = f"/admin/tickets/order/{ticket_id}/change/"
    assert order_link in operator.get("/admin/tickets/ticket/").content.decode()


@pytest.mark.smoke
def test_the_landing_page_links_to_everything_and_the_current_sale(client, open_sale):
    assert "No sale has started yet" in client.get("/").content.decode()
    sale = open_sale(items=2)
    page = client.get("/").content.decode()
    for link in ("/api/docs/", "/admin/", "/health", "/metrics", f"/sales/{sale.pk}"):
        assert f'href="{link}' in page
