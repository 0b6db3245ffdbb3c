import re
from typing import Any
from uuid import UUID

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html, format_html_join
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
# The end of an id as the list shows it (`…27eaf1e5`), or any other end of it.
SHORT_ID = re.compile(r"[….]*([0-9a-f-]{4,35})", re.IGNORECASE)


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
    search_help_text = "A ticket's id or its last characters, an order number, a SHA-256."
    date_hierarchy = "received_at"
    fields = (
        "id",
        "status_badge",
        "received_at",
        "parsed_at",
        "order_link",
        "duplicate_of",
        "rejection",
        "anomalies",
        "unknown_headers",
        "idempotency_key",
        "sha256_hex",
        "raw_lines",
    )
    readonly_fields = fields
    actions = ["reprocess"]
    show_full_result_count = False
    change_form_template = "admin/tickets/ticket/change_form.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ticket]:
        # A body can be a megabyte: only the one ticket on its own page loads it.
        return super().get_queryset(request).defer("raw").select_related("order")

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Ticket], search_term: str
    ) -> tuple[QuerySet[Ticket], bool]:
        results, may_duplicate = super().get_search_results(request, queryset, search_term)
        if short := SHORT_ID.fullmatch(search_term.strip()):
            # Not indexed: a scan of the tickets, which an operator's search can afford.
            end = short.group(1).replace("-", "").lower()
            results = results | queryset.filter(id__endswith=end)
        return results, may_duplicate

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
            level = messages.WARNING if status == Ticket.Status.REJECTED else messages.SUCCESS
            self.message_user(request, f"Parsed again: {status}.", level)
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
            return ticket.order_number or "-"
        url = reverse("admin:tickets_order_change", args=[order.pk])
        return format_html('<a href="{}">{}</a>', url, order.number)

    @admin.display(description="rejection reason")
    def reason(self, ticket: Ticket) -> str:
        return ticket.rejection_reason[:80]

    @admin.display(description="SHA-256")
    def sha256_hex(self, ticket: Ticket) -> str:
        return ticket.sha256

    @admin.display(description="rejected at")
    def rejection(self, ticket: Ticket) -> SafeString | str:
        if ticket.rejection_line is None:
            return ticket.rejection_reason or "-"
        return format_html(
            '<a href="#line-{}">line {}</a>: {}',
            ticket.rejection_line,
            ticket.rejection_line,
            ticket.rejection_reason,
        )

    @admin.display(description="raw body")
    def raw_lines(self, ticket: Ticket) -> SafeString:
        """The body line by line, numbered as the parser numbers them (1-based, split on LF,
        a CR before it dropped), the rejected line marked."""
        text = bytes(ticket.raw).decode("utf-8", errors="backslashreplace")
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        rows = format_html_join(
            "",
            '<tr id="line-{}" class="{}"><th>{}</th><td>{}</td></tr>',
            (
                (n, "rejected" if n == ticket.rejection_line else "", n, line)
                for n, line in enumerate(lines, start=1)
            ),
        )
        return format_html('<table class="raw-lines">{}</table>', rows)

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
        level = messages.WARNING if Ticket.Status.REJECTED in outcomes else messages.SUCCESS
        self.message_user(request, f"Reprocessed: {summary}.", level)


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
