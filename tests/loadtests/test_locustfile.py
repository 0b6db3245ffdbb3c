"""The locust scenarios import, and their ticket generator speaks the webhook's format."""

import importlib
import os
from collections import Counter
from types import ModuleType

import pytest

from tickets.parsing import ParsedTicket, ParseError, parse_ticket


@pytest.fixture(scope="module")
def locustfile() -> ModuleType:
    # Importing locust monkey-patches the standard library for gevent, which the rest of the
    # suite (threads, database pools) must not get.
    os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")
    return importlib.import_module("loadtests.locustfile")


def test_scenario_classes_exist(locustfile):
    from locust import HttpUser

    for name in ("FlashSaleBuyer", "Till"):
        user_class = getattr(locustfile, name)
        assert issubclass(user_class, HttpUser)
        assert user_class.tasks, name
        assert user_class.weight > 0
    assert locustfile.FlashSaleBuyer.weight > locustfile.Till.weight


def test_generated_tickets_parse_unless_malformed_by_design(locustfile):
    factory = locustfile.TicketFactory(seed=42, malformed_rate=0.05)
    tickets = [factory.make() for _ in range(4000)]

    outcomes = Counter()
    for ticket in tickets:
        result = parse_ticket(ticket.body)
        if ticket.malformed:
            assert isinstance(result, ParseError), (ticket.malformed, ticket.body)
            outcomes[ticket.malformed] += 1
        else:
            assert isinstance(result, ParsedTicket), (result, ticket.body)
            assert result.lines

    malformed = sum(outcomes.values())
    assert 0.04 <= malformed / len(tickets) <= 0.06
    assert set(outcomes) == set(locustfile._MALFORMATIONS)


def test_generated_tickets_are_distinct_orders(locustfile):
    factory = locustfile.TicketFactory(seed=1, malformed_rate=0)
    orders = [parse_ticket(factory.make().body).order for _ in range(500)]
    assert len(set(orders)) == len(orders)


def test_ticket_prices_are_real_products(locustfile):
    factory = locustfile.TicketFactory(seed=3, malformed_rate=0)
    catalogue = {p.product_id: p.name for p in factory.products}
    for _ in range(200):
        ticket = parse_ticket(factory.make().body)
        for line in ticket.lines:
            assert catalogue[line.product_id] == line.name
            assert line.price > 0
        assert ticket.total >= ticket.vat > 0
