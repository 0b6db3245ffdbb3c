"""Tickets acknowledged from the spool through a long outage: does the last ticket cost what the
first did?

Starts a throw-away stack (a PostgreSQL cluster of its own, a redis-server, the web server and a
Celery worker whose drains keep failing and sealing segments, as they would in production),
stops PostgreSQL, then sends distinct tickets, each with an `Idempotency-Key` of its own, so that
every one is checked against the spool before it is appended. Prints the acknowledgement rate of
the first and of the last 2,000 tickets and their ratio.

    python -m loadtests.spool_outage [--requests 14000] [--window 2000] [--concurrency 16]
"""

import argparse
import http.client
import signal
import sys
import threading
import time

from testkit.http import Client, run_threads
from testkit.stack import Stack
from testkit.tickets import TicketFactory


def send(url: str, bodies: list[bytes], concurrency: int) -> tuple[float, list[float], dict]:
    """POSTs every body with its own key; returns the start, each acknowledgement's time (sorted)
    and the answers by status."""
    queue = iter(enumerate(bodies))
    lock = threading.Lock()
    acknowledged: list[float] = []
    statuses: dict[int | str, int] = {}

    def connection(_: int) -> None:
        client = Client(url)
        while True:
            with lock:
                index, body = next(queue, (-1, b""))
            if index < 0:
                return
            status: int | str
            try:
                status = client.post("/ticket", body, {"Idempotency-Key": f"outage-{index}"})[0]
            except (OSError, http.client.HTTPException) as exc:
                status = type(exc).__name__
            with lock:
                statuses[status] = statuses.get(status, 0) + 1
                if status == 202:
                    acknowledged.append(time.perf_counter())

    started = time.perf_counter()
    run_threads(concurrency, connection, timeout=3600)
    return started, sorted(acknowledged), statuses


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=14_000)
    parser.add_argument("--window", type=int, default=2_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--timeout", type=int, default=3600, help="hard stop, in seconds")
    args = parser.parse_args()

    def give_up(*_: object) -> None:
        raise SystemExit("stopped: out of time or interrupted")

    signal.signal(signal.SIGALRM, give_up)
    signal.signal(signal.SIGTERM, give_up)
    signal.alarm(args.timeout)
    bodies = TicketFactory(seed=16).bodies(args.requests)
    with Stack("spool_outage", own_postgres=True) as stack:
        url = stack.start_web(workers=args.web_workers)
        stack.start_worker()
        assert stack.postgres is not None
        stack.postgres.stop("immediate")
        started, acks, statuses = send(url, bodies, args.concurrency)
        print(f"answers {statuses}; spool files {stack.spool_files()}", flush=True)
    if len(acks) != args.requests:
        print("FAIL: not every ticket was acknowledged")
        return 1
    window = args.window
    first = window / (acks[window - 1] - started)
    last = window / (acks[-1] - acks[-window - 1])
    print(
        f"PostgreSQL down, {args.requests:,} keyed tickets over {args.concurrency} connections "
        f"in {acks[-1] - started:.1f} s: tickets 1 to {window:,} at {first:,.0f} acks/s, "
        f"{args.requests - window + 1:,} to {args.requests:,} at {last:,.0f} acks/s "
        f"(ratio {last / first:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
