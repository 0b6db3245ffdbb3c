"""`make loadtest`: the locust scenarios, headless, against a throw-away stack; then the invariants.

Self-contained on purpose: it starts its own stack (`testkit/stack.py`: a PostgreSQL database
and a redis-server of its own, the web server, one Celery worker), opens a sale, runs locust for
a set time, waits for the ticket backlog to be parsed, and checks from the database:

- every sale touched: `sale_report`'s invariants (no oversell, user limit, one purchase per item);
- every checkout request left one CheckoutAttempt row; every purchase answered 200 is stored;
- tickets acknowledged with 202 == tickets stored, none left `received`, and exactly the
  malformed ones rejected;
- no 5xx answer.

Exits 1 if one is broken. Reports (CSV, HTML, the error log, a JSON summary) go to
`loadtests/results/loadtest*` (or LOADTEST_RESULTS). To load a service that is already running,
use locust directly (`make locust`, or `locust -f loadtests/locustfile.py --headless ...`):
without its database there is nothing to check the invariants against.

Environment (defaults): LOADTEST_USERS (200), LOADTEST_SPAWN_RATE (50), LOADTEST_DURATION (60s),
LOADTEST_CLASSES (all: FlashSaleBuyer and Till, 4:1), LOADTEST_ITEMS (10000),
LOADTEST_USER_LIMIT (10), LOADTEST_TTL (20 s, so that abandoned holds expire during the run),
LOADTEST_WEB_WORKERS (2), LOADTEST_WEB_THREADS (16).
"""

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from testkit.stack import BIN, ROOT, Stack

RESULTS = Path(os.environ.get("LOADTEST_RESULTS") or ROOT / "loadtests" / "results")


def seconds(duration: str) -> int:
    """locust's run time syntax: 90, 90s, 2m, 1h30m."""
    if duration.isdigit():
        return int(duration)
    parts = re.findall(r"(\d+)([hms])", duration)
    if not parts or "".join(n + u for n, u in parts) != duration:
        raise SystemExit(f"LOADTEST_DURATION={duration!r}: use e.g. 60s, 2m or 1h30m")
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[u] for n, u in parts)


def run_locust(url: str, env: dict[str, str]) -> dict[str, Any]:
    users, rate = env["LOADTEST_USERS"], env["LOADTEST_SPAWN_RATE"]
    duration = env["LOADTEST_DURATION"]
    args = [
        str(BIN / "locust"),
        "-f",
        str(ROOT / "loadtests" / "locustfile.py"),
        "--headless",
        "--only-summary",
        "-u",
        users,
        "-r",
        rate,
        "-t",
        duration,
        "--stop-timeout",
        "10",
        "--host",
        url,
        "--csv",
        str(RESULTS / "loadtest"),
        "--html",
        str(RESULTS / "loadtest.html"),
        *env["LOADTEST_CLASSES"].split(),
    ]
    print(f"locust: {users} users, {rate}/s, {duration} against {url}", flush=True)
    # Bounded even if locust hangs: its run time, its stop timeout and a margin.
    subprocess.run(
        args,
        cwd=ROOT,
        env={
            **os.environ,
            "LOCUST_ERROR_LOG": env["LOCUST_ERROR_LOG"],
            "LOCUST_SUMMARY": str(RESULTS / "loadtest_business.json"),
        },
        timeout=seconds(duration) + 120,
        check=False,
    )
    return json.loads((RESULTS / "loadtest_business.json").read_text())


def wait_for_parsing(db: psycopg.Connection, limit: float = 120) -> int:
    """Tickets still `received` once the worker has had up to `limit` seconds to catch up."""
    deadline = time.monotonic() + limit
    while True:
        left = db.execute("SELECT count(*) FROM tickets_ticket WHERE status = 'received'")
        n = int(left.fetchone()[0])  # type: ignore[index]
        if n == 0 or time.monotonic() > deadline:
            return n
        time.sleep(0.5)


def http_table(stats: list[dict[str, Any]]) -> str:
    lines = [
        f"{'type':9} {'name':28} {'requests':>9} {'fails':>6} {'req/s':>7} "
        f"{'p50':>6} {'p95':>6} {'p99':>6}  (ms)"
    ]
    for row in stats:
        lines.append(
            f"{row['type']:9} {row['name'][:28]:28} {row['requests']:>9} {row['failures']:>6} "
            f"{row['rps']:>7} {row['p50']:>6} {row['p95']:>6} {row['p99']:>6}"
        )
    return "\n".join(lines)


