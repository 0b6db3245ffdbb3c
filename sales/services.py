"""Writes of the sales app: opening sales, checkouts and purchases."""

import logging
import random
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from core.errors import DomainError, refusal_for
from core.process import PerProcess
from core.sql import insert_rows
from sales import stock
from sales.exceptions import (
    CodeExpired,
    CodeNotFound,
    ItemNotFound,
    ItemReserved,
    ItemSold,
    SaleNotStarted,
    UserLimitReached,
)
from sales.metrics import CHECKOUTS, PURCHASES
from sales.models import AdmissionMinute, CheckoutAttempt, Item, Outcome, Purchase, Sale
from sales.stock import ItemInfo

logger = logging.getLogger(__name__)

# What the stock refuses, by outcome, as the error the client is answered with.
_REFUSALS: dict[str, type[DomainError]] = {
    error.code: error
    for error in (ItemSold, ItemReserved, UserLimitReached, CodeNotFound, CodeExpired)
}

_ADJECTIVES = [
    "Amber",
    "Bold",
    "Brisk",
    "Calm",
    "Cosmic",
    "Crimson",
    "Dusky",
    "Electric",
    "Golden",
    "Hidden",
    "Ivory",
    "Jade",
    "Lucky",
    "Lunar",
    "Misty",
    "Noble",
    "Polar",
    "Quiet",
    "Royal",
    "Rustic",
    "Silver",
    "Solar",
    "Swift",
    "Velvet",
    "Wild",
]
_NOUNS = [
    "Backpack",
    "Blender",
    "Camera",
    "Candle",
    "Chair",
    "Drone",
    "Guitar",
    "Headphones",
    "Helmet",
    "Kettle",
    "Lamp",
    "Lantern",
    "Mug",
    "Notebook",
    "Scooter",
    "Sneakers",
    "Speaker",
    "Teapot",
    "Telescope",
    "Umbrella",
    "Wallet",
    "Watch",
]


@dataclass(frozen=True)
class Checkout:
    attempt: CheckoutAttempt
    item: ItemInfo

    @property
    def created(self) -> bool:
        return self.attempt.outcome == Outcome.HELD


@dataclass(frozen=True)
class Sold:
    purchase: Purchase
    item: ItemInfo


def sale_open(
    *,
    hour: datetime | None = None,
    starts_at: datetime | None = None,
    item_count: int | None = None,
    user_limit: int | None = None,
    ttl_seconds: int | None = None,
) -> Sale:
    """Open a sale with freshly generated items. With `hour`, the hourly sale of that hour:
    opening it again, from any process, returns the one already open."""
    if hour is not None:
        existing = Sale.objects.filter(hour=hour).first()
        if existing is not None:
            return existing
    count = item_count or settings.APP_ITEM_NUMBER
    try:
        with transaction.atomic():
            sale = Sale.objects.create(
                hour=hour,
                starts_at=starts_at or hour or timezone.now(),
                item_count=count,
                user_limit=user_limit or settings.APP_USER_LIMIT,
                ttl_seconds=ttl_seconds or settings.CHECKOUT_TTL_SECONDS,
            )
            _insert_items(sale, count)
    except IntegrityError:
        if hour is None:
            raise
        return Sale.objects.get(hour=hour)
    stock.sale_opened(sale_id=sale.pk)
    logger.info("sale opened", extra={"sale_id": sale.pk, "items": count, "hour": str(hour)})
    return sale


def sale_open_hourly(*, now: datetime | None = None) -> Sale:
    """Open the sale of the current hour unless it is open already (idempotent)."""
    now = now or timezone.now()
    return sale_open(hour=now.replace(minute=0, second=0, microsecond=0))


# The hour this process has checked for a missed sale: its sale is open, or no hourly sale has
# run yet (beat or `start_sale` then opens it).
_hour_opened: PerProcess[dict[str, datetime]] = PerProcess(dict)


