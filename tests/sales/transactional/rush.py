"""Threads that race through the real services on the real PostgreSQL and Redis.

Each thread uses its own database connection and closes it when done; a barrier releases them
together so that the requests really overlap. Every wait is bounded: a stuck thread fails the
test instead of hanging the run.
"""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

from core.errors import DomainError
from sales.models import Sale
from sales.services import checkout_create, purchase_complete
from testkit.http import run_threads
from testkit.rush import Answer, RushResult, rush

WAIT = 60  # seconds: far beyond what a thread needs, even on a loaded machine


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in n threads released together; return each result or DomainError code."""
    barrier = threading.Barrier(n, timeout=WAIT)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except DomainError as refusal:
            results[i] = refusal.code
        finally:
            connection.close()

    run_threads(n, run, timeout=WAIT)
    return results


def service_rush(
    sale: Sale,
    *,
    slots: int,
    abandon: float,
    deadline: float,
    during: Callable[[], None] | None = None,
) -> RushResult:
    """The rush of `testkit.rush` through the services, in this process."""

    def checkout(i: int, user: str, item_id: int) -> Answer:
        try:
            attempt = checkout_create(user_id=user, item_id=item_id).attempt
            return Answer(attempt.outcome, ok=True, code=attempt.code)
        except DomainError as refusal:
            return Answer(refusal.code, refusal=refusal.code)
        finally:
            connection.close()

    def purchase(i: int, code: str) -> Answer:
        try:
            purchase_complete(code=code)
            return Answer("sold", ok=True)
        except DomainError as refusal:
            return Answer(refusal.code, refusal=refusal.code)
        finally:
            connection.close()

    def run_during() -> None:
        try:
            assert during is not None
            during()
        finally:
            connection.close()

    return rush(
        list(sale.items.values_list("pk", flat=True)),
        slots=slots,
        user_limit=sale.user_limit,
        abandon=abandon,
        deadline=deadline,
        checkout=checkout,
        purchase=purchase,
        during=run_during if during else None,
    )
