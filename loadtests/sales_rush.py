"""The flash-sale rush, end to end over HTTP, and its invariants checked afterwards.

Two web server instances on two ports (2 worker processes each) share one PostgreSQL database and
one redis-server, both the run's own. 300 concurrent buyers (a buyer who reaches the limit makes
room for a new one) rush a 1,000-item sale with limit 3 and TTL 3 s, abandoning a third of their
holds. Then `sale_report` must show exactly 1,000 sold, nobody over 3 and every invariant true,
with zero 5xx and one CheckoutAttempt per checkout request sent. With --kill-redis-after N, the
redis-server is killed N seconds into the rush.

Scaled out: --cluster (a 6-node Redis Cluster; --kill-redis-after then kills the master owning
the sale's slot), --pgbouncer (PgBouncer in transaction mode in front of a PostgreSQL of the
run's own that allows fewer connections than the processes hold), --rabbitmq (RabbitMQ as the
broker). Each instance then runs with a Celery worker and a spool directory of its own, as two
hosts would.

    python -m loadtests.sales_rush [--kill-redis-after 5] [--buyers 300] [--items 1000]
        [--cluster] [--pgbouncer] [--rabbitmq]

The crowd (`--connections 64,2000`): one web server (2 processes x `--threads`) and a sale of
`--items` (default 200,000), then for each count in turn that many keep-alive connections, each a
buyer after buyer checking out a new item, waiting out `Retry-After` and coming back with the
token (`--impatient`: at once, without it), and a new buyer on a new connection every 0.2 s.
It prints per count: served/s, admitted and busy latencies, the share of returns admitted and
the new arrivals' answer times, then checks one attempt row per answer that was not busy.
`--no-admission` runs the same with admission control off, for comparison.

    python -m loadtests.sales_rush --connections 64,2000 [--seconds 20] [--impatient]
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from testkit.crowd import crowd
from testkit.engines import Engines, scaled_out, start_hosts
from testkit.rush import RushResult, http_rush, sale_item_ids
from testkit.stack import Stack

WEB_INSTANCES = 2
WORKERS_EACH = 2


def crowd_runs(args: argparse.Namespace) -> int:
    counts = [int(n) for n in args.connections.split(",")]
    env = {"ADMISSION": "false" if args.no_admission else "true"}
    with Stack("flashsale_crowd", extra_env=env) as stack:
        url = stack.start_web(workers=2, threads=args.threads)
        items = args.items if args.items != 1000 else 200_000
        sale = stack.manage_json("start_sale", "--items", str(items), "--ttl", "600")
        rows = stack.query("SELECT id FROM sales_item WHERE sale_id = %s", [sale["id"]])
        item_ids = [row[0] for row in rows]
        results = [
            crowd(
                url,
                item_ids,
                n,
                seconds=args.seconds,
                patient=not args.impatient,
                prefix=f"c{n}-",
            )
            for n in counts
        ]
        time.sleep(6)  # the web processes' admission counts are flushed every 5 s
        ((attempts,),) = stack.query("SELECT count(*) FROM sales_checkoutattempt")
        ((turned_away,),) = stack.query(
            "SELECT coalesce(sum(turned_away), 0) FROM sales_admissionminute"
        )
    table = [result.row() for result in results]
    print("| " + " | ".join(table[0]) + " |")
    print("|" + "---|" * len(table[0]))
    for row in table:
        print(
            "| "
            + " | ".join(
                "-" if v is None else f"{v:,}" if isinstance(v, int) else str(v)
                for v in row.values()
            )
            + " |"
        )
    answered = sum(result.recorded_total for result in results)
    checks = {"one_attempt_row_per_answer_below_500": attempts == answered}
    print(
        json.dumps(
            {
                "attempt_rows": attempts,
                "answers_below_500": answered,
                "turned_away_counted": int(turned_away),
                "checks": checks,
            },
            indent=2,
        )
    )
    return 0 if all(checks.values()) else 1


def main() -> int:
    args = arguments()
    if args.connections:
        return crowd_runs(args)
    scaled = args.cluster or args.pgbouncer or args.rabbitmq
    with scaled_out(
        "flashsale_rush", cluster=args.cluster, pgbouncer=args.pgbouncer, rabbitmq=args.rabbitmq
    ) as (stack, engines):
        if scaled:  # each instance with a Celery worker and a spool of its own, as a host has
            urls = start_hosts(stack, WEB_INSTANCES, web_workers=WORKERS_EACH)
        else:
            urls = [stack.start_web(workers=WORKERS_EACH) for _ in range(WEB_INSTANCES)]
        sale = stack.manage_json(
            "start_sale",
            *("--items", str(args.items), "--user-limit", str(args.limit), "--ttl", str(args.ttl)),
        )
        item_ids = sale_item_ids(urls[0], sale["id"])
        assert len(item_ids) == args.items, len(item_ids)
        result = http_rush(
            urls,
            item_ids,
            slots=args.buyers,
            user_limit=args.limit,
            abandon=args.abandon,
            deadline=args.deadline,
            during=redis_killer(stack, engines, sale["id"], args.kill_redis_after),
        )
        report = stack.manage_json("sale_report", str(sale["id"]))
    checks = invariants(args, result, report)
    print(json.dumps(summary(args, scaled, result, report, checks), indent=2))
    return 0 if all(checks.values()) else 1


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=300)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--ttl", type=int, default=3)
    parser.add_argument("--abandon", type=float, default=1 / 3)
    parser.add_argument("--deadline", type=float, default=240)
    parser.add_argument("--kill-redis-after", type=float, default=None)
    parser.add_argument("--cluster", action="store_true", help="a Redis Cluster")
    parser.add_argument("--pgbouncer", action="store_true", help="PgBouncer before PostgreSQL")
    parser.add_argument("--rabbitmq", action="store_true", help="RabbitMQ as the broker")
    parser.add_argument("--connections", help="the crowd instead: e.g. 64,2000 connections")
    parser.add_argument("--seconds", type=float, default=20, help="measured per crowd")
    parser.add_argument("--threads", type=int, default=96, help="threads per web process")
    parser.add_argument("--impatient", action="store_true", help="ignore Retry-After")
    parser.add_argument("--no-admission", action="store_true", help="admission control off")
    return parser.parse_args()


def redis_killer(
    stack: Stack, engines: Engines, sale_id: int, after: float | None
) -> Callable[[], None] | None:
    """What runs beside the rush: a kill of the redis-server (on a cluster, of the master that
    owns the sale's slot) `after` seconds into it; nothing when `after` is None."""
    if after is None:
        return None
    cluster = engines.redis_cluster
    master = cluster.master_of(f"{{sale:{sale_id}}}:ready") if cluster else 0

    def kill() -> None:
        time.sleep(after)
        if cluster:
            cluster.kill(master)
        else:
            stack.redis.kill()

    return kill


def invariants(
    args: argparse.Namespace, result: RushResult, report: dict[str, Any]
) -> dict[str, bool]:
    attempts = sum(report["attempts_by_outcome"].values())
    return {
        "sold_everything": report["sold"] == args.items,
        "nobody_over_the_limit": report["max_items_per_buyer"] <= args.limit,
        "zero_5xx": result.server_errors == 0,
        "one_attempt_per_checkout_request": attempts == result.checkouts,
        **{name: value for name, value in report.items() if isinstance(value, bool)},
    }


REPORTED = (
    "item_count",
    "sold",
    "reserved",
    "available",
    "buyers",
    "max_items_per_buyer",
    "attempts_by_outcome",
    "purchases",
)


def summary(
    args: argparse.Namespace,
    scaled: bool,
    result: RushResult,
    report: dict[str, Any],
    checks: dict[str, bool],
) -> dict[str, Any]:
    return {
        "scenario": {
            **vars(args),
            "web_instances": WEB_INSTANCES,
            "workers_each": WORKERS_EACH,
            "celery_workers": WEB_INSTANCES if scaled else 0,
        },
        "rush": {
            "seconds": result.seconds,
            "checkout_requests": result.checkouts,
            "responses": dict(sorted(result.outcomes.items())),
        },
        "report": {key: report[key] for key in REPORTED},
        "checkout_attempt_rows": sum(report["attempts_by_outcome"].values()),
        "checks": checks,
    }


if __name__ == "__main__":
    sys.exit(main())
