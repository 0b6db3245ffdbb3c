from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html

from config.admin import ReadOnlyAdmin
from tickets import services
from tickets.exceptions import TicketNotReprocessable
from tickets.models import Order, OrderLine, Product, ProductPrice, Ticket


@admin.register(Ticket)
class TicketAdmin(ReadOnlyAdmin):
    list_display = ["id", "status", "received_at", "order_number", "rejection_line", "reason"]
    list_filter = ["status"]
    search_fields = ["=id", "=order_number", "=sha256"]
    date_hierarchy = "received_at"
    exclude = ["raw"]
    readonly_fields = ["raw_body"]
    actions = ["reprocess"]
    show_full_result_count = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ticket]:
        # A body can be a megabyte: only the one ticket on its own page loads it.
        return super().get_queryset(request).defer("raw")

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
