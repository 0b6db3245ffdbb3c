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
"""

import argparse
import json
import sys
import time
from collections.abc import Callable
from typing import Any

from testkit.engines import Engines, scaled_out, start_hosts
from testkit.rush import RushResult, http_rush, sale_item_ids
from testkit.stack import Stack

WEB_INSTANCES = 2
WORKERS_EACH = 2


def main() -> int:
    args = arguments()
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
