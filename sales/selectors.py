"""Reads. Figures are derived from attempts and purchases: no counter row to keep in step."""

import time
from datetime import datetime
from typing import TypedDict

from django.conf import settings
from django.db.models import (
    Case,
    CharField,
    Count,
    Exists,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    TextChoices,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncMinute
from django.utils import timezone

from core.process import PerProcess
from sales.exceptions import NoSaleYet, SaleNotFound
from sales.models import AdmissionMinute, Buyer, CheckoutAttempt, Item, Outcome, Purchase, Sale


class SaleFigures(TypedDict):
    id: int
    starts_at: datetime
    item_count: int
    user_limit: int
    ttl_seconds: int
    sold: int
    reserved: int
    available: int


class ItemStatus(TextChoices):
    """An item's status, derived from its rows (`item_status`), never stored."""

    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"


ITEM_STATUSES = tuple(ItemStatus.values)


def unexpired_holds(now: datetime) -> QuerySet[CheckoutAttempt]:
    """Holds whose time has not run out, whether or not their item has been bought since."""
    return CheckoutAttempt.objects.filter(outcome=Outcome.HELD, expires_at__gt=now)


def live_holds(now: datetime) -> QuerySet[CheckoutAttempt]:
    """Holds that still count: not expired, on an item nobody has bought."""
    return unexpired_holds(now).filter(item__purchase__isnull=True)


def sale_get(*, sale_id: int) -> Sale:
    sale = Sale.objects.filter(pk=sale_id).first()
    if sale is None:
        raise SaleNotFound()
    return sale


def sale_current(*, now: datetime) -> Sale:
    """The most recently started sale."""
    sale = Sale.objects.filter(starts_at__lte=now).first()
    if sale is None:
        raise NoSaleYet()
    return sale


def sales_open(*, now: datetime) -> QuerySet[Sale]:
    """Started sales with items left to sell: a sale stays open until it is sold out."""
    sold = (
        Purchase.objects.filter(sale=OuterRef("pk"))
        .values("sale")
        .annotate(n=Count("*"))
        .values("n")
    )
    return (
        Sale.objects.filter(starts_at__lte=now)
        .annotate(sold=Coalesce(Subquery(sold), 0))
        .filter(sold__lt=F("item_count"))
    )


def sale_figures(*, sale: Sale) -> SaleFigures:
    return _figures([sale], now=timezone.now())[0]


# The sales pages' figures by sale id (None: the current sale), with when they go stale.
_pages: PerProcess[dict[int | None, tuple[float, SaleFigures]]] = PerProcess(dict)


def sale_page(*, sale_id: int | None) -> SaleFigures:
    """The figures a sale's public page shows (`None`: the current sale), as this process read
    them at most `SALE_PAGE_SECONDS` ago: a rush reads them far more often than a second's
    change matters to a reader, and each read counts the sale's purchases and holds."""
    pages = _pages.get()
    cached = pages.get(sale_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    now = timezone.now()
    sale = sale_current(now=now) if sale_id is None else sale_get(sale_id=sale_id)
    figures = _figures([sale], now=now)[0]
    pages[sale_id] = (time.monotonic() + settings.SALE_PAGE_SECONDS, figures)
    return figures


def _sold() -> Exists:
    return Exists(Purchase.objects.filter(item=OuterRef("pk")))


def _held(now: datetime) -> Exists:
    """An unexpired hold on the item. A bought item keeps its hold, so this means reserved only
    where the item is not sold: after `_sold()`, or with `~_sold()`."""
    return Exists(unexpired_holds(now).filter(item=OuterRef("pk")))


def item_status(now: datetime) -> Case:
    """An item's status, derived: sold if bought, reserved if a live hold exists, else available."""
    return Case(
        When(_sold(), then=Value(ItemStatus.SOLD)),
        When(_held(now), then=Value(ItemStatus.RESERVED)),
        default=Value(ItemStatus.AVAILABLE),
        output_field=CharField(),
    )


def sale_items(*, sale: Sale, status: str | None = None) -> QuerySet[Item]:
    """The sale's items with their `status`, optionally only those with one status. The filter
    is written on the conditions themselves, not on the status, so that PostgreSQL can answer
    it with anti-joins instead of working out every item's status."""
    now = timezone.now()
    items = Item.objects.filter(sale=sale).annotate(status=item_status(now))
    if status == ItemStatus.SOLD:
        return items.filter(_sold())
    if status == ItemStatus.RESERVED:
        return items.filter(~_sold(), _held(now))
    if status == ItemStatus.AVAILABLE:
        return items.filter(~_sold(), ~_held(now))
    return items


INVARIANTS = (
    "no_oversell",
    "user_limit_respected",
    "every_sold_item_has_one_purchase",
    "buyer_counts_match_purchases",
)


def admission_counts(
    *, since: datetime, until: datetime | None = None
) -> dict[str, dict[str, int]]:
    """Per operation, the requests admitted and turned away busy in the minutes from `since`
    (to `until`), as the web processes have flushed them (every few seconds)."""
    rows = AdmissionMinute.objects.filter(minute__gte=since.replace(second=0, microsecond=0))
    if until is not None:
        rows = rows.filter(minute__lt=until)
    totals = rows.values("operation").annotate(a=Sum("admitted"), t=Sum("turned_away"))
    return {
        row["operation"]: {"admitted": row["a"], "turned_away": row["t"]}
        for row in totals.order_by("operation")
    }


def sale_report(*, sale: Sale) -> dict[str, object]:
    """The sale's figures and a check of each invariant, computed from the rows themselves.
    `admission` is the demand admitted and turned away while it was the current sale (busy
    answers name no sale)."""
    figures = sale_figures(sale=sale)
    purchases = Purchase.objects.filter(sale=sale)
    per_buyer = purchases.values("user_id").annotate(n=Count("*")).order_by("-n")
    items_sold_twice = purchases.values("item_id").annotate(n=Count("*")).filter(n__gt=1)
    mismatched = purchases.exclude(
        attempt__item_id=F("item_id"),
        attempt__user_id=F("user_id"),
        attempt__outcome=Outcome.HELD,
        item__sale_id=sale.pk,
    )
    by_outcome = CheckoutAttempt.objects.filter(sale=sale).values("outcome").annotate(n=Count("*"))
    # A purchase is one transaction: its row and its buyer's count are both there, or neither.
    bought = {row["user_id"]: row["n"] for row in per_buyer}
    counters = Buyer.objects.filter(sale=sale).values_list("user_id", "purchased")
    max_per_buyer = per_buyer[0]["n"] if per_buyer else 0
    return {
        **figures,
        "buyers": per_buyer.count(),
        "max_items_per_buyer": max_per_buyer,
        "attempts_by_outcome": {row["outcome"]: row["n"] for row in by_outcome},
        "purchases": purchases.count(),
        "admission": admission_counts(
            since=sale.starts_at,
            until=Sale.objects.filter(starts_at__gt=sale.starts_at)
            .order_by("starts_at")
            .values_list("starts_at", flat=True)
            .first(),
        ),
        "no_oversell": figures["sold"] <= sale.item_count and not items_sold_twice.exists(),
        "user_limit_respected": max_per_buyer <= sale.user_limit,
        "every_sold_item_has_one_purchase": not items_sold_twice.exists()
        and not mismatched.exists(),
        "buyer_counts_match_purchases": all(bought.get(u, 0) == n for u, n in counters)
        and set(bought) <= {u for u, _ in counters},
    }


def sales_selling(*, now: datetime) -> list[SaleFigures]:
    """The current sale and every other started sale with items left, newest first, with their
    figures: a fixed number of queries however many sales are still selling."""
    sales = list(sales_open(now=now))
    current = Sale.objects.filter(starts_at__lte=now).first()
    if current is not None and current not in sales:
        sales.insert(0, current)
    return _figures(sales, now=now)


def _figures(sales: list[Sale], *, now: datetime) -> list[SaleFigures]:
    """Each sale's figures, in two queries however many sales there are."""
    ids = [sale.pk for sale in sales]
    sold = dict(
        Purchase.objects.filter(sale_id__in=ids)
        .values("sale_id")
        .annotate(n=Count("*"))
        .values_list("sale_id", "n")
    )
    reserved = dict(
        live_holds(now)
        .filter(sale_id__in=ids)
        .values("sale_id")
        .annotate(n=Count("item_id", distinct=True))
        .values_list("sale_id", "n")
    )
    return [
        {
            "id": sale.pk,
            "starts_at": sale.starts_at,
            "item_count": sale.item_count,
            "user_limit": sale.user_limit,
            "ttl_seconds": sale.ttl_seconds,
            "sold": sold.get(sale.pk, 0),
            "reserved": reserved.get(sale.pk, 0),
            "available": sale.item_count - sold.get(sale.pk, 0) - reserved.get(sale.pk, 0),
        }
        for sale in sales
    ]


def checkouts_per_minute(*, since: datetime) -> list[tuple[datetime, str, int]]:
    """(minute, outcome, attempts) for the attempts made since `since`, oldest minute first."""
    rows = (
        CheckoutAttempt.objects.filter(created_at__gte=since)
        .annotate(minute=TruncMinute("created_at"))
        .values("minute", "outcome")
        .annotate(n=Count("*"))
        .order_by("minute")
    )
    return [(row["minute"], row["outcome"], row["n"]) for row in rows]


def purchases_per_minute(*, since: datetime) -> list[tuple[datetime, int]]:
    """(minute, purchases) for the purchases made since `since`, oldest minute first."""
    rows = (
        Purchase.objects.filter(purchased_at__gte=since)
        .annotate(minute=TruncMinute("purchased_at"))
        .values("minute")
        .annotate(n=Count("*"))
        .order_by("minute")
    )
    return [(row["minute"], row["n"]) for row in rows]


def item_holds() -> dict[str, Subquery]:
    """Annotations naming the holder of an item's live hold and when it ends (None if none)."""
    hold = unexpired_holds(timezone.now()).filter(item=OuterRef("pk")).order_by("-expires_at")
    return {
        "held_by": Subquery(hold.values("user_id")[:1]),
        "held_until": Subquery(hold.values("expires_at")[:1]),
    }
