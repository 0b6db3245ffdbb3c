"""The scale-out engines under load and under faults, over real gunicorn and Celery processes:
a Redis Cluster losing the master of a sale's slot, PgBouncer in transaction mode in front of a
PostgreSQL with fewer connections than the processes hold, and RabbitMQ as the broker, killed
at any moment."""

import psycopg
import pytest

from loadtests.sales_rush import rush
from testkit.engines import RedisCluster
from testkit.stack import Stack
from tests.faults.test_sales_faults import (
    ITEMS,
    LIMIT,
    after,
    assert_sold_out_within_the_rules,
    open_sale,
)

pytestmark = pytest.mark.faults


def via_redis(stack: Stack, sale_id: int) -> list[bool]:
    with psycopg.connect(stack.db_url) as db:
        return [
            row[0]
            for row in db.execute(
                "SELECT via_redis FROM sales_checkoutattempt WHERE sale_id = %s ORDER BY id",
                [sale_id],
            )
        ]


def test_the_master_of_a_sales_slot_killed_mid_rush():
    with (
        RedisCluster() as cluster,
        Stack(
            "faults_cluster",
            own_postgres=True,
            extra_env={"REDIS_URL": cluster.url, "REDIS_CLUSTER": "true"},
        ) as stack,
    ):
        sale, item_ids, url = open_sale(stack)
        master = cluster.master_of(f"{{sale:{sale['id']}}}:ready")
        fault = after(2, lambda: cluster.kill(master))
        result = rush([url], item_ids, buyers=60, user_limit=LIMIT, abandon=0.3, deadline=120)
        fault.join()
        report = assert_sold_out_within_the_rules(stack, sale, result)
        assert sum(report["attempts_by_outcome"].values()) == result["checkout_requests"]
        assert report["sold"] == ITEMS
        assert cluster.master_of(f"{{sale:{sale['id']}}}:ready") != master, "replica promoted"
        decided = via_redis(stack, sale["id"])
        assert decided[0] is True, "the rush began on the cluster"
        first_fallback = decided.index(False)  # PostgreSQL went on selling
        assert True in decided[first_fallback:], "the fast path came back by itself"
