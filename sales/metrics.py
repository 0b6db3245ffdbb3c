"""The sales app's Prometheus metrics. Gauges are refreshed when /metrics is scraped."""

from django.utils import timezone
from prometheus_client import Counter, Gauge

CHECKOUTS = Counter("sales_checkout_total", "Checkout attempts by outcome.", ["outcome"])
PURCHASES = Counter("sales_purchase_total", "Purchase requests by outcome.", ["outcome"])
REDIS_FALLBACKS = Counter(
    "sales_redis_fallback_total",
    "Decisions taken in PostgreSQL because Redis failed, was skipped or was being rebuilt.",
    ["reason"],
)
AVAILABLE = Gauge(
    "sales_available_items",
    "Items neither sold nor held, per open sale.",
    ["sale"],
    multiprocess_mode="mostrecent",
)


def refresh() -> None:
    """Set the available-items gauge of every sale that still has items to sell."""
    from sales.selectors import sale_figures, sales_open

    for sale in sales_open(now=timezone.now()):
        AVAILABLE.labels(str(sale.pk)).set(sale_figures(sale=sale)["available"])
