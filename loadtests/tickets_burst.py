"""Ticket bursts against a throw-away stack: the "done when" of the tickets webhook.

Starts its own PostgreSQL cluster (initdb into a temporary directory, on a spare port), the web
server and one Celery worker, all on 127.0.0.1, then runs three bursts:

1. `hey -n 20000 -c 64` posting the sample ticket: zero errors, 20,000 stored tickets, 1 parsed
   and 19,999 duplicates;
2. 20,000 distinct generated tickets (some malformed) from 64 connections: every acknowledged
   ticket stored, parsed or rejected once the worker catches up, and the catalogue equal to what
   the parsed tickets say (recomputed here from their raw bytes);
3. the same kind of burst with PostgreSQL stopped for 5 seconds in the middle: every
   acknowledged ticket in the database once it is back (through the spool).

Everything it starts it stops, also on failure or Ctrl-C; it stops by itself after
`--timeout` seconds.

    python loadtests/tickets_burst.py [--requests 20000] [--concurrency 64]
"""

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from testkit.stack import Stack  # noqa: E402
from tickets.parsing import ParsedTicket, parse_ticket  # noqa: E402 (pure: needs no Django)

SAMPLE = (
    b"Order: 123456\nVAT: 3.10\nTotal: 16.90\n\n"
    b"product,product_id,price\nFormule(s) midi,aZde,14.90\nCaf\xc3\xa9,IZ8z,2\n"
)


def say(message: str) -> None:
    print(message, flush=True)


def spool_files(stack: Stack) -> int:
    spool = stack.workdir / "spool"
    return len([*spool.glob("*.seg"), *spool.glob("*.sealed")]) if spool.exists() else 0


def reset(stack: Stack) -> None:
    stack.query(
        "TRUNCATE tickets_orderline, tickets_order, tickets_productprice, tickets_product,"
        " tickets_ticket"
    )


def wait_until_settled(stack: Stack, expected: int, timeout: float) -> dict[str, Any]:
    """Poll until `expected` tickets are stored, none is left `received` and the spool is
    empty; returns the status counts and how fast the backlog left at the end of the burst
    was worked off."""
    started = time.monotonic()
    backlog = None
    while True:
        counts = dict(stack.query("SELECT status, count(*) FROM tickets_ticket GROUP BY 1"))
        backlog = counts.get("received", 0) if backlog is None else backlog
        settled = (
            sum(counts.values()) >= expected
            and not counts.get("received")
            and not spool_files(stack)
        )
        if settled or time.monotonic() - started > timeout:
            break
        time.sleep(0.2)
    elapsed = time.monotonic() - started
    ((parsed, span),) = stack.query(
        "SELECT count(*), extract(epoch FROM max(parsed_at) - min(parsed_at))"
        " FROM tickets_ticket WHERE parsed_at IS NOT NULL"
    )
    return {
        "worker_rate": parsed / float(span) if span else None,
        "counts": counts,
        "settled": settled,
        "backlog": backlog,
        "catch_up_seconds": elapsed,
        "rate": backlog / elapsed if backlog and elapsed > 0.2 else None,
    }


# -- traffic ---------------------------------------------------------------------------------


