"""The product catalogue's one write path, and the only place that locks products.

Concurrency: every writer takes product rows in `product_id` order, first by inserting the
missing ones (`ON CONFLICT DO NOTHING`, which waits for a concurrent insert of the same id), then
by locking them all with `SELECT ... FOR NO KEY UPDATE`. Writers therefore queue on shared
products instead of deadlocking, and each one reads the state the previous one committed, so no
update is lost. `FOR NO KEY UPDATE` leaves order lines free to reference a locked product.

Order independence: a product's name and price come from the newest ticket that contained it,
by (received time, ticket id); a sighting older than the current state still counts (times seen,
first seen) but changes neither, so the result is the same whatever order workers commit in.
The price history gets a row each time the current price changes.
"""

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

from django.db import transaction

from core.sql import insert_rows, update_rows
from tickets.models import Product, ProductPrice


@dataclass(frozen=True)
class Sighting:
    """A product as one ticket shows it (its last row, if the ticket names it twice)."""

    product_id: str
    name: str
    price: Decimal
    seen_at: datetime
    ticket_id: UUID


_COLUMNS = (
    "product_id",
    "name",
    "price",
    "first_seen_at",
    "last_seen_at",
    "last_ticket_id",
    "times_seen",
)


def catalogue_record(*, sightings: list[Sighting]) -> None:
    """Fold sightings into the catalogue. Runs inside the caller's transaction, which holds the
    product locks until it commits; at most one sighting per (product, ticket)."""
    assert transaction.get_connection().in_atomic_block, "needs the caller's transaction"
    if not sightings:
        return
    by_product: dict[str, list[Sighting]] = {}
    for sighting in sorted(sightings, key=lambda s: (s.seen_at, s.ticket_id)):
        by_product.setdefault(sighting.product_id, []).append(sighting)
    ids = sorted(by_product)

    # Rows created here are marked by times_seen=0 until updated below, in this transaction.
    db = transaction.get_connection()
    insert_rows(
        db,
        Product,
        _COLUMNS,
        [
            (product_id, first.name, first.price, first.seen_at, first.seen_at, first.ticket_id, 0)
            for product_id in ids
            for first in [by_product[product_id][0]]
        ],
        suffix="ON CONFLICT DO NOTHING",
    )
    products = list(
        Product.objects.select_for_update(no_key=True).filter(product_id__in=ids).order_by("pk")
    )

    history: list[tuple[str, Decimal, datetime, UUID]] = []
    for product in products:
        fresh = product.times_seen == 0
        for sighting in by_product[product.pk]:
            newer = (sighting.seen_at, sighting.ticket_id) > (
                product.last_seen_at,
                product.last_ticket_id,
            )
            if fresh or newer:
                if fresh or sighting.price != product.price:
                    history.append(
                        (product.pk, sighting.price, sighting.seen_at, sighting.ticket_id)
                    )
                product.name = sighting.name
                product.price = sighting.price
                product.last_seen_at = sighting.seen_at
                product.last_ticket_id = sighting.ticket_id
                fresh = False
            product.first_seen_at = min(product.first_seen_at, sighting.seen_at)
            product.times_seen += 1

    # Every row exists and is locked by this transaction: one statement updates them all.
    update_rows(db, Product, _COLUMNS, [[getattr(p, c) for c in _COLUMNS] for p in products])
    insert_rows(db, ProductPrice, ("product_id", "price", "effective_at", "ticket_id"), history)
