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


def _changelist(model: str, sale: Sale, label: str, **filters: str) -> SafeString:
    query = "&".join([f"sale__id__exact={sale.pk}", *(f"{k}={v}" for k, v in filters.items())])
    return format_html(
        '<a href="{}?{}">{}</a>', reverse(f"admin:sales_{model}_changelist"), query, label
    )


@admin.register(Sale)
class SaleAdmin(ReadOnlyAdmin):
    list_display = ("id", "starts_at", "hour", "item_count", "user_limit", "ttl_seconds", "figures")
    date_hierarchy = "starts_at"
    fields = ("starts_at", "hour", "item_count", "user_limit", "ttl_seconds", "report", "links")
    readonly_fields = ("report", "links")

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
            (
                (name, report[name])
                for name in ("sold", "reserved", "available", "buyers", "max_items_per_buyer")
            ),
        )
        checks = format_html_join(
            "",
            "<tr><th>{}</th><td>{}</td></tr>",
            (
                (name, badge("holds", "#2e7d32") if report[name] else badge("BROKEN", "#c62828"))
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
    list_display = ("id", "name", "sale", "item_status", "held_by", "held_until")
    list_filter = (ItemStatusFilter, "sale")
    search_fields = ("name", "=id")
    list_select_related = ("sale",)

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


@admin.register(CheckoutAttempt)
class CheckoutAttemptAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user_id", "requested_id", "outcome_badge", "path", "sale")
    list_filter = ("outcome", "via_redis", "sale")
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
    list_display = ("id", "purchased_at", "user_id", "item", "sale")
    list_filter = ("sale",)
    search_fields = ("=user_id", "=item__id")
    list_select_related = ("item", "sale")
