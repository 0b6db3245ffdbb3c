"""Faults during a rush, over real web server processes, with a redis-server of the test's own.

They assert safety alone: whatever the fault and however far the rush gets on a loaded machine,
nothing is oversold, nobody goes over the limit, no answer is a 5xx and every checkout request
left its attempt row. (That a rush sells out is tests/sales/transactional's liveness test.)
"""

import subprocess
import time
import urllib.error
import urllib.request

import psycopg
import pytest

from testkit.rush import RushResult, http_rush, sale_item_ids
from testkit.stack import Stack

pytestmark = pytest.mark.faults

ITEMS, LIMIT = 300, 3
RUSH_SECONDS = 120  # a cap against a hang; the rush ends sooner once everything is sold


def open_sale(stack: Stack) -> tuple[dict, list[int], str]:
    url = stack.start_web(workers=2)
    sale = stack.manage_json(
        "start_sale", "--items", str(ITEMS), "--user-limit", str(LIMIT), "--ttl", "2"
    )
    return sale, sale_item_ids(url, sale["id"]), url


def assert_within_the_rules(stack: Stack, sale: dict, result: RushResult) -> dict:
    report = stack.manage_json("sale_report", str(sale["id"]))
    invariants = {name: value for name, value in report.items() if isinstance(value, bool)}
    assert all(invariants.values()), invariants
    assert report["max_items_per_buyer"] <= LIMIT
    assert not [key for key in result.outcomes if key.split()[1].startswith("5")], result.outcomes
    return report


def test_redis_killed_mid_rush_then_restarted():
    with Stack("faults_redis", own_postgres=True) as stack:
        sale, item_ids, url = open_sale(stack)

        def kill_then_restart() -> None:
            time.sleep(2)
            stack.redis.kill()
            time.sleep(3)
            stack.redis.start()

        result = http_rush(
            [url], item_ids, slots=60, user_limit=LIMIT, abandon=0.3, deadline=RUSH_SECONDS,
            during=kill_then_restart,
        )  # fmt: skip
        report = assert_within_the_rules(stack, sale, result)
        assert sum(report["attempts_by_outcome"].values()) == result.checkouts
        via_redis = ways_decided(stack, sale["id"])
        assert via_redis[0] is True, "the rush began on the fast path"
        first_fallback = via_redis.index(False)  # PostgreSQL went on selling
        # The fast path comes back by itself: within the rush, or on a loaded machine, where
        # the rush may sell out first, for the checkouts after it (refused: sold out).
        deadline = time.monotonic() + 60
        n = 0
        while True not in via_redis[first_fallback:] and time.monotonic() < deadline:
            n += 1
            request = urllib.request.Request(
                f"{url}/checkout?user_id=after-{n}&id={item_ids[0]}", method="POST"
            )
            try:
                status = urllib.request.urlopen(request, timeout=30).status
            except urllib.error.HTTPError as answer:
                status = answer.code
            assert status < 500, status
            via_redis = ways_decided(stack, sale["id"])
            time.sleep(0.2)
        assert True in via_redis[first_fallback:], "the fast path came back by itself"


def ways_decided(stack: Stack, sale_id: int) -> list[bool]:
    """Whether Redis decided each checkout attempt of the sale, in order."""
    with psycopg.connect(stack.db_url) as db:
        query = "SELECT via_redis FROM sales_checkoutattempt WHERE sale_id = %s ORDER BY id"
        return [row[0] for row in db.execute(query, [sale_id])]


def test_a_web_worker_killed_mid_rush_leaves_no_half_done_purchase():
    with Stack("faults_web", own_postgres=True) as stack:
        sale, item_ids, url = open_sale(stack)
        master = next(p for name, p in stack.processes.items() if name.startswith("web"))

        def kill_a_worker() -> None:
            time.sleep(2)
            children = subprocess.run(
                ["pgrep", "-P", str(master.pid)], capture_output=True, text=True, check=True
            ).stdout.split()
            subprocess.run(["kill", "-KILL", children[0]], check=True)

        result = http_rush(
            [url], item_ids, slots=60, user_limit=LIMIT, abandon=0.3, deadline=RUSH_SECONDS,
            during=kill_a_worker,
        )  # fmt: skip
        # buyer_counts_match_purchases, checked here with the others, is the half-done check:
        # a purchase row without its buyer's count (or the reverse) would break it.
        assert_within_the_rules(stack, sale, result)
