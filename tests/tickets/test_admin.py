import re

import pytest
from django.test import Client

from testkit.tickets import SAMPLE
from tests.metrics import sample
from tickets import services
from tickets.models import Order, Ticket

pytestmark = pytest.mark.django_db

REJECTED = b"Order: 9\nVAT: 0\nTotal: 1\n\nproduct,product_id,price\nx,X,one\n"


@pytest.fixture
def operator(django_user_model) -> Client:
    client = Client()
    client.force_login(django_user_model.objects.create_superuser("boss", password="pw"))
    return client


@pytest.mark.smoke
def test_ticket_pages_filter_by_status_and_show_the_raw_body(operator):
    ticket = Ticket.objects.get(id=services.ticket_ingest(body=SAMPLE).id)
    services.tickets_parse()
    listing = operator.get("/admin/tickets/ticket/?status__exact=parsed")
    assert listing.status_code == 200
    assert str(ticket.id) in listing.content.decode()
    assert (
        str(ticket.id)
        not in operator.get("/admin/tickets/ticket/?status__exact=rejected").content.decode()
    )
    page = operator.get(f"/admin/tickets/ticket/{ticket.id}/change/")
    assert page.status_code == 200
    assert "Formule(s) midi,aZde,14.90" in page.content.decode()


@pytest.mark.smoke
def test_a_ticket_is_found_by_the_end_of_its_id_as_the_list_shows_it(operator):
    wanted, other = (services.ticket_ingest(body=SAMPLE + bytes([n])).id for n in (1, 2))
    shown = operator.get("/admin/tickets/ticket/").content.decode()
    assert f"…{wanted.hex[-8:]}<" in shown
    for term in (wanted.hex[-8:], f"…{wanted.hex[-8:]}", wanted.hex[-8:].upper(), str(wanted)):
        found = operator.get("/admin/tickets/ticket/", {"q": term}).content.decode()
        assert str(wanted) in found, term
        assert str(other) not in found, term


@pytest.mark.smoke
def test_a_rejected_ticket_shows_its_lines_numbered_the_rejected_one_marked(operator):
    ticket_id = services.ticket_ingest(body=REJECTED.replace(b"\n", b"\r\n")).id
    services.tickets_parse()
    page = operator.get(f"/admin/tickets/ticket/{ticket_id}/change/").content.decode()
    assert '<a href="#line-6">line 6</a>' in page
    rows = re.findall(r'<tr id="line-(\d+)" class="(rejected)?"><th>\d+</th><td>([^<]*)</td>', page)
    assert [(n, text) for n, _, text in rows][4:6] == [
        ("5", "product,product_id,price"),
        ("6", "x,X,one"),
    ]
    assert [n for n, marked, _ in rows if marked] == ["6"]
    assert page.count("rejected</span>") == 1  # the status badge, and the status nowhere else
    assert "(rejected)" not in page


@pytest.mark.smoke
def test_a_ticket_parsed_again_and_still_rejected_is_a_warning(operator):
    ticket_id = services.ticket_ingest(body=REJECTED).id
    services.tickets_parse()
    page = operator.post(f"/admin/tickets/ticket/{ticket_id}/reprocess/", follow=True)
    assert '<li class="warning">Parsed again: rejected.</li>' in page.content.decode()
    selected = {"action": "reprocess", "_selected_action": [str(ticket_id)]}
    page = operator.post("/admin/tickets/ticket/", selected, follow=True)
    assert '<li class="warning">Reprocessed: 1 rejected.</li>' in page.content.decode()


@pytest.mark.smoke
def test_the_reprocess_action_parses_rejected_tickets_again(operator):
    rejected = services.ticket_ingest(body=REJECTED).id
    parsed = services.ticket_ingest(body=SAMPLE).id
    services.tickets_parse()
    Ticket.objects.filter(id=rejected).update(raw=REJECTED.replace(b"one", b"1"))
    response = operator.post(
        "/admin/tickets/ticket/",
        {"action": "reprocess", "_selected_action": [str(rejected), str(parsed)]},
        follow=True,
    )
    assert response.status_code == 200
    assert "1 parsed, 1 skipped" in response.content.decode()
    assert Ticket.objects.get(id=rejected).status == "parsed"


@pytest.mark.smoke
def test_product_and_order_pages(operator):
    services.ticket_ingest(body=SAMPLE)
    services.tickets_parse()
    search = operator.get("/admin/tickets/product/?q=caf")
    assert search.status_code == 200
    assert "IZ8z" in search.content.decode()
    product = operator.get("/admin/tickets/product/IZ8z/change/")
    assert product.status_code == 200
    assert "2.00" in product.content.decode()
    order = Order.objects.get()
    assert operator.get(f"/admin/tickets/order/{order.pk}/change/").status_code == 200
    assert operator.get("/admin/tickets/order/").status_code == 200


@pytest.mark.smoke
def test_metrics_count_tickets_by_status(api):
    statuses = ("received", "parsed", "rejected", "duplicate")
    before = {status: sample("tickets_total", status=status) for status in statuses}
    batches = sample("tickets_parse_batch_seconds_count")
    for body in (SAMPLE, SAMPLE, REJECTED):
        services.ticket_ingest(body=body)
    services.tickets_parse_backlog()
    moved = {status: sample("tickets_total", status=status) - before[status] for status in statuses}
    # A rejected ticket is counted once parsing rejects it; it was received first.
    assert moved == {"received": 3, "parsed": 1, "rejected": 1, "duplicate": 1}
    assert sample("tickets_parse_batch_seconds_count") > batches
    assert "tickets_backlog 0.0" in api.get("/metrics").content.decode()


@pytest.mark.smoke
def test_metrics_show_the_backlog_as_of_the_scrape(api):
    for n in range(3):
        services.ticket_ingest(body=SAMPLE + b"x" * n)
    Ticket.objects.update(status=Ticket.Status.RECEIVED)  # as if no worker had run yet
    text = api.get("/metrics").content.decode()
    assert "tickets_backlog 3.0" in text
    assert "tickets_spool_depth 0.0" in text


@pytest.mark.smoke
def test_a_reprocessed_ticket_is_counted_once_in_tickets_total(operator):
    """Its first outcome is in tickets_total; parsing it again is counted apart."""
    from prometheus_client import REGISTRY

    def count(name: str) -> float:
        return REGISTRY.get_sample_value(name, {"status": "rejected"}) or 0.0

    rejected = services.ticket_ingest(body=REJECTED).id
    services.tickets_parse()
    before = count("tickets_total"), count("tickets_reprocessed_total")
    services.ticket_reprocess(ticket_id=rejected)  # rejected again: same bytes
    assert Ticket.objects.get(id=rejected).status == "rejected"
    assert (count("tickets_total"), count("tickets_reprocessed_total")) == (
        before[0],
        before[1] + 1,
    )
