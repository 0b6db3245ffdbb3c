from typing import Any, cast

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from core.admin import ReadOnlyAdmin, badge
from sales.models import OUTCOME_COLOURS, CheckoutAttempt, Item, Purchase, Sale
from sales.selectors import (
    INVARIANTS,
    ITEM_STATUSES,
    item_holds,
    item_status,
    sale_figures,
    sale_report,
)

STATUS_COLOURS = {"available": "#2e7d32", "reserved": "#ef6c00", "sold": "#757575"}
# What operators read for the names the report and `manage.py sale_report` use.
FIGURE_LABELS = {
    "sold": "sold",
    "reserved": "reserved now",
    "available": "available",
    "buyers": "buyers",
    "max_items_per_buyer": "most items bought by one buyer",
}
INVARIANT_LABELS = {
    "no_oversell": "no item sold twice, none beyond the sale's items",
    "user_limit_respected": "no buyer bought more than the limit",
    "every_sold_item_has_one_purchase": "each sold item bought once, with its buyer's hold",
    "buyer_counts_match_purchases": "each buyer's count equals their purchases",
}


def _changelist(model: str, sale: Sale, label: str, **filters: str) -> SafeString:
    query = "&".join([f"sale__id__exact={sale.pk}", *(f"{k}={v}" for k, v in filters.items())])
    return format_html(
        '<a href="{}?{}">{}</a>', reverse(f"admin:sales_{model}_changelist"), query, label
    )


@admin.register(Sale)
class SaleAdmin(ReadOnlyAdmin):
    list_display = ("id", "starts_at", "opened", "items", "limit", "hold", "figures")
    date_hierarchy = "starts_at"
    fields = ("starts_at", "opened", "items", "limit", "hold", "report", "links")
    readonly_fields = fields

    @admin.display(description="opened", ordering="hour")
    def opened(self, sale: Sale) -> str:
        return "by beat, for its hour" if sale.hour else "by hand"

    @admin.display(description="items", ordering="item_count")
    def items(self, sale: Sale) -> int:
        return sale.item_count

    @admin.display(description="limit per buyer", ordering="user_limit")
    def limit(self, sale: Sale) -> int:
        return sale.user_limit

    @admin.display(description="a reservation lasts", ordering="ttl_seconds")
    def hold(self, sale: Sale) -> str:
        return f"{sale.ttl_seconds} s"

    @admin.display(description="sold / reserved / available")
    def figures(self, sale: Sale) -> str:
        f = sale_figures(sale=sale)
        return f"{f['sold']} / {f['reserved']} / {f['available']}"

    @admin.display(description="figures and invariants")
    def report(self, sale: Sale) -> SafeString:
        report = sale_report(sale=sale)
        sell_through = 100 * cast(int, report["sold"]) / (sale.item_count or 1)
        figures = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            ((label, report[name]) for name, label in FIGURE_LABELS.items()),
        )
        checks = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            (
                (
                    INVARIANT_LABELS[name],
                    badge("holds", "#2e7d32") if report[name] else badge("BROKEN", "#c62828"),
                )
                for name in INVARIANTS
            ),
        )
        percent = f"{sell_through:.1f}"
        return format_html(
            '<div class="bar"><div style="width:{}%"></div></div> {} % sold<table>{}{}</table>',
            percent,
            percent,
            figures,
            checks,
        )

    @admin.display(description="records")
    def links(self, sale: Sale) -> SafeString:
        return format_html(
            "{} · {} · {} · {}",
            _changelist("item", sale, "items"),
            _changelist("item", sale, "reserved items", status="reserved"),
            _changelist("checkoutattempt", sale, "checkout attempts"),
            _changelist("purchase", sale, "purchases"),
        )


@admin.display(description="sale", ordering="sale")
def sale_column(record: Item | CheckoutAttempt | Purchase) -> SafeString | str:
    """A record's sale as a short link: the sale's full name crowds the other columns out."""
    if record.sale_id is None:
        return "-"
    url = reverse("admin:sales_sale_change", args=[record.sale_id])
    return format_html('<a href="{}">#{}</a>', url, record.sale_id)


class ItemStatusFilter(admin.SimpleListFilter):
    title = "status"
    parameter_name = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(status, status) for status in ITEM_STATUSES]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Item]) -> QuerySet[Item]:
        if self.value() in ITEM_STATUSES:
            return queryset.filter(status=self.value())  # type: ignore[misc]
        return queryset


@admin.register(Item)
class ItemAdmin(ReadOnlyAdmin):
    list_display = ("id", "name", sale_column, "item_status", "held_by", "held_until")
    list_filter = (ItemStatusFilter, "sale")
    search_fields = ("name", "=id")

    def get_queryset(self, request: HttpRequest) -> QuerySet[Item]:
        items = super().get_queryset(request)
        return items.annotate(status=item_status(timezone.now()), **item_holds())

    @admin.display(description="status", ordering="status")
    def item_status(self, item: Any) -> SafeString:
        return badge(item.status, STATUS_COLOURS[item.status])

    @admin.display(description="held by")
    def held_by(self, item: Any) -> str:
        return item.held_by if item.status == "reserved" else ""

    @admin.display(description="held until")
    def held_until(self, item: Any) -> Any:
        return item.held_until if item.status == "reserved" else None


class DecidedInFilter(admin.SimpleListFilter):
    title = "decided in"
    parameter_name = "decided_in"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("redis", "Redis"), ("database", "the database")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[CheckoutAttempt]
    ) -> QuerySet[CheckoutAttempt]:
        if self.value() in ("redis", "database"):
            return queryset.filter(via_redis=self.value() == "redis")
        return queryset


@admin.register(CheckoutAttempt)
class CheckoutAttemptAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "created_at",
        "user_id",
        "requested_id",
        "outcome_badge",
        "path",
        sale_column,
    )
    list_filter = ("outcome", DecidedInFilter, "sale")
    search_fields = ("=user_id", "=code", "=requested_id")
    show_full_result_count = False

    @admin.display(description="outcome", ordering="outcome")
    def outcome_badge(self, attempt: CheckoutAttempt) -> SafeString:
        return badge(attempt.outcome, OUTCOME_COLOURS.get(attempt.outcome, "#757575"))

    @admin.display(description="decided in", ordering="via_redis")
    def path(self, attempt: CheckoutAttempt) -> str:
        # Not a yes/no icon: on the embedded default every decision is PostgreSQL's (or
        # SQLite's), and a red cross on every row would read as an error.
        return "Redis" if attempt.via_redis else "database"


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "purchased_at", "user_id", "item", sale_column)
    list_filter = ("sale",)
    search_fields = ("=user_id", "=item__id")
    list_select_related = ("item",)
