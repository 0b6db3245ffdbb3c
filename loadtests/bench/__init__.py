"""`make bench` (`python -m loadtests.bench`): throughput and latency of the service on this
machine, measured with wrk.

Starts a throw-away stack (`testkit/stack.py`: a PostgreSQL database and a redis-server of its
own, the web server `make serve` runs, one Celery worker), then measures:

- `/ping` (the server, Django and the project's middleware, no database), health, the current
  sale's page (`/sales/current`, its figures cached for a second per process),
  checkout, purchase and ticket ingest, each at 64 and 256 connections: requests/s,
  p50/p90/p99 and errors, and each endpoint's rate as a fraction of `/ping` at the same
  connections. Checkouts are first-time holds (a distinct buyer and a distinct item per
  request; a 409 is an expected refusal, counted apart). Purchases spend the codes those
  checkouts returned, each once, so they are real first-time purchases; the table says how many
  were (counted in the database), in case a cell outran its codes and repeated some;
- beside each cell, the CPU each request cost the side's web server, the PostgreSQL server
  and the side's redis-server (`cpu.py`), so that a gap between sides shows where it lies;
- the time to open a 10,000-item sale (`sales.services.sale_open`, in a subprocess);
- the backlog parse rate of one worker: with the worker stopped, N distinct tickets are
  ingested, then one worker starts and the clock runs until none is `received`.

A/B: with BENCH_BASELINE=<git ref>, a second stack serves that commit's code from a git worktree
(with this checkout's virtualenv when both pin the same requirements, else a virtualenv of its
own), and every cell runs against both stacks one after the other, the order alternating from
cell to cell, so that both sides see the same machine; the table gives the ratio per cell.
Both sides run the same server, `config/serve.py` of this checkout for granian. With
BENCH_BASELINE_SERVER=gunicorn (and no BENCH_BASELINE), the same code under the other server.

The floor: with BENCH_FLOOR=1, the reference app of `loadtests/floor/` (plain Django, no
middleware, the same Redis script and the same group-committed INSERT as the project) runs as
one more side, on the same server with the same workers and threads, its cells alternating
with the project's; the table gives "project / floor" for ping, checkout and ticket.

Writes `loadtests/results/bench.json` and `bench.md`, prints the table, and stops everything it
started. Everything comes from one address, so the stacks turn the rate limits off.

Environment (defaults): BENCH_DURATION (10s per cell), BENCH_CONNECTIONS (64,256; 64 in A/B and
with the floor), BENCH_WEB_WORKERS (2), BENCH_WEB_THREADS (16), BENCH_INSTANCES (1; 2 splits
wrk's connections across two web servers and adds up), BENCH_SERVER (granian, or gunicorn),
BENCH_BASELINE (none), BENCH_BASELINE_SERVER (BENCH_SERVER), BENCH_FLOOR (off),
BENCH_WORKER_CONCURRENCY (1), BENCH_BACKLOG (20000), BENCH_SALE_ITEMS (40000),
BENCH_SALE_OPEN_RUNS (5), BENCH_TIMEOUT (1200 s for the whole run).
"""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "loadtests" / "results"


def say(message: str) -> None:
    print(message, flush=True)
