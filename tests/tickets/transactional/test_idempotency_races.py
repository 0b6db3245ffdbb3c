"""Concurrent tickets with one Idempotency-Key, on the real PostgreSQL."""

import pytest
from django.db import connection

from testkit.tickets import SAMPLE
from tests.sales.transactional.rush import race
from tickets.models import Ticket
from tickets.services import ticket_ingest

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]


def test_one_key_sent_at_once_with_one_body_stores_one_ticket_under_one_id():
    receipts = race(20, lambda i: ticket_ingest(body=SAMPLE, idempotency_key="till-9-0001"))
    assert len({receipt.id for receipt in receipts}) == 1
    assert Ticket.objects.get().id == receipts[0].id


def test_one_key_sent_at_once_with_two_bodies_stores_one_and_refuses_the_other():
    bodies = [SAMPLE, SAMPLE + b"x,Y,1\n"] * 10
    answers = race(20, lambda i: ticket_ingest(body=bodies[i], idempotency_key="till-9-0002"))
    stored = Ticket.objects.get()
    for body, answer in zip(bodies, answers, strict=True):
        if body == bytes(stored.raw):
            assert answer.id == stored.id
        else:
            assert answer == "idempotency_key_reused"
