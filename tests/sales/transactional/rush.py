"""Threads that race through the real services on the real PostgreSQL and Redis.

Each thread uses its own database connection and closes it when done; a barrier releases them
together so that the requests really overlap.
"""

import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.db import connection

from config.errors import DomainError
from sales.models import Sale
from sales.services import checkout_create, purchase_complete


def race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run `work(i)` in n threads released together; return each result or DomainError code."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = work(i)
        except DomainError as refusal:
            results[i] = refusal.code
        except Exception as crash:  # a crash must fail the test, not vanish with the thread
            results[i] = crash
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    crashes = [r for r in results if isinstance(r, Exception)]
    assert not crashes, crashes
    return results


@dataclass
class RushStats:
    checkouts: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, outcome: str) -> None:
        with self.lock:
            self.checkouts += 1
            self.outcomes[outcome] += 1


def rush(
    sale: Sale,
    *,
    buyers: int,
    abandon_rate: float,
    deadline_seconds: float,
    during: Callable[[], None] | None = None,
) -> RushStats:
    """Buyers check items out at random and buy them, abandoning some holds, until every item is
    sold or the deadline passes. `during` runs in its own thread alongside (fault injection)."""
    item_ids = list(sale.items.values_list("pk", flat=True))
    sold: set[int] = set()
    stats = RushStats()
    deadline = time.monotonic() + deadline_seconds

    def buyer(i: int) -> None:
        rng = random.Random(i)
        user = f"buyer-{i}"
        bought = 0
        while bought < sale.user_limit and len(sold) < len(item_ids):
            if time.monotonic() > deadline:
                return
            candidates = [pk for pk in item_ids if pk not in sold]
            if not candidates:
                return
            item_id = rng.choice(candidates)
            try:
                checkout = checkout_create(user_id=user, item_id=item_id)
                stats.count(checkout.attempt.outcome)
            except DomainError as refusal:
                stats.count(refusal.code)
                if refusal.code == "item_sold":
                    sold.add(item_id)
                elif refusal.code == "user_limit_reached":
                    time.sleep(0.05)  # wait for an abandoned hold of ours to expire
                continue
            finally:
                connection.close()
            if rng.random() < abandon_rate:
                continue
            try:
                purchase_complete(code=checkout.attempt.code)
                bought += 1
                sold.add(item_id)
            except DomainError:
                pass
            finally:
                connection.close()

    def run_during() -> None:
        try:
            assert during is not None
            during()
        finally:
            connection.close()

    fault = threading.Thread(target=run_during) if during else None
    if fault:
        fault.start()
    race(buyers, buyer)
    if fault:
        fault.join()
    return stats
