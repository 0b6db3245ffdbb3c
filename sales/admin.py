from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from config.admin import ReadOnlyAdmin
from sales.models import CheckoutAttempt, Item, Purchase, Sale
from sales.selectors import ITEM_STATUSES, item_status, sale_figures


@admin.register(Sale)
class SaleAdmin(ReadOnlyAdmin):
    list_display = ("id", "starts_at", "hour", "item_count", "user_limit", "ttl_seconds", "figures")
    date_hierarchy = "starts_at"

    @admin.display(description="sold / reserved / available")
    def figures(self, sale: Sale) -> str:
        f = sale_figures(sale=sale)
        return f"{f['sold']} / {f['reserved']} / {f['available']}"


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
    list_display = ("id", "name", "sale", "item_status")
    list_filter = (ItemStatusFilter, "sale")
    search_fields = ("name", "=id")
    list_select_related = ("sale",)

    def get_queryset(self, request: HttpRequest) -> QuerySet[Item]:
        return super().get_queryset(request).annotate(status=item_status(timezone.now()))

    @admin.display(description="status", ordering="status")
    def item_status(self, item: Any) -> str:
        return str(item.status)


@admin.register(CheckoutAttempt)
class CheckoutAttemptAdmin(ReadOnlyAdmin):
    list_display = ("id", "created_at", "user_id", "requested_id", "outcome", "via_redis", "sale")
    list_filter = ("outcome", "via_redis", "sale")
    search_fields = ("=user_id", "=code", "=requested_id")
    show_full_result_count = False


@admin.register(Purchase)
class PurchaseAdmin(ReadOnlyAdmin):
    list_display = ("id", "purchased_at", "user_id", "item", "sale")
    list_filter = ("sale",)
    search_fields = ("=user_id", "=item__id")
    list_select_related = ("item", "sale")
