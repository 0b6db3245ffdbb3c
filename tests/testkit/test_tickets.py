"""The ticket generator the load runs count on: `make loadtest` expects exactly the tickets it
made malformed to be rejected, and distinct orders to be no duplicates."""

from collections import Counter
from decimal import Decimal

import pytest

from testkit.tickets import MALFORMATIONS, SAMPLE, TicketFactory, ticket_bytes
from tickets.parsing import ParsedTicket, ParseError, parse_ticket

pytestmark = pytest.mark.smoke


def test_generated_tickets_parse_unless_malformed_by_design():
    factory = TicketFactory(seed=42, malformed_rate=0.05)
    tickets = [factory.make() for _ in range(4000)]
    outcomes: Counter[str] = Counter()
    for ticket in tickets:
        result = parse_ticket(ticket.body)
        if ticket.malformed:
            assert isinstance(result, ParseError), (ticket.malformed, ticket.body)
            outcomes[ticket.malformed] += 1
        else:
            assert isinstance(result, ParsedTicket), (result, ticket.body)
            assert result.lines
    assert 0.04 <= sum(outcomes.values()) / len(tickets) <= 0.06
    assert set(outcomes) == set(MALFORMATIONS)


def test_generated_tickets_are_distinct_orders_of_real_products():
    factory = TicketFactory(seed=3, malformed_rate=0)
    catalogue = {p.product_id: p.name for p in factory.products}
    parsed = [parse_ticket(body) for body in factory.bodies(500)]
    assert all(isinstance(ticket, ParsedTicket) for ticket in parsed)
    tickets = [ticket for ticket in parsed if isinstance(ticket, ParsedTicket)]
    assert len({ticket.order for ticket in tickets}) == len(tickets)
    for ticket in tickets:
        for line in ticket.lines:
            assert catalogue[line.product_id] == line.name
            assert line.price > 0
        assert ticket.total >= ticket.vat > 0


def test_a_ticket_built_to_order_says_what_it_was_given():
    result = parse_ticket(ticket_bytes("7", [("Café, serré", "IZ8z", "2"), ("Thé", "T1", "1.5")]))
    assert isinstance(result, ParsedTicket)
    assert (result.order, result.total, result.vat) == ("7", Decimal("3.5"), 0)
    assert [(line.name, line.product_id) for line in result.lines] == [
        ("Café, serré", "IZ8z"),
        ("Thé", "T1"),
    ]
    assert isinstance(parse_ticket(SAMPLE), ParsedTicket)
