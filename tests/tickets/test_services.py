from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from testkit.tickets import SAMPLE, ticket_bytes
from tickets import services
from tickets.exceptions import TicketNotFound, TicketNotReprocessable
from tickets.models import Order, OrderLine, Product, ProductPrice, Ticket
from tickets.parsing import parse_ticket
from tickets.services import pipeline

pytestmark = pytest.mark.django_db


def ingest(body: bytes, *, at_minute: int | None = None) -> Ticket:
    receipt = services.ticket_ingest(body=body)
    ticket = Ticket.objects.get(id=receipt.id)
    if at_minute is not None:
        ticket.received_at = timezone.now().replace(microsecond=0) + timedelta(minutes=at_minute)
        ticket.save(update_fields=["received_at"])
    return ticket


def status_of(ticket: Ticket) -> str:
    ticket.refresh_from_db()
    return ticket.status


@pytest.mark.smoke
def test_a_batch_parses_tickets_into_orders_and_the_catalogue():
    good = ingest(SAMPLE)
    bad = ingest(b"Order: 1\nVAT: 0\nTotal: 1\n\nproduct,product_id,price\nx,,1\n")
    assert services.tickets_parse() == 2
    assert status_of(good) == Ticket.Status.PARSED
    assert status_of(bad) == Ticket.Status.REJECTED
    assert (bad.rejection_line, bad.rejection_reason) == (6, "product_id is empty")
    order = Order.objects.get(ticket=good)
    assert (order.number, order.vat, order.total) == ("123456", Decimal("3.10"), Decimal("16.90"))
    assert list(order.lines.values_list("line", "product_id", "price")) == [
        (6, "aZde", Decimal("14.90")),
        (7, "IZ8z", Decimal("2.00")),
    ]
    coffee = Product.objects.get(product_id="IZ8z")
    assert (coffee.name, coffee.price, coffee.times_seen) == ("Café", Decimal("2.00"), 1)
    assert coffee.first_seen_at == coffee.last_seen_at == good.received_at
    assert list(coffee.prices.values_list("price", "ticket")) == [(Decimal("2.00"), good.id)]
    assert services.tickets_parse() == 0


@pytest.mark.smoke
def test_anomalies_and_unknown_headers_are_kept_with_the_ticket():
    ticket = ingest(b"Order: 5\nStore: Lyon\nVAT: 0\nTotal: 9\n\nproduct,product_id,price\na,A,2\n")
    services.tickets_parse()
    ticket.refresh_from_db()
    assert ticket.status == Ticket.Status.PARSED
    assert ticket.unknown_headers == {"Store": "Lyon"}
    assert [a["code"] for a in ticket.anomalies] == ["total_mismatch"]


@pytest.mark.smoke
def test_the_same_content_is_counted_once_and_later_copies_are_duplicates():
    first, second = ingest(SAMPLE), ingest(SAMPLE.replace(b"\n", b"\r\n"))
    services.tickets_parse()
    third = ingest(SAMPLE)
    services.tickets_parse()
    assert status_of(first) == Ticket.Status.PARSED
    for copy in (second, third):
        assert status_of(copy) == Ticket.Status.DUPLICATE
        assert copy.duplicate_of_id == first.id
    assert Order.objects.count() == 1
    assert Product.objects.get(product_id="IZ8z").times_seen == 1


@pytest.mark.smoke
def test_the_same_order_with_other_content_is_not_a_duplicate():
    ingest(ticket_bytes("42", [("Café", "IZ8z", "2")]))
    ingest(ticket_bytes("42", [("Café", "IZ8z", "2"), ("Thé", "TH01", "2")]))
    services.tickets_parse()
    assert Ticket.objects.filter(status=Ticket.Status.PARSED).count() == 2


