"""Ticket bursts against a throw-away stack: the "done when" of the tickets webhook.

Starts its own PostgreSQL cluster (initdb into a temporary directory, on a spare port), the web
server and one Celery worker, all on 127.0.0.1, then runs three bursts:

1. 20,000 copies of the sample ticket from 64 connections: zero errors, 20,000 stored tickets,
   1 parsed and 19,999 duplicates;
2. 20,000 distinct generated tickets (some malformed) from 64 connections: every acknowledged
   ticket stored, parsed or rejected once the worker catches up, and the catalogue equal to what
   the parsed tickets say (recomputed here from their raw bytes);
3. the same kind of burst with PostgreSQL stopped for 5 seconds in the middle: every
   acknowledged ticket in the database once it is back (through the spool).

Scaled out (--cluster, --pgbouncer, --rabbitmq: a Redis Cluster, PgBouncer in transaction mode
in front of the PostgreSQL, RabbitMQ as the broker), it runs two hosts instead, each a web
server and a Celery worker with a spool directory of their own, plus beat, and spreads the
bursts over both hosts.

Everything it starts it stops, also on failure or Ctrl-C; it stops by itself after
`--timeout` seconds.

    python -m loadtests.tickets_burst [--requests 20000] [--concurrency 64]
        [--cluster] [--pgbouncer] [--rabbitmq]
"""

import argparse
import os
import signal
import sys
import time
from typing import Any

from testkit.engines import scaled_out, start_hosts
from testkit.http import post_tickets
from testkit.stack import Stack
from testkit.tickets import SAMPLE, TicketFactory
from tickets.parsing import ParsedTicket, parse_ticket  # pure: needs no Django


def say(message: str) -> None:
    print(message, flush=True)


def reset(stack: Stack) -> None:
    stack.query(
        "TRUNCATE tickets_orderline, tickets_order, tickets_productprice, tickets_product,"
        " tickets_ticket"
    )


def catalogue_check(stack: Stack) -> dict[str, int]:
    """Recompute the catalogue from the parsed tickets' raw bytes and compare it with the one
    the workers built: newest ticket (received time, id) sets name and price."""
    expected: dict[str, list[Any]] = {}
    rows = stack.query(
        "SELECT received_at, raw FROM tickets_ticket WHERE status = 'parsed'"
        " ORDER BY received_at, id"
    )
    for received_at, raw in rows:
        result = parse_ticket(bytes(raw))
        assert isinstance(result, ParsedTicket)
        last = {line.product_id: line for line in result.lines}
        for product_id, line in last.items():
            state = expected.setdefault(product_id, [None, None, received_at, None, 0])
            state[0], state[1], state[3] = line.name, line.price, received_at
            state[4] += 1
    actual = {
        product_id: [name, price, first, last, seen]
        for product_id, name, price, first, last, seen in stack.query(
            "SELECT product_id, name, price, first_seen_at, last_seen_at, times_seen"
            " FROM tickets_product"
        )
    }
    mismatched = sum(
        1 for key in expected.keys() | actual.keys() if expected.get(key) != actual.get(key)
    )
    return {"products": len(actual), "mismatched": mismatched}


# -- scenarios -------------------------------------------------------------------------------


def scenario_sample(stack: Stack, urls: list[str], args: argparse.Namespace) -> bool:
    say(f"\n== 1. {args.requests} copies of the sample ticket, {args.concurrency} connections")
    traffic = post_tickets(urls, [SAMPLE] * args.requests, args.concurrency)
    say(f"acks/s {traffic['rate']:,.0f}, p50 {traffic['p50_ms']:.1f} ms, "
        f"p99 {traffic['p99_ms']:.1f} ms, answers {traffic['statuses']}")  # fmt: skip
    result = stack.tickets_settled(args.requests, args.settle_timeout)
    counts = result["counts"]
    say(f"stored {sum(counts.values())}: {counts}; {describe_catch_up(result)}")
    return traffic["statuses"] == {202: args.requests} and counts == {
        "parsed": 1,
        "duplicate": args.requests - 1,
    }


def describe_catch_up(result: dict[str, Any]) -> str:
    if result["worker_rate"] is None:
        return "nothing parsed"
    busy = f"worker rate {result['worker_rate']:,.0f} tickets/s (first to last parse)"
    if not result["rate"]:
        return f"no backlog at the end of the burst; {busy}"
    return (
        f"backlog of {result['backlog']} at the end of the burst worked off in "
        f"{result['catch_up_seconds']:.1f} s ({result['rate']:,.0f} tickets/s); {busy}"
    )


