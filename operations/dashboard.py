"""The operator dashboard's figures: the sales still selling, checkout outcomes and purchases per
minute over the last hour's activity, the tickets' backlog, spool and rejections, and the state
of the backends.

Everything is read from the database, the spool and the backends themselves when the page asks,
so that what operators see does not depend on which process served them.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.admission import gate
from operations.health import broker_status, database_status, redis_status
from sales import stock
from sales.models import OUTCOME_COLOURS
from sales.selectors import (
    admission_counts,
    checkouts_per_minute,
    purchases_per_minute,
    sales_selling,
)
from tickets import spool
from tickets.selectors import ticket_figures

WINDOW_MINUTES = 60
# The chart spans the window's activity, at least this long: a rush of two minutes fills it
# instead of the last pixels of an hour.
MIN_SPAN_MINUTES = 5
CHART_WIDTH, CHART_HEIGHT = 600, 160
PURCHASES, PURCHASES_COLOUR = "purchased", "#283593"


@dataclass(frozen=True)
class Series:
    name: str  # a checkout outcome, or PURCHASES
    colour: str
    total: int
    points: str  # an SVG polyline's points


@dataclass(frozen=True)
class Chart:
    series: list[Series]
    top: int  # the largest count in a minute: the chart's top
    minutes: int  # how many minutes back the left edge is


def outcome_chart(*, now: datetime) -> Chart:
    """Checkout attempts per minute, one polyline per outcome seen, and purchases per minute
    beside them, from the window's first active minute (or MIN_SPAN_MINUTES ago) to now."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=WINDOW_MINUTES - 1)
    counts: dict[str, dict[int, int]] = {}
    rows = [
        *checkouts_per_minute(since=start),
        *((minute, PURCHASES, n) for minute, n in purchases_per_minute(since=start)),
    ]
    for minute, name, n in rows:
        slot = int((minute - start).total_seconds() // 60)
        if 0 <= slot < WINDOW_MINUTES:
            per_slot = counts.setdefault(name, {})
            per_slot[slot] = per_slot.get(slot, 0) + n
    first = min((min(slots) for slots in counts.values()), default=WINDOW_MINUTES)
    first = min(first, WINDOW_MINUTES - MIN_SPAN_MINUTES)
    span = WINDOW_MINUTES - first
    top = max((max(slots.values()) for slots in counts.values()), default=0)
    step = CHART_WIDTH / (span - 1)
    series = []
    for name, colour in [*OUTCOME_COLOURS.items(), (PURCHASES, PURCHASES_COLOUR)]:
        if name not in counts:
            continue
        heights = (
            counts[name].get(slot, 0) * CHART_HEIGHT / top for slot in range(first, WINDOW_MINUTES)
        )
        points = " ".join(f"{x * step:.1f},{CHART_HEIGHT - h:.1f}" for x, h in enumerate(heights))
        series.append(Series(name, colour, sum(counts[name].values()), points))
    return Chart(series, top, span - 1)


def dashboard(*, now: datetime) -> dict[str, object]:
    sales = [
        {
            **figures,
            "sell_through": 100 * figures["sold"] / (figures["item_count"] or 1),
            "redis_agreed": stock.last_agreed(sale_id=figures["id"]),
        }
        for figures in sales_selling(now=now)
    ]
    chart = outcome_chart(now=now)
    tickets = ticket_figures(since=now - timedelta(minutes=WINDOW_MINUTES))
    settled = tickets["parsed"] + tickets["rejected"] + tickets["duplicate"]
    return {
        "now": now,
        "sales": sales,
        "chart": chart,
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "tickets": tickets,
        "rejection_rate": 100 * tickets["rejected"] / settled if settled else None,
        "spool_depth": spool.depth(),
        # Admitted and turned away across every process (as flushed); the limit is the one of
        # the process that answered, each process keeping its own.
        "admission": admission_counts(since=now - timedelta(minutes=WINDOW_MINUTES)),
        "admission_limit": int(gate().limit.limit),
        "backends": {
            "database": database_status(),
            "redis": redis_status(),
            "broker": broker_status(),
        },
    }