@pytest.mark.smoke
def test_the_newest_ticket_sets_name_and_price_whatever_the_parse_order():
    newest = ingest(ticket_bytes("2", [("Café serré", "IZ8z", "2.20")]), at_minute=2)
    services.tickets_parse()
    ingest(ticket_bytes("1", [("Café", "IZ8z", "2.00")]), at_minute=1)
    services.tickets_parse()
    coffee = Product.objects.get(product_id="IZ8z")
    assert (coffee.name, coffee.price, coffee.last_ticket_id) == (
        "Café serré",
        Decimal("2.20"),
        newest.id,
    )
    assert coffee.times_seen == 2
    assert coffee.first_seen_at < coffee.last_seen_at == newest.received_at


@pytest.mark.smoke
def test_price_history_gets_a_row_only_when_the_price_changes():
    for minute, price in enumerate(["2.00", "2.00", "2.20", "2.20", "2.00"]):
        ingest(ticket_bytes(str(minute), [("Café", "IZ8z", price)]), at_minute=minute)
    services.tickets_parse()
    history = ProductPrice.objects.filter(product_id="IZ8z").order_by("effective_at")
    assert [p.price for p in history] == [Decimal("2.00"), Decimal("2.20"), Decimal("2.00")]
    assert Product.objects.get(product_id="IZ8z").times_seen == 5


@pytest.mark.smoke
def test_a_product_twice_in_one_ticket_takes_its_last_row_and_both_lines():
    ticket = ingest(ticket_bytes("3", [("Café", "IZ8z", "2"), ("Café double", "IZ8z", "3")]))
    services.tickets_parse()
    coffee = Product.objects.get(product_id="IZ8z")
    assert (coffee.name, coffee.price, coffee.times_seen) == ("Café double", Decimal("3.00"), 1)
    assert OrderLine.objects.filter(order_id=ticket.id).count() == 2


@pytest.mark.smoke
def test_a_rejected_ticket_is_reprocessed_after_a_fix():
    ticket = ingest(b"Order: 1\nVAT: 0\nTotal: 2\n\nproduct,product_id,price\nx,X,2\n")
    with mock.patch.object(pipeline, "parse_ticket", return_value=parse_ticket(b"")):
        services.tickets_parse()
    assert status_of(ticket) == Ticket.Status.REJECTED
    assert services.ticket_reprocess(ticket_id=ticket.id).status == Ticket.Status.PARSED
    ticket.refresh_from_db()
    assert (ticket.rejection_line, ticket.rejection_reason) == (None, "")
    with pytest.raises(TicketNotReprocessable):
        services.ticket_reprocess(ticket_id=ticket.id)
    with pytest.raises(TicketNotFound):
        services.ticket_reprocess(ticket_id=Ticket().id)


@pytest.mark.smoke
def test_a_ticket_that_cannot_be_stored_is_rejected_without_holding_up_the_batch():
    tickets = [ingest(ticket_bytes(str(n), [("a", f"P{n}", "1")])) for n in range(3)]
    real = pipeline.catalogue_record

    def fails_for_p1(*, sightings):
        if any(s.product_id == "P1" for s in sightings):
            raise ValueError("boom")
        real(sightings=sightings)

    with mock.patch.object(pipeline, "catalogue_record", fails_for_p1):
        assert services.tickets_parse() == 3
    assert [status_of(t) for t in tickets] == ["parsed", "rejected", "parsed"]
    assert "could not be stored (ValueError)" in tickets[1].rejection_reason


def test_the_backlog_run_parses_batch_after_batch_until_nothing_is_left():
    for n in range(7):
        ingest(ticket_bytes(str(n), [("a", "A", "1")]))
    with mock.patch.object(pipeline, "tickets_parse", wraps=pipeline.tickets_parse) as batches:
        run = services.tickets_parse_backlog(batch_size=2)
    assert (run.parsed, run.out_of_time) == (7, False)
    assert batches.call_count == 5
    assert not Ticket.objects.filter(status=Ticket.Status.RECEIVED).exists()
