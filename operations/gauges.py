"""Gauges derived from the database and the spool, set just before /metrics is scraped.

The sales gauges cover the sales still selling (the current one and every older one with items
left) with a fixed number of queries however many there are. A sale that leaves that set has
sold out: this process sets its gauges to their final values once and stops querying it.
"""

from datetime import datetime

from core.process import PerProcess
from sales import metrics as sales_metrics
from sales.selectors import sales_selling
from tickets import metrics as tickets_metrics
from tickets import spool
from tickets.selectors import ticket_backlog

# Sale id → item count, for the sales whose gauges this process has set and not yet finished.
_shown: PerProcess[dict[int, int]] = PerProcess(dict)


def refresh(*, now: datetime) -> None:
    shown = _shown.get()
    selling = sales_selling(now=now)
    for figures in selling:
        sale = str(figures["id"])
        sales_metrics.SOLD.labels(sale).set(figures["sold"])
        sales_metrics.RESERVED.labels(sale).set(figures["reserved"])
        sales_metrics.AVAILABLE.labels(sale).set(figures["available"])
        shown[figures["id"]] = figures["item_count"]
    if selling:  # the current sale is among them, and started last
        sales_metrics.LATEST_START.set(max(f["starts_at"] for f in selling).timestamp())
    for sale_id in shown.keys() - {figures["id"] for figures in selling}:
        item_count = shown.pop(sale_id)
        sales_metrics.SOLD.labels(str(sale_id)).set(item_count)
        sales_metrics.RESERVED.labels(str(sale_id)).set(0)
        sales_metrics.AVAILABLE.labels(str(sale_id)).set(0)
    tickets_metrics.backlog.set(ticket_backlog())
    tickets_metrics.spool_depth.set(spool.depth())
