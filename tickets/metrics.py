"""The tickets app's Prometheus metrics.

Under gunicorn every process writes to `PROMETHEUS_MULTIPROC_DIR` and `/metrics` adds them up; a
Celery worker's figures (parse durations) appear there when it runs with the same directory.
The backlog and spool depth are also set by `operations.gauges` from the database and the spool on
each scrape.
"""

from prometheus_client import Counter, Gauge, Histogram

tickets = Counter("tickets", "Tickets by the first status they reached.", ["status"])
reprocessed = Counter(
    "tickets_reprocessed", "Tickets parsed again by hand, by their new status.", ["status"]
)
spooled = Counter("tickets_spooled", "Tickets acknowledged from the local spool.")
spool_depth = Gauge(
    "tickets_spool_depth",
    "Tickets waiting in the local spool.",
    multiprocess_mode="mostrecent",
)
backlog = Gauge(
    "tickets_backlog",
    "Tickets received and not parsed yet.",
    multiprocess_mode="mostrecent",
)
parse_seconds = Histogram(
    "tickets_parse_batch_seconds",
    "Time to parse a claimed batch and store its orders and catalogue updates.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