def scenario_distinct(
    stack: Stack, urls: list[str], args: argparse.Namespace, *, outage: bool
) -> bool:
    title = "with PostgreSQL stopped for 5 s mid-burst" if outage else "no fault"
    say(f"\n== {3 if outage else 2}. {args.requests} distinct generated tickets, {title}")
    bodies = TicketFactory(seed=3 if outage else 2).bodies(args.requests)
    expected_rejections = sum(
        1 for body in bodies if not isinstance(parse_ticket(body), ParsedTicket)
    )
    outage_window: list[float] = []

    def fault() -> None:
        time.sleep(args.outage_after)
        outage_window.append(time.monotonic())
        assert stack.postgres is not None
        stack.postgres.stop("immediate")
        time.sleep(5)
        stack.postgres.start()
        outage_window.append(time.monotonic())

    if not outage:
        say("the workers are paused during this burst, to measure how fast they work off a backlog")
        for worker in workers(stack):
            stack.signal_group(worker, signal.SIGSTOP)
    traffic = post_tickets(urls, bodies, args.concurrency, during=fault if outage else None)
    if not outage:
        for worker in workers(stack):
            stack.signal_group(worker, signal.SIGCONT)
    acknowledged = traffic["acknowledged"]
    say(f"acks/s {traffic['rate']:,.0f}, p50 {traffic['p50_ms']:.1f} ms, "
        f"p99 {traffic['p99_ms']:.1f} ms, answers {traffic['statuses']}")  # fmt: skip
    if outage:
        say(f"PostgreSQL was down for {outage_window[1] - outage_window[0]:.1f} s "
            f"(stopped {args.outage_after:.1f} s into the burst)")  # fmt: skip
    result = stack.tickets_settled(len(acknowledged), args.settle_timeout)
    counts = result["counts"]
    stored = {str(row[0]) for row in stack.query("SELECT id FROM tickets_ticket")}
    missing = set(acknowledged) - stored
    catalogue = catalogue_check(stack)
    say(f"stored {len(stored)} of {len(acknowledged)} acknowledged, missing {len(missing)}; "
        f"statuses {counts}; expected rejections {expected_rejections}; "
        f"spool files left {stack.spool_files()}")  # fmt: skip
    say(f"{describe_catch_up(result)}; catalogue {catalogue['products']} "
        f"products, {catalogue['mismatched']} differing from the recomputed one")  # fmt: skip
    return (
        len(acknowledged) == len(bodies)
        and not missing
        and len(stored) == len(acknowledged)
        and counts.get("rejected", 0) == expected_rejections
        and counts.get("parsed", 0) == len(bodies) - expected_rejections
        and catalogue["mismatched"] == 0
        and result["settled"]
    )


def workers(stack: Stack) -> list[str]:
    return [name for name in stack.processes if name.startswith("worker")]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--outage-after", type=float, default=2.0, help="seconds into burst 3")
    parser.add_argument("--settle-timeout", type=float, default=180)
    parser.add_argument("--timeout", type=int, default=1200, help="hard stop, in seconds")
    parser.add_argument("--cluster", action="store_true", help="a Redis Cluster")
    parser.add_argument("--pgbouncer", action="store_true", help="PgBouncer before PostgreSQL")
    parser.add_argument("--rabbitmq", action="store_true", help="RabbitMQ as the broker")
    args = parser.parse_args()
    scaled = args.cluster or args.pgbouncer or args.rabbitmq

    def give_up(*_: object) -> None:
        raise SystemExit("stopped: out of time or interrupted")

    signal.signal(signal.SIGALRM, give_up)
    signal.signal(signal.SIGTERM, give_up)
    signal.alarm(args.timeout)
    with scaled_out(
        "tickets_burst",
        cluster=args.cluster,
        pgbouncer=args.pgbouncer,
        rabbitmq=args.rabbitmq,
        own_postgres=True,
        # A burst that outlasts a nudge's expiry (60 s) with the workers paused is swept up.
        extra_env={"TICKETS_SWEEP_SECONDS": "10"} if scaled else None,
    ) as (stack, _):
        if scaled:
            urls = start_hosts(stack, 2, web_workers=args.web_workers)
            stack.start_beat()  # one per deployment
        else:
            urls = [stack.start_web(workers=args.web_workers)]
            stack.start_worker()
        engines = [name for name in ("cluster", "pgbouncer", "rabbitmq") if getattr(args, name)]
        say(f"stack: PostgreSQL of its own, {', '.join(engines) or 'one redis-server'}; "
            f"{len(urls)} x (web server with {args.web_workers} workers, 1 Celery worker), "
            f"{os.cpu_count()} CPUs")  # fmt: skip
        outcomes = {"sample": scenario_sample(stack, urls, args)}
        reset(stack)
        outcomes["distinct"] = scenario_distinct(stack, urls, args, outage=False)
        reset(stack)
        outcomes["outage"] = scenario_distinct(stack, urls, args, outage=True)
    say("\n" + ", ".join(f"{name}: {'PASS' if ok else 'FAIL'}" for name, ok in outcomes.items()))
    return 0 if all(outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