async def post_all(url: str, bodies: list[bytes], concurrency: int, *, during: Any = None) -> dict:
    """POST every body to /ticket over `concurrency` keep-alive connections."""
    host, port = url.removeprefix("http://").split(":")
    queue: asyncio.Queue[tuple[int, bytes]] = asyncio.Queue()
    for item in enumerate(bodies):
        queue.put_nowait(item)
    statuses: Counter[int | str] = Counter()
    latencies: list[float] = []
    acknowledged: dict[str, int] = {}

    async def connection() -> None:
        reader = writer = None
        while not queue.empty():
            index, body = queue.get_nowait()
            started = time.perf_counter()
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, int(port))
                assert reader is not None
                writer.write(
                    b"POST /ticket HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: text/plain\r\n"
                    b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
                )
                status = int((await reader.readline()).split()[1])
                length, close = 0, False
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode().partition(":")
                    length = int(value) if name.lower() == "content-length" else length
                    close = close or (name.lower() == "connection" and "close" in value.lower())
                answer = json.loads(await reader.readexactly(length))
            except (OSError, ValueError, IndexError, asyncio.IncompleteReadError) as exc:
                statuses[type(exc).__name__] += 1
                writer = None
                continue
            latencies.append(time.perf_counter() - started)
            statuses[status] += 1
            if status == 202:
                acknowledged[answer["id"]] = index
            if close:
                writer = None

    started = time.perf_counter()
    tasks = [asyncio.create_task(connection()) for _ in range(concurrency)]
    if during is not None:
        tasks.append(asyncio.create_task(during()))
    await asyncio.gather(*tasks)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "statuses": dict(statuses),
        "acknowledged": acknowledged,
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


def generated_tickets(count: int, seed: int, malformed_share: float = 0.05) -> list[bytes]:
    """Distinct tickets over an overlapping catalogue; a share of them malformed in various ways."""
    rng = random.Random(seed)
    products = [f"S{seed}P{n:03d}" for n in range(400)]
    defects = [
        lambda t: t.rstrip(b"\n").rsplit(b",", 1)[0] + b",12,50\n",
        lambda t: t.replace(b"VAT:", b"VAT "),
        lambda t: t.replace("\u00e9".encode(), b"\xe9"),
        lambda t: t.split(b"\n\n")[0],
        lambda t: t.replace(b"v1,", b"v1,,").replace(b"v2,", b"v2,,"),
    ]
    tickets = []
    for n in range(count):
        lines = []
        for product in rng.sample(products, rng.randint(1, 6)):
            price = Decimal(rng.randint(50, 2000)) / 100
            lines.append(f"Caf\u00e9 {product} v{rng.randint(1, 3)},{product},{price}")
        total = sum(Decimal(line.rsplit(",", 1)[1]) for line in lines)
        body = f"Order: {seed}{n:07d}\nVAT: 1.00\nTotal: {total}\n\nproduct,product_id,price\n"
        ticket = (body + "\n".join(lines) + "\n").encode()
        if rng.random() < malformed_share:
            ticket = rng.choice(defects)(ticket)
        tickets.append(ticket)
    return tickets


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


def scenario_hey(stack: Stack, url: str, args: argparse.Namespace) -> bool:
    say(f"\n== 1. hey: {args.requests} copies of the sample ticket, {args.concurrency} connections")
    sample = stack.workdir / "sample.txt"
    sample.write_bytes(SAMPLE)
    hey = shutil.which("hey")
    if hey is None:
        say("hey is not installed (apt-get install -y hey)")
        return False
    output = subprocess.run(
        [hey, "-n", str(args.requests), "-c", str(args.concurrency), "-m", "POST",
         "-T", "text/plain", "-D", str(sample), f"{url}/ticket"],
        capture_output=True, text=True, check=True, timeout=600,
    ).stdout  # fmt: skip
    rate = re.search(r"Requests/sec:\s+([\d.]+)", output)
    p99 = re.search(r"99%+ in ([\d.]+) secs", output)
    codes = dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", output))
    errors = re.search(r"Error distribution:(.*)", output, re.S)
    say(f"acks/s {rate[1] if rate else '?'}, p99 {float(p99[1]) * 1000 if p99 else '?'} ms, "
        f"status codes {codes}, errors {errors[1].strip() if errors else 'none'}")  # fmt: skip
    sent = args.requests // args.concurrency * args.concurrency  # hey's rounding
    result = wait_until_settled(stack, sent, args.settle_timeout)
    counts = result["counts"]
    say(f"hey sent {sent}; stored {sum(counts.values())}: {counts}; {describe_catch_up(result)}")
    return (
        codes == {"202": str(sent)}
        and errors is None
        and counts == {"parsed": 1, "duplicate": sent - 1}
    )


