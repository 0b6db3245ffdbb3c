"""The operator dashboard's figures: the sales still selling, checkout outcomes per minute over
the last hour, the tickets' backlog, spool and rejections, and the state of the backends.

Everything is read from the database, the spool and the backends themselves when the page asks,
so that what operators see does not depend on which process served them.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from core.admission import gate
from operations.health import broker_status, database_status, redis_status
from sales.models import OUTCOME_COLOURS
from sales.selectors import admission_counts, checkouts_per_minute, sales_selling
from tickets import spool
from tickets.selectors import ticket_figures

WINDOW_MINUTES = 60
CHART_WIDTH, CHART_HEIGHT = 600, 160


@dataclass(frozen=True)
class Series:
    outcome: str
    colour: str
    total: int
    points: str  # an SVG polyline's points


def outcome_chart(*, now: datetime) -> tuple[list[Series], int]:
    """One polyline per outcome seen in the window (attempts per minute, oldest on the left),
    and the largest per-minute count, which is the chart's top."""
    start = now.replace(second=0, microsecond=0) - timedelta(minutes=WINDOW_MINUTES - 1)
    counts: dict[str, list[int]] = {}
    for minute, outcome, n in checkouts_per_minute(since=start):
        slot = int((minute - start).total_seconds() // 60)
        if 0 <= slot < WINDOW_MINUTES:
            counts.setdefault(outcome, [0] * WINDOW_MINUTES)[slot] += n
    top = max((max(values) for values in counts.values()), default=0)
    step = CHART_WIDTH / (WINDOW_MINUTES - 1)
    series = []
    for outcome, colour in OUTCOME_COLOURS.items():
        if outcome not in counts:
            continue
        points = " ".join(
            f"{slot * step:.1f},{CHART_HEIGHT - n * CHART_HEIGHT / top:.1f}"
            for slot, n in enumerate(counts[outcome])
        )
        series.append(Series(outcome, colour, sum(counts[outcome]), points))
    return series, top


def dashboard(*, now: datetime) -> dict[str, object]:
    sales = [
        {**figures, "sell_through": 100 * figures["sold"] / (figures["item_count"] or 1)}
        for figures in sales_selling(now=now)
    ]
    series, top = outcome_chart(now=now)
    tickets = ticket_figures(since=now - timedelta(minutes=WINDOW_MINUTES))
    settled = tickets["parsed"] + tickets["rejected"] + tickets["duplicate"]
    return {
        "now": now,
        "sales": sales,
        "series": series,
        "chart_top": top,
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