def main() -> int:
    env = settings()
    RESULTS.mkdir(parents=True, exist_ok=True)
    Path(env["LOCUST_ERROR_LOG"]).unlink(missing_ok=True)  # this run's errors only
    with Stack("flashsale_loadtest") as stack:
        url = stack.start_web(
            workers=int(env["LOADTEST_WEB_WORKERS"]), threads=int(env["LOADTEST_WEB_THREADS"])
        )
        stack.start_worker()
        stack.manage_json(
            "start_sale",
            *("--items", env["LOADTEST_ITEMS"], "--user-limit", env["LOADTEST_USER_LIMIT"]),
            *("--ttl", env["LOADTEST_TTL"]),
        )
        summary = run_locust(url, env)
        stored = Stored.read(stack)
    result = outcome(env, summary, stored)
    (RESULTS / "loadtest.json").write_text(json.dumps(result, indent=2, default=str) + "\n")
    print("\n" + http_table(summary["requests"]))
    print("\n" + json.dumps({k: v for k, v in result.items() if k != "settings"}, indent=2))
    print(
        f"\nreports: {RESULTS}/loadtest_*.csv, loadtest.html, loadtest.json; "
        f"unexpected responses: {env['LOCUST_ERROR_LOG']}"
    )
    broken = [name for name, ok in result["checks"].items() if not ok]
    print("BROKEN: " + ", ".join(broken) if broken else "all checks hold")
    return 1 if broken else 0


def settings() -> dict[str, str]:
    """The run's settings: the LOADTEST_ variables set, defaults for the others."""
    env = {
        "LOADTEST_USERS": "200",
        "LOADTEST_SPAWN_RATE": "50",
        "LOADTEST_DURATION": "60s",
        "LOADTEST_CLASSES": "",
        "LOADTEST_ITEMS": "10000",
        "LOADTEST_USER_LIMIT": "10",
        "LOADTEST_TTL": "20",
        "LOADTEST_WEB_WORKERS": "2",
        "LOADTEST_WEB_THREADS": "16",
        "LOCUST_ERROR_LOG": str(RESULTS / "errors.log"),
    }
    env.update({k: v for k, v in os.environ.items() if k in env and v})
    return env


@dataclass(frozen=True)
class Stored:
    """What the database holds after the run, once the tickets had time to be parsed."""

    tickets_by_status: dict[str, int]
    tickets_left_received: int
    checkout_attempts: int
    sale_reports: dict[int, dict[str, Any]]

    @classmethod
    def read(cls, stack: Stack) -> "Stored":
        with psycopg.connect(stack.db_url, autocommit=True) as db:
            left = wait_for_parsing(db)
            tickets: dict[str, int] = dict(
                db.execute("SELECT status, count(*) FROM tickets_ticket GROUP BY status")
            )
            attempts = db.execute("SELECT count(*) FROM sales_checkoutattempt").fetchone()
            sale_ids = [row[0] for row in db.execute("SELECT id FROM sales_sale ORDER BY id")]
        return cls(
            tickets_by_status=tickets,
            tickets_left_received=left,
            checkout_attempts=int(attempts[0]),  # type: ignore[index]
            sale_reports={pk: stack.manage_json("sale_report", str(pk)) for pk in sale_ids},
        )


def outcome(env: dict[str, str], summary: dict[str, Any], stored: Stored) -> dict[str, Any]:
    """What locust counted beside what the database holds, and every invariant between them.
    Counts come from locust's end-of-run summary: its CSV files may miss the last seconds."""
    requests = {(r["type"], r["name"]): r["requests"] for r in summary["requests"]}
    checkouts = requests.get(("POST", "/checkout"), 0)
    failures = summary["failures"]
    outcomes = summary["outcomes"]
    acknowledged = outcomes.get("ticket accepted", 0)
    server_errors = sum(f["occurrences"] for f in failures if re.search(r": 5\d\d\b", f["error"]))
    tickets, reports = stored.tickets_by_status, stored.sale_reports
    checks = {
        **{  # every invariant sale_report checks: its boolean fields
            f"sale {pk}: {name}": value
            for pk, report in reports.items()
            for name, value in report.items()
            if isinstance(value, bool)
        },
        # A checkout turned away busy never reached the sale: it is counted, not recorded.
        "one_attempt_row_per_checkout_request": stored.checkout_attempts
        == checkouts - outcomes.get("checkout busy", 0),
        "purchases_answered_200_equal_purchases_stored": outcomes.get("sold", 0)
        == sum(report["purchases"] for report in reports.values()),
        "tickets_acknowledged_equal_tickets_stored": acknowledged == sum(tickets.values()),
        "no_ticket_left_received": stored.tickets_left_received == 0,
        "malformed_tickets_rejected": tickets.get("rejected", 0)
        == outcomes.get("ticket accepted, malformed", 0),
        "no_5xx": server_errors == 0,
    }
    return {
        "settings": env,
        "business": outcomes,
        "tickets_by_status": tickets,
        "tickets_acknowledged": acknowledged,
        "checkout_requests": checkouts,
        "checkout_attempt_rows": stored.checkout_attempts,
        "sales": {
            pk: {k: report[k] for k in ("item_count", "sold", "reserved", "available", "buyers")}
            for pk, report in reports.items()
        },
        "unexpected_responses": sum(f["occurrences"] for f in failures),
        "server_errors": server_errors,
        "checks": checks,
    }


if __name__ == "__main__":
    sys.exit(main())
