from typing import Any
from uuid import UUID

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from core.admin import ReadOnlyAdmin, badge
from tickets import services
from tickets.exceptions import TicketNotReprocessable
from tickets.models import Order, OrderLine, Product, ProductPrice, Ticket

STATUS_COLOURS: dict[str, str] = {
    Ticket.Status.RECEIVED: "#1565c0",
    Ticket.Status.PARSED: "#2e7d32",
    Ticket.Status.REJECTED: "#c62828",
    Ticket.Status.DUPLICATE: "#757575",
}
REPROCESSABLE = (Ticket.Status.RECEIVED, Ticket.Status.REJECTED)


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdmin):
    list_display = [
        "short_id",
        "status_badge",
        "received_at",
        "order_link",
        "rejection_line",
        "reason",
    ]
    list_filter = ["status"]
    search_fields = ["=id", "=order_number", "=sha256"]
    date_hierarchy = "received_at"
    exclude = ["raw"]
    readonly_fields = ["status_badge", "order_link", "raw_body"]
    actions = ["reprocess"]
    show_full_result_count = False
    change_form_template = "admin/tickets/ticket/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ticket]:
        # A body can be a megabyte: only the one ticket on its own page loads it.
        return super().get_queryset(request).defer("raw").select_related("order")

    def get_urls(self) -> list[URLPattern]:
        reprocess = path(
            "<uuid:ticket_id>/reprocess/",
            self.admin_site.admin_view(require_POST(self.reprocess_one)),
            name="tickets_ticket_reprocess",
        )
        return [reprocess, *super().get_urls()]

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict | None = None,
    ) -> Any:
        ticket = self.get_object(request, object_id)
        context = {
            **(extra_context or {}),
            "reprocessable": ticket is not None and ticket.status in REPROCESSABLE,
        }
        return super().change_view(request, object_id, form_url, context)

    def reprocess_one(self, request: HttpRequest, ticket_id: UUID) -> HttpResponseRedirect:
        ticket = get_object_or_404(Ticket.objects.defer("raw"), id=ticket_id)
        try:
            status = services.ticket_reprocess(ticket_id=ticket.id).status
            self.message_user(request, f"Parsed again: {status}.", messages.INFO)
        except TicketNotReprocessable as exc:
            self.message_user(request, exc.message, messages.WARNING)
        return HttpResponseRedirect(reverse("admin:tickets_ticket_change", args=[ticket.id]))

    @admin.display(description="id", ordering="id")
    def short_id(self, ticket: Ticket) -> SafeString:
        # Version-7 ids begin with the time: the end is what tells two tickets apart.
        return format_html(
            '<span class="mono" title="{}">…{}</span>', ticket.id, ticket.id.hex[-8:]
        )

    @admin.display(description="status", ordering="status")
    def status_badge(self, ticket: Ticket) -> SafeString:
        return badge(ticket.status, STATUS_COLOURS.get(ticket.status, "#757575"))

    @admin.display(description="order", ordering="order_number")
    def order_link(self, ticket: Ticket) -> SafeString | str:
        order = getattr(ticket, "order", None)
        if order is None:
            return ticket.order_number
        url = reverse("admin:tickets_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.number)

    @admin.display(description="rejection reason")
    def reason(self, ticket: Ticket) -> str:
        return ticket.rejection_reason[:80]

    @admin.display(description="raw body")
    def raw_body(self, ticket: Ticket) -> str:
        return format_html(
            "<pre>{}</pre>", bytes(ticket.raw).decode("utf-8", errors="backslashreplace")
        )

    @admin.action(description="Parse the selected tickets again (received or rejected ones)")
    def reprocess(self, request: HttpRequest, queryset: QuerySet[Ticket]) -> None:
        outcomes: dict[str, int] = {}
        for ticket_id in queryset.values_list("id", flat=True):
            try:
                status = services.ticket_reprocess(ticket_id=ticket_id).status
            except TicketNotReprocessable:
                status = "skipped (already counted)"
            outcomes[status] = outcomes.get(status, 0) + 1
        summary = ", ".join(f"{count} {status}" for status, count in sorted(outcomes.items()))
        self.message_user(request, f"Reprocessed: {summary}.", messages.INFO)


class ProductPriceInline(admin.TabularInline):
    model = ProductPrice
    fields = readonly_fields = ("effective_at", "price", "ticket")
    extra = 0
    can_delete = False
    ordering = ["-effective_at"]

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Product)
class ProductAdmin(ReadOnlyAdmin):
    list_display = ["product_id", "name", "price", "times_seen", "last_seen_at"]
    search_fields = ["product_id", "name"]
    inlines = [ProductPriceInline]


class OrderLineInline(admin.TabularInline):
    model = OrderLine
    fields = readonly_fields = ("line", "product", "name", "price")
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = ["number", "ticket", "total", "vat", "received_at"]
    search_fields = ["=number"]
    date_hierarchy = "received_at"
    inlines = [OrderLineInline]
