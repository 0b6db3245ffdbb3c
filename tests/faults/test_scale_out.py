"""The scale-out engines under load and under faults, over real web server and Celery processes:
a Redis Cluster losing the master of a sale's slot, PgBouncer in transaction mode in front of a
PostgreSQL with fewer connections than the processes hold, and RabbitMQ as the broker, killed
at any moment. Like the other fault tests they assert safety, plus what the fault is about: the
replica took over and the fast path came back, more clients than PostgreSQL allows, every
ticket parsed once.
"""

import json
import threading
import time
import urllib.request

import psycopg
import pytest

from testkit.engines import scaled_out
from testkit.rush import http_rush
from testkit.stack import Stack
from tests.faults.test_sales_faults import LIMIT, RUSH_SECONDS, assert_within_the_rules, open_sale
from tests.faults.test_tickets_faults import assert_each_parsed_once, burst

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
    with scaled_out("faults_cluster", cluster=True, own_postgres=True) as (stack, engines):
        cluster = engines.redis_cluster
        assert cluster is not None
        sale, item_ids, url = open_sale(stack)
        master = cluster.master_of(f"{{sale:{sale['id']}}}:ready")

        def kill_the_master() -> None:
            # early enough that the replica is promoted well before the rush can sell out
            time.sleep(1)
            cluster.kill(master)

        result = http_rush(
            [url], item_ids, slots=60, user_limit=LIMIT, abandon=0.3, deadline=RUSH_SECONDS,
            during=kill_the_master,
        )  # fmt: skip
        report = assert_within_the_rules(stack, sale, result)
        assert sum(report["attempts_by_outcome"].values()) == result.checkouts
        assert cluster.master_of(f"{{sale:{sale['id']}}}:ready") != master, "replica promoted"
        decided = via_redis(stack, sale["id"])
        assert decided[0] is True, "the rush began on the cluster"
        first_fallback = decided.index(False)  # PostgreSQL went on selling
        assert True in decided[first_fallback:], "the fast path came back by itself"


def test_a_rush_and_a_burst_through_pgbouncer_with_more_clients_than_postgresql_allows():
    with scaled_out("faults_pgbouncer", pgbouncer=True) as (stack, engines):
        bouncer, postgres = engines.pgbouncer, stack.postgres
        assert bouncer is not None
        assert postgres is not None
        # 2 instances x 2 processes x 8 threads, each thread with a connection of its own
        urls = [stack.start_web(workers=2, threads=8) for _ in range(2)]
        stack.start_worker()
        sale, item_ids, _ = open_sale(stack)
        clients: list[int] = []
        rushing = threading.Event()

        def count_clients() -> None:
            while not rushing.wait(0.2):
                clients.append(bouncer.client_connections())

        counter = threading.Thread(target=count_clients)
        counter.start()
        try:
            result = http_rush(
                urls, item_ids, slots=60, user_limit=LIMIT, abandon=0.3, deadline=RUSH_SECONDS
            )
        finally:
            rushing.set()
            counter.join(timeout=10)
        assert max(clients) > postgres.max_connections, "more clients than PostgreSQL allows"
        report = assert_within_the_rules(stack, sale, result)
        assert sum(report["attempts_by_outcome"].values()) == result.checkouts
        assert_each_parsed_once(stack, burst(urls[0], 1000, seed=21))


def test_rabbitmq_killed_and_restarted_mid_burst_and_mid_acknowledgement():
    with scaled_out(
        "faults_rabbitmq",
        rabbitmq=True,
        own_postgres=True,
        extra_env={"TICKETS_SWEEP_SECONDS": "2"},
    ) as (stack, engines):
        broker = engines.rabbitmq
        assert broker is not None
        url = stack.start_web(workers=2)
        stack.start_worker()
        stack.start_beat()
        with urllib.request.urlopen(f"{url}/health", timeout=10) as health:
            assert json.load(health)["broker"] == "ok"

        def succeeded() -> int:
            return stack.log("worker").count(" succeeded in ")

        def kill_when_a_task_ends() -> None:
            """Kill the broker the moment the worker logs a finished task: it is acknowledging
            it (late acknowledgement) right then."""
            seen, deadline = succeeded(), time.monotonic() + 30
            while succeeded() == seen:
                assert time.monotonic() < deadline, "no task finished"
                time.sleep(0.005)
            broker.kill()

        def outages() -> None:
            time.sleep(1)
            broker.kill()  # mid-burst, whatever the worker is doing
            time.sleep(1)
            broker.start()
            kill_when_a_task_ends()
            time.sleep(0.5)
            broker.start()

        acknowledged = burst(url, 3000, seed=31, during=outages)
        assert_each_parsed_once(stack, acknowledged)