def describe_catch_up(result: dict[str, Any]) -> str:
    busy = f"worker rate {result['worker_rate']:,.0f} tickets/s (first to last parse)"
    if not result["rate"]:
        return f"no backlog at the end of the burst; {busy}"
    return (
        f"backlog of {result['backlog']} at the end of the burst worked off in "
        f"{result['catch_up_seconds']:.1f} s ({result['rate']:,.0f} tickets/s); {busy}"
    )


def scenario_distinct(stack: Stack, url: str, args: argparse.Namespace, *, outage: bool) -> bool:
    title = "with PostgreSQL stopped for 5 s mid-burst" if outage else "no fault"
    say(f"\n== {3 if outage else 2}. {args.requests} distinct generated tickets, {title}")
    bodies = generated_tickets(args.requests, seed=3 if outage else 2)
    expected_rejections = sum(
        1 for body in bodies if not isinstance(parse_ticket(body), ParsedTicket)
    )
    outage_window: list[float] = []

    async def fault() -> None:
        await asyncio.sleep(args.outage_after)
        outage_window.append(time.monotonic())
        assert stack.cluster is not None
        await asyncio.to_thread(stack.cluster.stop, "immediate")
        await asyncio.sleep(5)
        await asyncio.to_thread(stack.cluster.start)
        outage_window.append(time.monotonic())

    if not outage:
        say("the worker is paused during this burst, to measure how fast it works off a backlog")
        stack.signal_group("worker", signal.SIGSTOP)
    traffic = asyncio.run(post_all(url, bodies, args.concurrency, during=fault if outage else None))
    if not outage:
        stack.signal_group("worker", signal.SIGCONT)
    acknowledged = traffic["acknowledged"]
    say(f"acks/s {traffic['rate']:,.0f}, p50 {traffic['p50_ms']:.1f} ms, "
        f"p99 {traffic['p99_ms']:.1f} ms, answers {traffic['statuses']}")  # fmt: skip
    if outage:
        say(f"PostgreSQL was down for {outage_window[1] - outage_window[0]:.1f} s "
            f"(stopped {args.outage_after:.1f} s into the burst)")  # fmt: skip
    result = wait_until_settled(stack, len(acknowledged), args.settle_timeout)
    counts = result["counts"]
    stored = {str(row[0]) for row in stack.query("SELECT id FROM tickets_ticket")}
    missing = set(acknowledged) - stored
    catalogue = catalogue_check(stack)
    say(f"stored {len(stored)} of {len(acknowledged)} acknowledged, missing {len(missing)}; "
        f"statuses {counts}; expected rejections {expected_rejections}; "
        f"spool files left {spool_files(stack)}")  # fmt: skip
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--outage-after", type=float, default=2.0, help="seconds into burst 3")
    parser.add_argument("--settle-timeout", type=float, default=180)
    parser.add_argument("--timeout", type=int, default=1200, help="hard stop, in seconds")
    args = parser.parse_args()

    def give_up(*_: object) -> None:
        raise SystemExit("stopped: out of time or interrupted")

    signal.signal(signal.SIGALRM, give_up)
    signal.signal(signal.SIGTERM, give_up)
    signal.alarm(args.timeout)
    with Stack("tickets_burst", own_postgres=True) as stack:
        url = stack.start_web(workers=args.web_workers)
        stack.start_worker()
        say(f"stack: PostgreSQL of its own, web server {url} ({args.web_workers} workers), "
            f"1 Celery worker, {os.cpu_count()} CPUs")  # fmt: skip
        outcomes = {"hey": scenario_hey(stack, url, args)}
        reset(stack)
        outcomes["distinct"] = scenario_distinct(stack, url, args, outage=False)
        reset(stack)
        outcomes["outage"] = scenario_distinct(stack, url, args, outage=True)
    say("\n" + ", ".join(f"{name}: {'PASS' if ok else 'FAIL'}" for name, ok in outcomes.items()))
    return 0 if all(outcomes.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
