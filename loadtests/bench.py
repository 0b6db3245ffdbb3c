"""`make bench`: throughput and latency of the service on this machine, measured with wrk.

Starts a throw-away stack (`loadtests/stack.py`: a PostgreSQL database and a redis-server of its
own, gunicorn, one Celery worker), then measures:

- checkout, purchase, ticket ingest and health, each at 64 and 256 connections: requests/s,
  p50/p90/p99 and errors. Checkouts are first-time holds (a distinct buyer and a distinct item
  per request; a 409 is an expected refusal, counted apart). Purchases spend the codes those
  checkouts returned, each once, so they are real first-time purchases; the table says how many
  were (counted in the database), in case a cell outran its codes and repeated some;
- the time to open a 10,000-item sale (`sales.services.sale_open`, in a subprocess);
- the backlog parse rate of one worker: with the worker stopped, N distinct tickets are
  ingested, then one worker starts and the clock runs until none is `received`.

Writes `loadtests/results/bench.json` and `bench.md`, prints the table, and stops everything it
started. Everything comes from one address, so the stack turns the rate limits off.

Environment (defaults): BENCH_DURATION (10s per cell), BENCH_CONNECTIONS (64,256),
BENCH_WEB_WORKERS (2), BENCH_WEB_THREADS (4), BENCH_INSTANCES (1; 2 splits wrk's connections
across two gunicorn instances and adds up), BENCH_SERVER (gunicorn; see SERVERS),
BENCH_WORKER_CONCURRENCY (1), BENCH_BACKLOG (20000), BENCH_SALE_ITEMS (40000),
BENCH_SALE_OPEN_RUNS (5), BENCH_TIMEOUT (900 s for the whole run).
"""

import bisect
import contextlib
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
# The locustfile's ticket generator is reused; locust must not monkey-patch this process.
os.environ.setdefault("LOCUST_SKIP_MONKEY_PATCH", "1")

from loadtests.locustfile import TicketFactory  # noqa: E402
from testkit.stack import PYTHON, Stack  # noqa: E402

RESULTS = ROOT / "loadtests" / "results"
LUA = ROOT / "loadtests" / "wrk" / "bench.lua"
RECORD_SEPARATOR = b"\x1e"  # between tickets in a data file: tickets span several lines
# Refusals the spec promises for well-formed requests: reported apart, not as errors.
EXPECTED_REFUSALS = {"checkout": {409}, "purchase": set(), "ticket": set(), "health": set()}


def say(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class Config:
    duration: int = 10
    connections: tuple[int, ...] = (64, 256)
    web_workers: int = 2
    web_threads: int = 4
    instances: int = 1
    server: str = "gunicorn"
    worker_concurrency: int = 1
    backlog: int = 20_000
    sale_items: int = 40_000
    sale_open_runs: int = 5
    timeout: int = 900

    @classmethod
    def from_env(cls) -> "Config":
        env = os.environ.get
        return cls(
            duration=int(env("BENCH_DURATION", "10").removesuffix("s")),
            connections=tuple(int(c) for c in env("BENCH_CONNECTIONS", "64,256").split(",")),
            web_workers=int(env("BENCH_WEB_WORKERS", "2")),
            web_threads=int(env("BENCH_WEB_THREADS", "4")),
            instances=int(env("BENCH_INSTANCES", "1")),
            server=env("BENCH_SERVER", "gunicorn"),
            worker_concurrency=int(env("BENCH_WORKER_CONCURRENCY", "1")),
            backlog=int(env("BENCH_BACKLOG", "20000")),
            sale_items=int(env("BENCH_SALE_ITEMS", "40000")),
            sale_open_runs=int(env("BENCH_SALE_OPEN_RUNS", "5")),
            timeout=int(env("BENCH_TIMEOUT", "900")),
        )


# -- servers --------------------------------------------------------------------------------


def server_starter(server: str) -> Callable[[Stack, Config], str]:
    def start(stack: Stack, config: Config) -> str:
        return stack.start_web(
            workers=config.web_workers, threads=config.web_threads, server=server
        )

    return start


# A function per server that starts one instance on a spare port of 127.0.0.1 under the stack
# (so that the stack stops it) and returns its base URL.
SERVERS: dict[str, Callable[[Stack, Config], str]] = {
    name: server_starter(name) for name in ("gunicorn", "granian")
}


# -- wrk ------------------------------------------------------------------------------------


@dataclass
class Cell:
    endpoint: str
    connections: int
    requests: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)
    ok: int = 0
    expected_refusals: int = 0
    errors: int = 0
    socket_errors: dict[str, int] = field(default_factory=dict)
    samples: list[str] = field(default_factory=list)  # a few answers of each 4xx/5xx status
    note: str = ""


