"""The sales app's Prometheus metrics. The gauges are set by `operations.gauges` when /metrics is
scraped."""

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
    "Items neither sold nor held, per sale still selling.",
    ["sale"],
    multiprocess_mode="mostrecent",
)
RESERVED = Gauge(
    "sales_reserved_items",
    "Items held by a live reservation, per sale still selling.",
    ["sale"],
    multiprocess_mode="mostrecent",
)
SOLD = Gauge(
    "sales_sold_items",
    "Items sold, per sale still selling.",
    ["sale"],
    multiprocess_mode="mostrecent",
)
LATEST_START = Gauge(
    "sales_latest_start_timestamp_seconds",
    "When the most recent sale started, in Unix seconds: an hour and more ago means the hourly "
    "sale did not open.",
    multiprocess_mode="mostrecent",
)
