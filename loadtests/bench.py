"""`make bench`: throughput and latency of the service on this machine, measured with wrk.

Starts a throw-away stack (`testkit/stack.py`: a PostgreSQL database and a redis-server of its
own, the web server `make serve` runs, one Celery worker), then measures:

- `/ping` (the framework floor: the server, Django and its middleware, no database), health,
  checkout, purchase and ticket ingest, each at 64 and 256 connections: requests/s,
  p50/p90/p99 and errors, and each endpoint's rate as a fraction of `/ping` at the same
  connections. Checkouts are first-time holds (a distinct buyer and a distinct item per
  request; a 409 is an expected refusal, counted apart). Purchases spend the codes those
  checkouts returned, each once, so they are real first-time purchases; the table says how many
  were (counted in the database), in case a cell outran its codes and repeated some;
- the time to open a 10,000-item sale (`sales.services.sale_open`, in a subprocess);
- the backlog parse rate of one worker: with the worker stopped, N distinct tickets are
  ingested, then one worker starts and the clock runs until none is `received`.

A/B: with BENCH_BASELINE=<git ref>, a second stack serves that commit's code from a git worktree
(with this checkout's virtualenv when both pin the same requirements, else a virtualenv of its
own), and every cell runs against both stacks one after the other, the order alternating from
cell to cell, so that both sides see the same machine; the table gives the ratio per cell.
Both sides run the same server, `config/serve.py` of this checkout for granian. With
BENCH_BASELINE_SERVER=gunicorn (and no BENCH_BASELINE), the same code under the other server.

Writes `loadtests/results/bench.json` and `bench.md`, prints the table, and stops everything it
started. Everything comes from one address, so the stacks turn the rate limits off.

Environment (defaults): BENCH_DURATION (10s per cell), BENCH_CONNECTIONS (64,256; 64 in A/B),
BENCH_WEB_WORKERS (2), BENCH_WEB_THREADS (16), BENCH_INSTANCES (1; 2 splits wrk's connections
across two web servers and adds up), BENCH_SERVER (granian, or gunicorn), BENCH_BASELINE (none),
BENCH_BASELINE_SERVER (BENCH_SERVER), BENCH_WORKER_CONCURRENCY (1), BENCH_BACKLOG (20000),
BENCH_SALE_ITEMS (40000), BENCH_SALE_OPEN_RUNS (5), BENCH_TIMEOUT (1200 s for the whole run).
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
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
from testkit.stack import PYTHON, Stack  # noqa: E402
from testkit.tickets import TicketFactory  # noqa: E402

RESULTS = ROOT / "loadtests" / "results"
LUA = ROOT / "loadtests" / "wrk" / "bench.lua"
RECORD_SEPARATOR = b"\x1e"  # between tickets in a data file: tickets span several lines
# Refusals the spec promises for well-formed requests: reported apart, not as errors.
EXPECTED_REFUSALS = {"checkout": {409}}
SERVERS = ("granian", "gunicorn")


def say(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class Config:
    duration: int = 10
    connections: tuple[int, ...] = (64, 256)
    web_workers: int = 2
    web_threads: int = 16
    instances: int = 1
    server: str = "granian"
    baseline: str = ""
    baseline_server: str = ""
    worker_concurrency: int = 1
    backlog: int = 20_000
    sale_items: int = 40_000
    sale_open_runs: int = 5
    timeout: int = 1200

    @classmethod
    def from_env(cls) -> "Config":
        env = os.environ.get
        server = env("BENCH_SERVER", "granian")
        config = cls(
            duration=int(env("BENCH_DURATION", "10").removesuffix("s")),
            web_workers=int(env("BENCH_WEB_WORKERS", "2")),
            web_threads=int(env("BENCH_WEB_THREADS", "16")),
            instances=int(env("BENCH_INSTANCES", "1")),
            server=server,
            baseline=env("BENCH_BASELINE", ""),
            baseline_server=env("BENCH_BASELINE_SERVER", server),
            worker_concurrency=int(env("BENCH_WORKER_CONCURRENCY", "1")),
            backlog=int(env("BENCH_BACKLOG", "20000")),
            sale_items=int(env("BENCH_SALE_ITEMS", "40000")),
            sale_open_runs=int(env("BENCH_SALE_OPEN_RUNS", "5")),
            timeout=int(env("BENCH_TIMEOUT", "1200")),
        )
        for name in ("BENCH_SERVER", "BENCH_BASELINE_SERVER"):
            if env(name, server) not in SERVERS:
                raise SystemExit(f"{name}={env(name)!r}: one of {', '.join(SERVERS)}")
        # An A/B run measures every cell twice: at 64 connections only, where the targets are,
        # it still ends within 10 minutes on a busy machine.
        connections = env("BENCH_CONNECTIONS", "64" if config.ab else "64,256")
        return replace(config, connections=tuple(int(c) for c in connections.split(",")))

    @property
    def ab(self) -> bool:
        return bool(self.baseline) or self.baseline_server != self.server


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
    expected = EXPECTED_REFUSALS.get(endpoint, set())
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
    statuses: dict[str, int] = dict(
        db.execute("SELECT status, count(*) FROM tickets_ticket GROUP BY status")
    )
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


# -- the sides of a run ---------------------------------------------------------------------


def git(*args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
    ).stdout.strip()


@contextlib.contextmanager
def checkout_of(ref: str) -> Iterator[tuple[Path, str]]:
    """The code tree of `ref` (a detached git worktree, removed afterwards) and the Python to
    run it with. Without a ref, this checkout."""
    if not ref:
        yield ROOT, PYTHON
        return
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    tree = Path(tempfile.mkdtemp(prefix="bench-baseline-"))
    git("worktree", "add", "--detach", str(tree), commit)
    try:
        # Both sides run the same server: this checkout's launcher.
        shutil.copy2(ROOT / "config" / "serve.py", tree / "config" / "serve.py")
        python = PYTHON
        requirements = "requirements.txt"
        if (tree / requirements).read_bytes() != (ROOT / requirements).read_bytes():
            say(f"{ref} pins other requirements: building a virtualenv for it")
            subprocess.run([PYTHON, "-m", "venv", str(tree / ".venv")], check=True)
            python = str(tree / ".venv" / "bin" / "python")
            pip = [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
            subprocess.run([*pip, "-r", str(tree / requirements)], check=True)
        yield tree, python
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(tree, ignore_errors=True)
        git("worktree", "prune")


@dataclass
class Side:
    """One stack under measurement, and what its cells have used up so far."""

    label: str
    server: str
    stack: Stack
    urls: list[str] = field(default_factory=list)
    item_ids: list[int] = field(default_factory=list)
    next_item: int = 0
    codes: list[bytes] = field(default_factory=list)
    purchase_cells: int = 0
    cells: list[Cell] = field(default_factory=list)
    sale_open: dict[str, Any] = field(default_factory=dict)
    backlog: dict[str, Any] = field(default_factory=dict)
    sale_id: int = 0

    def prepare(self, config: Config) -> None:
        self.urls = [
            self.stack.start_web(
                workers=config.web_workers, threads=config.web_threads, server=self.server
            )
            for _ in range(config.instances)
        ]
        say(f"{self.label}: {self.server} on {', '.join(self.urls)}; timing sale_open")
        self.sale_open = time_sale_open(self.stack, config.sale_open_runs)
        sale = self.stack.manage_json(
            "start_sale", "--items", str(config.sale_items), "--user-limit", "10", "--ttl", "3600"
        )
        self.sale_id = sale["id"]
        rows = self.stack.query(
            "SELECT id FROM sales_item WHERE sale_id = %s ORDER BY id", [self.sale_id]
        )
        self.item_ids = [row[0] for row in rows]

    def measure(
        self, endpoint: str, conns: int, config: Config, tickets: list[bytes]
    ) -> Cell | None:
        """One cell. Checkout at 0 connections is the unmeasured pass (at 64) that only makes
        codes for the purchase cells."""
        say(f"{self.label}: {endpoint} at {conns or 64} connections for {config.duration}s")

        def run(records: list[bytes] | None, **kw: Any) -> Cell:
            return run_wrk(
                self.urls, endpoint, conns or 64, config.duration, self.stack.workdir, records, **kw
            )

        with psycopg.connect(self.stack.db_url, autocommit=True) as db:
            if endpoint == "checkout":
                # Each cell starts on items no earlier cell has tried. wrk's threads advance
                # unevenly through their share: the next cell starts past the furthest item
                # tried, not after as many items as there were requests.
                codes_file = self.stack.workdir / "codes"
                items = [str(pk).encode() for pk in self.item_ids[self.next_item :]]
                cell = run(items, codes_out=codes_file)
                furthest = count(
                    db,
                    "SELECT max(item_id) FROM sales_checkoutattempt WHERE sale_id = %s",
                    self.sale_id,
                )
                self.next_item = bisect.bisect_right(self.item_ids, furthest)
                self.codes += codes_file.read_bytes().split()
                cell.note = f"{cell.statuses.get('201', 0)} new holds"
            elif endpoint == "purchase":
                # The codes split between the cells; a code is spent once per cell.
                share = len(self.codes) // len(config.connections)
                n, self.purchase_cells = self.purchase_cells, self.purchase_cells + 1
                before = count(db, "SELECT count(*) FROM sales_purchase")
                cell = run(self.codes[n * share : (n + 1) * share])
                first_time = count(db, "SELECT count(*) FROM sales_purchase") - before
                cell.note = f"{first_time} first-time purchases of {share} codes"
                if first_time < cell.ok:
                    cell.note += f", {cell.ok - first_time} repeats (200, idempotent)"
            elif endpoint == "ticket":
                cell = run(tickets)
                cell.note = f"{len(tickets)} distinct tickets, reused when exhausted"
            else:
                cell = run(None)
        say(f"  {cell.rps} req/s, p99 {cell.p99_ms} ms, statuses {cell.statuses}")
        for sample in cell.samples[:3]:
            say(f"  e.g. {sample}")
        if not conns:
            return None
        self.cells.append(cell)
        return cell

    def result(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "server": self.server,
            "cells": [asdict(cell) for cell in self.cells],
            "sale_open": self.sale_open,
            "backlog": self.backlog,
        }


def plan(connections: tuple[int, ...]) -> list[tuple[str, int]]:
    cells = [(endpoint, c) for endpoint in ("ping", "health", "checkout") for c in connections]
    cells.append(("checkout", 0))
    return cells + [(endpoint, c) for endpoint in ("purchase", "ticket") for c in connections]


# -- the run --------------------------------------------------------------------------------


def bench(config: Config) -> dict[str, Any]:
    started = time.monotonic()
    load_before = os.getloadavg()
    factory = TicketFactory(seed=1)
    tickets = [factory.make().body for _ in range(30_000)]
    here = git("describe", "--always", "--dirty")
    with contextlib.ExitStack() as resources:
        enter = resources.enter_context
        sides = [Side(f"{here}/{config.server}", config.server, enter(Stack("bench_a")))]
        if config.ab:
            tree, python = enter(checkout_of(config.baseline))
            there = here
            if config.baseline:
                there = git("rev-parse", "--short", f"{config.baseline}^{{commit}}")
            stack = enter(Stack("bench_b", root=tree, python=python))
            server = config.baseline_server
            sides.append(Side(f"{there}/{server}", server, stack))
        for side in sides:
            side.prepare(config)
        for n, (endpoint, conns) in enumerate(plan(config.connections)):
            # Alternate which side goes first, so that neither always runs on a warmer machine.
            order = range(len(sides)) if n % 2 == 0 else reversed(range(len(sides)))
            cells = {i: sides[i].measure(endpoint, conns, config, tickets) for i in order}
            if len(cells) == 2 and (a := cells[0]) and (b := cells[1]):
                say(f"  {endpoint} at {conns}: A / B = {ratio(a.rps, b.rps)}")
        for side in sides:
            with psycopg.connect(side.stack.db_url, autocommit=True) as db:
                side.backlog = measure_backlog(side.stack, db, side.urls, config)
            say(f"{side.label}: backlog parsed at {side.backlog['parse_rate_per_s']}/s")
    return {
        "config": asdict(config),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
        },
        "sides": [side.result() for side in sides],
        "seconds": round(time.monotonic() - started),
    }


def ratio(a: float, b: float) -> str:
    return f"{a / b:.2f}" if b else "-"


def markdown(result: dict[str, Any]) -> str:
    config, machine, sides = result["config"], result["machine"], result["sides"]
    servers = " vs ".join(f"{side['label']} ({side['server']})" for side in sides)
    lines = [
        f"wrk, {config['duration']} s per cell; {servers}: {config['instances']} x "
        f"({config['web_workers']} workers x {config['web_threads']} threads); "
        f"{machine['cpus']} CPUs, load average {machine['load_average_before'][0]} before, "
        f"{machine['load_average_after'][0]} after",
        "",
    ]
    floors = [
        {c["connections"]: c["rps"] for c in side["cells"] if c["endpoint"] == "ping"}
        for side in sides
    ]

    def figures(side: int, c: dict[str, Any]) -> str:
        floor = ratio(c["rps"], floors[side].get(c["connections"], 0))
        return f"{c['rps']:,.0f} | {c['p50_ms']} / {c['p99_ms']} | {floor} | {c['errors']}"

    if len(sides) == 1:
        lines += [
            "| endpoint | conns | req/s | p50 / p99 ms | vs /ping | errors | 2xx | notes |",
            "|---|---:|---:|---:|---:|---:|---:|---|",
        ]
        for c in sides[0]["cells"]:
            lines.append(
                f"| {c['endpoint']} | {c['connections']} | {figures(0, c)} | {c['ok']:,} "
                f"| {c['note']} |"
            )
    else:
        lines += [
            f"A: {sides[0]['label']}; B: {sides[1]['label']}",
            "",
            "| endpoint | conns | A req/s | p50 / p99 ms | vs /ping | errors "
            "| B req/s | p50 / p99 ms | vs /ping | errors | A / B |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for ca, cb in zip(sides[0]["cells"], sides[1]["cells"], strict=True):
            lines.append(
                f"| {ca['endpoint']} | {ca['connections']} | {figures(0, ca)} | {figures(1, cb)} "
                f"| **{ratio(ca['rps'], cb['rps'])}** |"
            )
    lines.append("")
    for side in sides:
        opening, backlog = side["sale_open"], side["backlog"]
        lines += [
            f"{side['label']}: opening a {opening['items']:,}-item sale: min {opening['min_s']} s, "
            f"median {opening['median_s']} s over {len(opening['runs_s'])} runs. Backlog: "
            f"{backlog['tickets']:,} tickets parsed by one worker "
            f"({backlog['worker_processes']} process) at {backlog['parse_rate_per_s']:,} "
            f"tickets/s sustained ({backlog['overall_rate_per_s']:,}/s from the worker's start); "
            f"outcome {backlog['statuses']}"
            + ("" if backlog["drained"] else " — NOT DRAINED within 300 s"),
            "",
        ]
    if len(sides) == 2:
        a, b = (side["backlog"]["parse_rate_per_s"] for side in sides)
        lines.append(
            f"Backlog parse rate, {sides[0]['label']} / {sides[1]['label']}: **{ratio(a, b)}**"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    config = Config.from_env()
    # The whole run is bounded: past the deadline, the stacks are torn down and we exit.
    signal.signal(signal.SIGALRM, lambda *_: sys.exit("bench: out of time"))
    signal.alarm(config.timeout)
    result = bench(config)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "bench.json").write_text(json.dumps(result, indent=2) + "\n")
    table = markdown(result)
    (RESULTS / "bench.md").write_text(table)
    say("\n" + table)
    say(f"written: {RESULTS / 'bench.json'}, {RESULTS / 'bench.md'} ({result['seconds']} s)")
    errors = sum(cell["errors"] for side in result["sides"] for cell in side["cells"])
    if errors:
        say(
            f"WARNING: {errors} unexpected answers or socket errors; see the statuses in bench.json"
        )
    return 0 if all(side["backlog"]["drained"] for side in result["sides"]) else 1


if __name__ == "__main__":
    sys.exit(main())
