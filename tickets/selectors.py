"""Reads of the tickets app."""

from datetime import datetime
from uuid import UUID

from django.db.models import Count, Prefetch, Q, QuerySet

from tickets.exceptions import ProductNotFound, TicketNotFound
from tickets.models import OrderLine, Product, Ticket


def ticket_list(*, status: str | None = None, order: str | None = None) -> QuerySet[Ticket]:
    tickets = Ticket.objects.defer("raw")
    if status:
        tickets = tickets.filter(status=status)
    if order:
        tickets = tickets.filter(order_number=order)
    return tickets.order_by("-received_at", "-id")


def ticket_get(*, ticket_id: UUID) -> Ticket:
    ticket = (
        Ticket.objects.select_related("order")
        .prefetch_related(Prefetch("order__lines", queryset=OrderLine.objects.order_by("line")))
        .filter(id=ticket_id)
        .first()
    )
    if ticket is None:
        raise TicketNotFound()
    return ticket


def product_list(*, search: str | None = None) -> QuerySet[Product]:
    products = Product.objects.all()
    if search:
        products = products.filter(Q(product_id__icontains=search) | Q(name__icontains=search))
    return products.order_by("product_id")


def product_get(*, product_id: str) -> Product:
    product = Product.objects.prefetch_related("prices").filter(product_id=product_id).first()
    if product is None:
        raise ProductNotFound()
    return product


def ticket_backlog() -> int:
    """Tickets received and not parsed yet."""
    return Ticket.objects.filter(status=Ticket.Status.RECEIVED).count()


def ticket_figures(*, since: datetime) -> dict[str, int]:
    """The backlog (tickets waiting to be parsed) and what became of the tickets received since
    `since`, by status."""
    by_status = dict(
        Ticket.objects.filter(received_at__gte=since)
        .values("status")
        .annotate(n=Count("*"))
        .values_list("status", "n")
    )
    return {
        "backlog": ticket_backlog(),
        **{status: by_status.get(status, 0) for status in Ticket.Status.values},
    }