def sale_open_missed_hour(*, now: datetime | None = None) -> None:
    """Open this hour's sale if hourly sales are running and the scheduler missed this hour.

    Called on reads of the current sale, so the first request of the hour opens it. Before the
    first hourly sale, nothing is opened here: beat or `start_sale` starts the rotation.
    """
    now = now or timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    opened = _hour_opened.get()
    if opened.get("hour") == hour:  # this process saw the hour's sale: no query till the next
        return
    latest = (
        Sale.objects.exclude(hour=None).order_by("-hour").values_list("hour", flat=True).first()
    )
    if latest is not None and latest < hour:
        sale_open(hour=hour)
    # Checked for this hour: an hourly sale opened later this hour is this hour's.
    opened["hour"] = hour


def _insert_items(sale: Sale, count: int) -> None:
    """Generate and insert the sale's items: one statement run for every row, which psycopg
    sends as one pipeline; model instances and a compiled bulk INSERT cost more than the
    database's own work here."""
    rng = random.Random(sale.pk)
    rows = [
        (
            sale.pk,
            f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {n:05d}",
            f"https://picsum.photos/seed/sale{sale.pk}-{n}/400/400",
        )
        for n in range(1, count + 1)
    ]
    with connection.cursor() as cursor:
        cursor.executemany(
            f"INSERT INTO {Item._meta.db_table} (sale_id, name, image_url) VALUES (%s, %s, %s)",  # noqa: S608
            rows,
        )


def checkout_create(*, user_id: str, item_id: int) -> Checkout:
    """Reserve an item for a user for the sale's TTL, or return their live hold on it.

    Every attempt is written before this returns, a failure of this code included (as an
    `error`); a refusal raises once it is written. Only a backing service that is down leaves
    the request unrecorded: it could not take the row.
    """
    try:
        return _checkout(user_id=user_id, item_id=item_id)
    except Exception as failure:
        if refusal_for(failure) is None:
            checkout_refuse(user_id=user_id, requested_id=str(item_id), outcome=Outcome.ERROR)
        raise


def _checkout(*, user_id: str, item_id: int) -> Checkout:
    try:
        item = stock.item_info(item_id)
    except ItemNotFound:
        checkout_refuse(user_id=user_id, requested_id=str(item_id), outcome=Outcome.ITEM_NOT_FOUND)
        raise
    if item.starts_at > timezone.now():
        checkout_refuse(
            user_id=user_id, requested_id=str(item_id), outcome=Outcome.SALE_NOT_STARTED, item=item
        )
        raise SaleNotStarted()
    attempt = stock.checkout(item=item, user_id=user_id)
    CHECKOUTS.labels(attempt.outcome).inc()
    if attempt.outcome in _REFUSALS:
        raise _REFUSALS[attempt.outcome]()
    return Checkout(attempt, item)


def checkout_refuse(
    *, user_id: str, requested_id: str, outcome: str, item: ItemInfo | None = None
) -> CheckoutAttempt:
    """Record a checkout refused before the stock was asked, with the input as sent."""
    CHECKOUTS.labels(outcome).inc()
    return stock.refuse(user_id=user_id, requested_id=requested_id, outcome=outcome, item=item)


def purchase_complete(*, code: str) -> Sold:
    """Turn a live reservation into a purchase. Repeating a purchase that succeeded returns it."""
    result = stock.purchase(code=code)
    PURCHASES.labels(result.outcome).inc()
    if result.purchase is None:
        raise _REFUSALS[result.outcome]()
    return Sold(result.purchase, stock.item_info(result.purchase.item_id))


def admission_minutes_add(rows: list[tuple[datetime, str, int, int]]) -> None:
    """Add a web process's counts of (minute, operation, admitted, turned away) to the table,
    in one statement: the admission tally's sink."""
    table = AdmissionMinute._meta.db_table
    insert_rows(
        connection,
        AdmissionMinute,
        ("minute", "operation", "admitted", "turned_away"),
        rows,
        suffix=f"ON CONFLICT (minute, operation) DO UPDATE SET"
        f" admitted = {table}.admitted + excluded.admitted,"
        f" turned_away = {table}.turned_away + excluded.turned_away",
    )
