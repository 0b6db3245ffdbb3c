"""The measures beside the wrk cells: opening a sale, and one worker through a backlog."""

import json
import statistics
import subprocess
import time
from typing import Any

import psycopg

from loadtests.bench import say
from loadtests.bench.config import Config
from loadtests.bench.wrk import Load, run_wrk
from testkit.stack import Stack
from testkit.tickets import TicketFactory

_SALE_OPEN = """
import json, time, django
django.setup()
from sales.services import sale_open
seconds = []
for _ in range({runs}):
    started = time.perf_counter()
    sale_open(item_count={items})
    seconds.append(time.perf_counter() - started)
print(json.dumps(seconds))
"""

_RECEIVED = "SELECT count(*) FROM tickets_ticket WHERE status = 'received'"


def count(db: psycopg.Connection, sql: str, *params: Any) -> int:
    row = db.execute(sql, params).fetchone()
    return int(row[0]) if row and row[0] is not None else 0  # max() of no rows is NULL


def time_sale_open(stack: Stack, runs: int, items: int = 10_000) -> dict[str, Any]:
    """Several sales opened one after another in one process: the first pays for warming up."""
    result = subprocess.run(
        [stack.python, "-c", _SALE_OPEN.format(runs=runs, items=items)],
        cwd=stack.root,
        env={**stack.env, "DJANGO_SETTINGS_MODULE": "config.settings"},
        capture_output=True,
        text=True,
        check=True,
        timeout=300,
    )
    seconds = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        "items": items,
        "runs_s": [round(s, 3) for s in seconds],
        "min_s": round(min(seconds), 3),
        "median_s": round(statistics.median(seconds), 3),
    }


def measure_backlog(
    stack: Stack, db: psycopg.Connection, urls: list[str], config: Config
) -> dict[str, Any]:
    """Ingest N distinct tickets with no worker running, then time one worker through them."""
    ingest_rps, ingest_errors = _ingest_backlog(stack, db, urls, config.backlog)
    stored = count(db, _RECEIVED)
    # The ingest nudged the parser; enqueue one run per worker process as well, so that the
    # start doesn't depend on when those nudges were due.
    enqueue = "from tickets.tasks import parse_backlog\n"
    enqueue += f"for _ in range({config.worker_concurrency}): parse_backlog.delay()"
    stack.manage("shell", "-c", enqueue)
    say(f"backlog: {stored} received; starting one worker")
    drain = _time_drain(stack, db, stored, config.worker_concurrency)
    return {
        "tickets": stored,
        "ingest_rps": ingest_rps,
        "ingest_errors": ingest_errors,
        "worker_processes": config.worker_concurrency,
        **drain,
        "statuses": dict(db.execute("SELECT status, count(*) FROM tickets_ticket GROUP BY 1")),
    }


def _ingest_backlog(
    stack: Stack, db: psycopg.Connection, urls: list[str], tickets: int
) -> tuple[float, int]:
    """Exactly `tickets` fresh tickets, stored `received` through the webhook: its rate and
    errors."""
    # The ingest cells' tickets are a by-product. Requests the server had queued when wrk
    # stopped are still landing: wait for them first.
    settled = -1
    while settled != (settled := count(db, "SELECT count(*) FROM tickets_ticket")):
        time.sleep(1)
    db.execute("TRUNCATE tickets_ticket CASCADE")
    factory = TicketFactory(seed=20_000)
    bodies = [factory.make().body for _ in range(tickets)]
    say(f"backlog: ingesting {tickets} distinct tickets, no worker running")
    seen = [0]

    def ingested() -> bool:
        # Done when all are in, or (should one go missing) when the count has stopped moving.
        seen.append(count(db, "SELECT count(*) FROM tickets_ticket"))
        return seen[-1] >= tickets or (seen[-1] > 0 and len(set(seen[-20:])) == 1)

    load = Load("ticket", 64, 600, stack.workdir, once=True)
    cell = run_wrk(urls, load, bodies, until=ingested)
    return cell.rps, cell.errors


def _time_drain(
    stack: Stack, db: psycopg.Connection, stored: int, concurrency: int
) -> dict[str, Any]:
    """Start the worker and poll until no ticket is left `received` (300 s at most)."""
    started = time.monotonic()
    stack.start_worker("worker", concurrency=concurrency)
    first = first_left = None
    left = stored
    deadline = started + 300
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = count(db, _RECEIVED)
        if first is None and left < stored:
            first, first_left = time.monotonic(), left
    ended = time.monotonic()
    overall = (stored - left) / (ended - started)
    # From the first batch seen done to the last: the sustained rate, without the worker's boot.
    sustained = overall
    if first is not None and first_left is not None and ended - first > 1:
        sustained = (first_left - left) / (ended - first)
    return {
        "drained": left == 0,
        "seconds_from_worker_start": round(ended - started, 1),
        "parse_rate_per_s": round(sustained),
        "overall_rate_per_s": round(overall),
    }
