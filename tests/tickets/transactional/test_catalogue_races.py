"""Many workers parsing overlapping tickets at once, against the real PostgreSQL."""

import itertools
import random
import threading
from datetime import timedelta
from uuid import UUID

import pytest
from django.conf import settings
from django.db import connection
from django.utils import timezone

from testkit.http import run_threads
from testkit.tickets import ticket_bytes
from tickets import services
from tickets.models import Order, OrderLine, Product, ProductPrice, Ticket

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(settings.EMBEDDED, reason="needs PostgreSQL"),
]

WORKERS = 8
PRODUCTS = [f"P{n:02d}" for n in range(12)]


def make_tickets(rng: random.Random) -> list[Ticket]:
    start = timezone.now()
    tickets: list[Ticket] = []
    for n in range(160):
        products = rng.sample(PRODUCTS, rng.randint(2, 6))
        lines = [
            (f"name {p} v{rng.randint(1, 3)}", p, rng.choice(["1", "2", "2.5"])) for p in products
        ]
        body = ticket_bytes(str(n % 140), lines) if n < 140 else tickets[n - 140].raw
        tickets.append(
            Ticket(
                raw=body,
                sha256="-",
                # Shuffled times: workers meet tickets in an order unrelated to their age.
                received_at=start + timedelta(milliseconds=rng.randint(0, 10_000)),
            )
        )
    return Ticket.objects.bulk_create(tickets)


def catalogue_state() -> dict:
    return {
        p.product_id: (
            p.name,
            p.price,
            p.first_seen_at,
            p.last_seen_at,
            p.last_ticket_id,
            p.times_seen,
        )
        for p in Product.objects.all()
    }


def parse_concurrently(groups: list[list[UUID]]) -> None:
    barrier = threading.Barrier(len(groups), timeout=60)

    def work(n: int) -> None:
        ids = groups[n]
        try:
            barrier.wait()
            for chunk in (ids[i : i + 7] for i in range(0, len(ids), 7)):
                services.tickets_parse(ticket_ids=chunk, limit=len(chunk))
        finally:
            connection.close()

    run_threads(len(groups), work, timeout=120)


def test_concurrent_parsing_gives_the_sequential_catalogue():
    rng = random.Random(4)
    tickets = make_tickets(rng)
    ids = [t.id for t in tickets]
    rng.shuffle(ids)
    parse_concurrently([ids[n::WORKERS] for n in range(WORKERS)])

    assert not Ticket.objects.filter(status=Ticket.Status.RECEIVED).exists()
    assert Ticket.objects.filter(status=Ticket.Status.PARSED).count() == 140
    assert Ticket.objects.filter(status=Ticket.Status.DUPLICATE).count() == 20
    concurrent = catalogue_state()
    for product in Product.objects.all():
        history = list(ProductPrice.objects.filter(product=product).order_by("effective_at"))
        assert history[-1].price == product.price
        assert all(a.price != b.price for a, b in itertools.pairwise(history))

    # The same tickets counted again, one batch after another. (Which copy of a duplicated
    # ticket counts is "the first one parsed": the duplicates stay as they are.)
    OrderLine.objects.all().delete()
    Order.objects.all().delete()
    ProductPrice.objects.all().delete()
    Product.objects.all().delete()
    Ticket.objects.filter(status=Ticket.Status.PARSED).update(
        status=Ticket.Status.RECEIVED, fingerprint=""
    )
    services.tickets_parse_backlog(batch_size=7)
    assert catalogue_state() == concurrent
    assert Order.objects.count() == 140
