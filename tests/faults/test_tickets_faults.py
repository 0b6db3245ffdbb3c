"""Faults during ticket bursts, over real web server and Celery processes, with a PostgreSQL
cluster and a redis-server (cache and broker) of the test's own."""

import signal
import time
from collections.abc import Callable

import pytest

from testkit.http import post_tickets
from testkit.stack import Stack
from testkit.tickets import TicketFactory

pytestmark = pytest.mark.faults

# A cap against a hang, not a speed requirement: how long the worker may take to work off a
# backlog of a few thousand tickets on a loaded machine.
SETTLE_SECONDS = 600


def stored_ids(stack: Stack) -> list[str]:
    return [str(row[0]) for row in stack.query("SELECT id FROM tickets_ticket")]


def assert_each_parsed_once(stack: Stack, acknowledged: dict) -> None:
    settled = stack.tickets_settled(len(acknowledged), timeout=SETTLE_SECONDS)
    assert settled["settled"], settled
    ids = stored_ids(stack)
    assert sorted(ids) == sorted(acknowledged), "every acknowledged ticket stored, once"
    ((orders, parsed),) = stack.query(
        "SELECT (SELECT count(*) FROM tickets_order),"
        " (SELECT count(*) FROM tickets_ticket WHERE status = 'parsed')"
    )
    assert orders == parsed, "each parsed ticket counted once"
    assert stack.spool_files() == 0


def burst(url: str, count: int, seed: int, during: Callable[[], None] | None = None) -> dict:
    bodies = TicketFactory(seed=seed).bodies(count)
    result = post_tickets(url, bodies, 16, during=during)
    assert set(result["statuses"]) == {202}, result["statuses"]
    return result["acknowledged"]


def test_postgresql_stopped_mid_burst():
    with Stack("faults_pg", own_postgres=True) as stack:
        url = stack.start_web(workers=2)
        stack.start_worker()
        assert stack.postgres is not None
        spooled_while_down: list[int] = []

        def outage() -> None:
            assert stack.postgres is not None
            time.sleep(0.5)
            stack.postgres.stop("immediate")
            time.sleep(3)
            spooled_while_down.append(stack.spool_files())
            stack.postgres.start()

        acknowledged = burst(url, 1500, seed=11, during=outage)
        assert spooled_while_down[0] > 0, "the outage was covered by the spool"
        assert_each_parsed_once(stack, acknowledged)


def test_a_worker_killed_while_parsing():
    with Stack("faults_worker", own_postgres=True) as stack:
        url = stack.start_web(workers=2)
        acknowledged = burst(url, 3000, seed=12)  # no worker yet: a backlog
        stack.start_worker()
        deadline = time.monotonic() + 120
        while not stack.query("SELECT 1 FROM tickets_ticket WHERE status <> 'received' LIMIT 1"):
            assert time.monotonic() < deadline, "the worker never started parsing"
            time.sleep(0.05)
        stack.stop("worker", signal.SIGKILL)
        ((left,),) = stack.query("SELECT count(*) FROM tickets_ticket WHERE status = 'received'")
        assert left > 0, "the worker was killed with work left"
        stack.start_worker("worker-2")
        assert_each_parsed_once(stack, acknowledged)


def test_broker_down_tickets_are_acknowledged_then_parsed():
    with Stack(
        "faults_broker",
        own_postgres=True,
        extra_env={"TICKETS_SWEEP_SECONDS": "2", "WORKER_STALL_SECONDS": "20"},
    ) as stack:
        url = stack.start_web(workers=2)
        # Coming back from a broker outage, kombu's Redis transport can leave a worker
        # connected but no longer consuming; its watchdog then stops it, and its supervisor
        # starts it again (README, "Workers").
        stack.start_worker(supervised=True)
        deadline = time.monotonic() + 120
        while stack.log("worker").count(" succeeded in ") < 2:  # its start-up sweeps
            assert time.monotonic() < deadline, "the worker never finished starting"
            time.sleep(0.1)
        stack.redis.kill()  # the broker (and the cache) is gone
        acknowledged = burst(url, 500, seed=13)
        ((received,),) = stack.query(
            "SELECT count(*) FROM tickets_ticket WHERE status = 'received'"
        )
        assert received == 500, "acknowledged and stored, waiting for the broker"
        stack.redis.start()
        stack.start_beat()  # its next sweep finds the backlog
        assert_each_parsed_once(stack, acknowledged)