def write_records(path: Path, records: list[bytes], separator: bytes = b"\n") -> Path:
    path.write_bytes(separator.join(records) + separator)
    return path


def run_wrk(
    urls: list[str],
    endpoint: str,
    connections: int,
    seconds: int,
    workdir: Path,
    records: list[bytes] | None = None,
    *,
    codes_out: Path | None = None,
    once: bool = False,
    until: Callable[[], bool] | None = None,
) -> Cell:
    """One wrk per web instance, connections and records split between them, results added up.

    With `until`, wrk is interrupted as soon as it returns true (checked four times a second).
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise SystemExit("wrk is not installed (Debian: apt-get install -y wrk)")
    threads = max(1, (os.cpu_count() or 2) // len(urls))
    separator = RECORD_SEPARATOR if endpoint == "ticket" else b"\n"
    processes, outputs = [], []
    try:
        for n, url in enumerate(urls):
            env = {
                **os.environ,
                "WRK_ENDPOINT": endpoint,
                "WRK_THREADS": str(threads),
                "WRK_PREFIX": f"{endpoint}-{connections}-{n}-{time.monotonic_ns()}",
                "WRK_ONCE": "1" if once else "0",
            }
            if records is not None:
                part = workdir / f"{endpoint}-{n}.data"
                env["WRK_DATA"] = str(write_records(part, records[n :: len(urls)], separator))
            if codes_out is not None:
                env["WRK_CODES_OUT"] = str(codes_out.with_suffix(f".{n}"))
            env["WRK_SAMPLES_OUT"] = str(workdir / f"samples.{n}")
            args = [wrk, f"-t{threads}", f"-c{max(threads, connections // len(urls))}"]
            args += [f"-d{seconds}s", "--timeout", "10s", "-s", str(LUA), url]
            processes.append(
                subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
            )
        if until is not None:
            while any(p.poll() is None for p in processes) and not until():
                time.sleep(0.25)
            for process in processes:
                with contextlib.suppress(ProcessLookupError):
                    process.send_signal(signal.SIGINT)
        for process in processes:
            stdout, stderr = process.communicate(timeout=seconds + 60)
            line = next(
                (ln for ln in stdout.decode().splitlines() if ln.startswith("WRK_JSON")), ""
            )
            if not line:
                raise RuntimeError(f"wrk printed no result:\n{stdout.decode()}{stderr.decode()}")
            outputs.append(json.loads(line.removeprefix("WRK_JSON ")))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    if codes_out is not None:
        parts = [codes_out.with_suffix(f".{n}") for n in range(len(urls))]
        codes_out.write_text("".join(p.read_text() for p in parts if p.exists()))
    cell = merge(endpoint, connections, outputs)
    for n in range(len(urls)):
        with contextlib.suppress(FileNotFoundError):
            cell.samples += (workdir / f"samples.{n}").read_text().splitlines()
    return cell


def merge(endpoint: str, connections: int, outputs: list[dict[str, Any]]) -> Cell:
    """Adds the runs up. Percentiles can't be added: with two runs the worse of each is kept."""
    cell = Cell(endpoint, connections)
    statuses: dict[str, int] = {}
    for out in outputs:
        for status, count in out["statuses"].items():
            statuses[status] = statuses.get(status, 0) + count
        for kind, count in out["socket_errors"].items():
            cell.socket_errors[kind] = cell.socket_errors.get(kind, 0) + count
        cell.requests += out["requests"]
        cell.rps += out["requests"] / (out["duration_us"] / 1e6)
        cell.seconds = max(cell.seconds, round(out["duration_us"] / 1e6, 1))
    for name in ("p50", "p90", "p99", "max"):
        worst = max(out["latency_us"][name] for out in outputs)
        setattr(cell, f"{name}_ms", round(worst / 1000, 1))
    cell.rps = round(cell.rps, 1)
    cell.statuses = dict(sorted(statuses.items()))
    expected = EXPECTED_REFUSALS[endpoint]
    for status, count in statuses.items():
        if 200 <= int(status) < 400:
            cell.ok += count
        elif int(status) in expected:
            cell.expected_refusals += count
        else:
            cell.errors += count
    # Timeouts are requests without an answer; connect/read/write errors break connections.
    cell.errors += sum(cell.socket_errors.values())
    return cell


# -- the measurements -----------------------------------------------------------------------

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


