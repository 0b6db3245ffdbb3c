"""Faults during a rush, over real web server processes, with a redis-server of the test's own."""

import subprocess
import threading
import time

import psycopg
import pytest

from loadtests.sales_rush import rush, sale_item_ids
from testkit.stack import Stack

pytestmark = pytest.mark.faults

ITEMS, LIMIT = 300, 3


def open_sale(stack: Stack) -> tuple[dict, list[int], str]:
    url = stack.start_web(workers=2)
    sale = stack.manage_json(
        "start_sale", "--items", str(ITEMS), "--user-limit", str(LIMIT), "--ttl", "2"
    )
    return sale, sale_item_ids(url, sale["id"]), url


def after(seconds: float, action) -> threading.Thread:
    thread = threading.Thread(target=lambda: (time.sleep(seconds), action()))
    thread.start()
    return thread


def assert_sold_out_within_the_rules(stack: Stack, sale: dict, result: dict) -> dict:
    report = stack.manage_json("sale_report", str(sale["id"]))
    invariants = {name: value for name, value in report.items() if isinstance(value, bool)}
    assert all(invariants.values()), invariants
    assert report["sold"] == ITEMS
    assert report["max_items_per_buyer"] <= LIMIT
    assert not [key for key in result["responses"] if " 5" in key], result["responses"]
    return report


def test_redis_killed_mid_rush_then_restarted():
    with Stack("faults_redis", own_postgres=True) as stack:
        sale, item_ids, url = open_sale(stack)

        def kill_then_restart() -> None:
            stack.redis.kill()
            time.sleep(3)
            stack.redis.start()

        fault = after(2, kill_then_restart)
        result = rush([url], item_ids, buyers=60, user_limit=LIMIT, abandon=0.3, deadline=120)
        fault.join()
        report = assert_sold_out_within_the_rules(stack, sale, result)
        assert sum(report["attempts_by_outcome"].values()) == result["checkout_requests"]
        with psycopg.connect(stack.db_url) as db:
            via_redis = [
                row[0]
                for row in db.execute(
                    "SELECT via_redis FROM sales_checkoutattempt WHERE sale_id = %s ORDER BY id",
                    [sale["id"]],
                )
            ]
        assert via_redis[0] is True, "the rush began on the fast path"
        first_fallback = via_redis.index(False)  # PostgreSQL went on selling
        assert True in via_redis[first_fallback:], "the fast path came back by itself"


def test_a_web_worker_killed_mid_rush_leaves_no_half_done_purchase():
    with Stack("faults_web", own_postgres=True) as stack:
        sale, item_ids, url = open_sale(stack)
        master = next(p for name, p in stack.processes.items() if name.startswith("web"))

        def kill_a_worker() -> None:
            children = subprocess.run(
                ["pgrep", "-P", str(master.pid)], capture_output=True, text=True, check=True
            ).stdout.split()
            subprocess.run(["kill", "-KILL", children[0]], check=True)

        fault = after(2, kill_a_worker)
        result = rush([url], item_ids, buyers=60, user_limit=LIMIT, abandon=0.3, deadline=120)
        fault.join()
        # buyer_counts_match_purchases, checked here with the others, is the half-done check:
        # a purchase row without its buyer's count (or the reverse) would break it.
        report = assert_sold_out_within_the_rules(stack, sale, result)
        assert report["purchases"] == ITEMS