def time_sale_open(stack: Stack, runs: int, items: int = 10_000) -> dict[str, Any]:
    """Several sales opened one after another in one process: the first pays for warming up."""
    result = subprocess.run(
        [PYTHON, "-c", _SALE_OPEN.format(runs=runs, items=items)],
        cwd=ROOT,
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


def count(db: psycopg.Connection, sql: str, *params: Any) -> int:
    row = db.execute(sql, params).fetchone()
    return int(row[0]) if row else 0


def measure_backlog(
    stack: Stack, db: psycopg.Connection, urls: list[str], config: Config
) -> dict[str, Any]:
    """Ingest N distinct tickets with no worker running, then time one worker through them."""
    # The ingest cells' tickets are a by-product: the backlog is exactly N fresh ones. Requests
    # the server had queued when wrk stopped are still landing: wait for them first.
    settled = -1
    while settled != (settled := count(db, "SELECT count(*) FROM tickets_ticket")):
        time.sleep(1)
    db.execute("TRUNCATE tickets_ticket CASCADE")
    factory = TicketFactory(seed=20_000)
    tickets = [factory.make().body for _ in range(config.backlog)]
    say(f"backlog: ingesting {config.backlog} distinct tickets, no worker running")
    seen = [0]

    def ingested() -> bool:
        # Done when all are in, or (should one go missing) when the count has stopped moving.
        seen.append(count(db, "SELECT count(*) FROM tickets_ticket"))
        return seen[-1] >= config.backlog or (seen[-1] > 0 and len(set(seen[-20:])) == 1)

    ingest = run_wrk(urls, "ticket", 64, 600, stack.workdir, tickets, once=True, until=ingested)
    stored = count(db, "SELECT count(*) FROM tickets_ticket WHERE status = 'received'")

    # The ingest nudged the parser; enqueue one run per worker process as well, so that the
    # start doesn't depend on when those nudges were due.
    enqueue = "from tickets.tasks import parse_backlog\n"
    enqueue += f"for _ in range({config.worker_concurrency}): parse_backlog.delay()"
    stack.manage("shell", "-c", enqueue)
    say(f"backlog: {stored} received; starting one worker")
    started = time.monotonic()
    stack.start_worker("worker", concurrency=config.worker_concurrency)
    first = first_left = None
    left = stored
    deadline = started + 300
    while left and time.monotonic() < deadline:
        time.sleep(0.2)
        left = count(db, "SELECT count(*) FROM tickets_ticket WHERE status = 'received'")
        if first is None and left < stored:
            first, first_left = time.monotonic(), left
    ended = time.monotonic()
    statuses = dict(db.execute("SELECT status, count(*) FROM tickets_ticket GROUP BY status"))
    overall = (stored - left) / (ended - started)
    # From the first batch seen done to the last: the sustained rate, without the worker's boot.
    sustained = overall
    if first is not None and first_left is not None and ended - first > 1:
        sustained = (first_left - left) / (ended - first)
    return {
        "tickets": stored,
        "ingest_rps": ingest.rps,
        "ingest_errors": ingest.errors,
        "worker_processes": config.worker_concurrency,
        "drained": left == 0,
        "seconds_from_worker_start": round(ended - started, 1),
        "parse_rate_per_s": round(sustained),
        "overall_rate_per_s": round(overall),
        "statuses": statuses,
    }


# -- the run --------------------------------------------------------------------------------


def bench(config: Config) -> dict[str, Any]:
    if config.server not in SERVERS:
        raise SystemExit(f"BENCH_SERVER={config.server!r}: one of {', '.join(SERVERS)}")
    started = time.monotonic()
    load_before = os.getloadavg()
    with Stack("flashsale_bench") as stack:
        urls = [SERVERS[config.server](stack, config) for _ in range(config.instances)]
        say(f"stack up: {', '.join(urls)}; timing sale_open")
        sale_open = time_sale_open(stack, config.sale_open_runs)
        sale = stack.manage_json(
            "start_sale", "--items", str(config.sale_items), "--user-limit", "10", "--ttl", "3600"
        )
        db = psycopg.connect(stack.db_url, autocommit=True)
        item_ids = [
            row[0]
            for row in db.execute(
                "SELECT id FROM sales_item WHERE sale_id = %s ORDER BY id", (sale["id"],)
            )
        ]
        items = [str(pk).encode() for pk in item_ids]
        factory = TicketFactory(seed=1)
        tickets = [factory.make().body for _ in range(30_000)]
        cells: list[Cell] = []

        def measure(endpoint: str, conns: int, records: list[bytes] | None, **kw: Any) -> Cell:
            say(f"{endpoint} at {conns} connections for {config.duration}s")
            cell = run_wrk(urls, endpoint, conns, config.duration, stack.workdir, records, **kw)
            say(f"  {cell.rps} req/s, p99 {cell.p99_ms} ms, statuses {cell.statuses}")
            for sample in cell.samples[:3]:
                say(f"  e.g. {sample}")
            return cell

        for conns in config.connections:
            cells.append(measure("health", conns, None))

        # Checkouts: each cell starts on items no earlier cell has tried.
        codes: list[bytes] = []
        next_item = 0
        codes_file = stack.workdir / "codes"
        for conns in [*config.connections, 0]:
            # The last pass (0) is not measured: it only makes codes for the purchase cells.
            cell = measure("checkout", conns or 64, items[next_item:], codes_out=codes_file)
            # wrk's threads advance unevenly through their share: the next cell starts past
            # the furthest item tried, not after as many items as there were requests.
            furthest = count(
                db, "SELECT max(item_id) FROM sales_checkoutattempt WHERE sale_id = %s", sale["id"]
            )
            next_item = bisect.bisect_right(item_ids, furthest)
            codes += codes_file.read_bytes().split()
            cell.note = f"{cell.statuses.get('201', 0)} new holds"
            if conns:
                cells.append(cell)

        # Purchases: the codes split between the cells; a code is spent once per cell.
        share = len(codes) // len(config.connections)
        for n, conns in enumerate(config.connections):
            before = count(db, "SELECT count(*) FROM sales_purchase")
            cell = measure("purchase", conns, codes[n * share : (n + 1) * share])
            first_time = count(db, "SELECT count(*) FROM sales_purchase") - before
            cell.note = f"{first_time} first-time purchases of {share} codes"
            if first_time < cell.ok:
                cell.note += f", {cell.ok - first_time} repeats (200, idempotent)"
            cells.append(cell)

        for conns in config.connections:
            cell = measure("ticket", conns, tickets)
            cell.note = f"{len(tickets)} distinct tickets, reused when exhausted"
            cells.append(cell)

        backlog = measure_backlog(stack, db, urls, config)
        db.close()
    return {
        "config": asdict(config),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "cells": [asdict(cell) for cell in cells],
        "sale_open": sale_open,
        "backlog": backlog,
        "seconds": round(time.monotonic() - started),
    }


def markdown(result: dict[str, Any]) -> str:
    config, machine = result["config"], result["machine"]
    lines = [
        f"wrk, {config['duration']} s per cell; {config['instances']} x {config['server']} "
        f"({config['web_workers']} workers x {config['web_threads']} threads), "
        f"{machine['cpus']} CPUs, load average {machine['load_average_before'][0]} before, "
        f"{machine['load_average_after'][0]} after",
        "",
        "| endpoint | conns | req/s | p50 ms | p90 ms | p99 ms | 2xx | expected 409 | errors "
        "| notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for c in result["cells"]:
        refusals = c["expected_refusals"] if c["endpoint"] == "checkout" else "-"
        lines.append(
            f"| {c['endpoint']} | {c['connections']} | {c['rps']:,.0f} | {c['p50_ms']} "
            f"| {c['p90_ms']} | {c['p99_ms']} | {c['ok']:,} | {refusals} | {c['errors']} "
            f"| {c['note']} |"
        )
    opening, backlog = result["sale_open"], result["backlog"]
    lines += [
        "",
        f"Opening a {opening['items']:,}-item sale: min {opening['min_s']} s, median "
        f"{opening['median_s']} s over {len(opening['runs_s'])} runs ({opening['runs_s']}).",
        "",
        f"Backlog: {backlog['tickets']:,} tickets parsed by one worker "
        f"({backlog['worker_processes']} process) at {backlog['parse_rate_per_s']:,} tickets/s "
        f"sustained; {backlog['seconds_from_worker_start']} s from the worker's start "
        f"({backlog['overall_rate_per_s']:,}/s overall); outcome {backlog['statuses']}"
        + ("" if backlog["drained"] else " — NOT DRAINED within 300 s"),
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    config = Config.from_env()
    # The whole run is bounded: past the deadline, the stack is torn down and we exit.
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("bench: out of time"))
    signal.alarm(config.timeout)
    result = bench(config)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / "bench.md").write_text(table)
    say("\n" + table)
    say(f"written: {RESULTS / 'bench.json'}, {RESULTS / 'bench.md'} ({result['seconds']} s)")
    errors = sum(cell["errors"] for cell in result["cells"])
    if errors:
        say(
            f"WARNING: {errors} unexpected answers or socket errors; see the statuses in bench.json"
        )
    return 0 if result["backlog"]["drained"] else 1


if __name__ == "__main__":
    sys.exit(main())
