"""SIGKILL of our own processes at seeded random instants, then a restart and every promise
checked: the web server's whole process group mid-rush, `start_sale` mid-opening, the web server
mid-burst of tickets with PostgreSQL up and down, the worker mid-drain and mid-parse.

They assert safety alone. The seed is printed; `KILL_SEED=<n>` replays a run's kill instants.
"""

import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis

from testkit.http import post_tickets
from testkit.rush import RushResult, http_rush, sale_item_ids
from testkit.stack import Stack, free_port
from testkit.tickets import TicketFactory

pytestmark = pytest.mark.faults

SEED = int(os.environ.get("KILL_SEED") or random.SystemRandom().randrange(1_000_000))
ITEMS, LIMIT, TTL = 3000, 3, 30
RUSH_SECONDS = 150  # past the kills: the rush is cut there, sold out or not
KILLS = 20  # kill points per scenario in each run
RECONCILE_SECONDS = 1
GRACE_SECONDS = 5  # sales/stock/_reconcile.GRACE


@pytest.fixture
def rng() -> random.Random:
    print(f"KILL_SEED={SEED}")
    return random.Random(SEED)


class Web:
    """One web server on a fixed port, killed (its whole process group) and started again."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.port = free_port()
        self.url = stack.start_web(workers=2, port=self.port)
        self.kills = 0

    @property
    def name(self) -> str:
        return f"web-{self.port}"

    def kill_and_restart(self) -> None:
        self.stack.stop(self.name, signal.SIGKILL)
        self.kills += 1
        self.stack.start_web(workers=2, port=self.port)


@pytest.fixture
def stack() -> Iterator[Stack]:
    env = {"STOCK_RECONCILE_SECONDS": str(RECONCILE_SECONDS)}
    with Stack("faults_kills", extra_env=env) as stack:
        yield stack


# -- sales ------------------------------------------------------------------------------------


def test_web_killed_at_random_instants_of_a_rush(stack, rng):
    web = Web(stack)
    sale = stack.manage_json(
        "start_sale", "--items", str(ITEMS), "--user-limit", str(LIMIT), "--ttl", str(TTL)
    )
    item_ids = sale_item_ids(web.url, sale["id"])

    def kill_at_random() -> None:
        for _ in range(KILLS):
            time.sleep(rng.uniform(0.2, 1.5))
            web.kill_and_restart()

    result = http_rush(
        [web.url], item_ids, slots=48, user_limit=LIMIT, abandon=0.3, deadline=RUSH_SECONDS,
        during=kill_at_random,
    )  # fmt: skip
    assert web.kills == KILLS
    print(f"{web.kills} kills, {len(result.sent)} answers: {dict(result.outcomes)}")
    assert_every_answer_committed(stack, sale["id"], result)
    assert_within_the_rules(stack, sale["id"])
    time.sleep(GRACE_SECONDS + 3 * RECONCILE_SECONDS)
    assert_redis_agrees(stack, sale["id"])


def assert_every_answer_committed(stack: Stack, sale_id: int, result: RushResult) -> None:
    holds = {
        code: (user, item)
        for code, user, item in stack.query(
            "SELECT code, user_id, item_id FROM sales_checkoutattempt"
            " WHERE sale_id = %s AND outcome = 'held'",
            [sale_id],
        )
    }
    sold_at = {
        item: at.timestamp()
        for item, at in stack.query(
            "SELECT item_id, purchased_at FROM sales_purchase WHERE sale_id = %s", [sale_id]
        )
    }
    checkouts = [s for s in result.sent if s.kind == "checkout"]
    granted = [s for s in checkouts if s.answer.ok]
    assert granted, "the rush was answered"
    unbacked = [s for s in granted if holds.get(s.answer.code) != (s.user, s.item_id)]
    on_sold = [
        s
        for s in granted
        if s.answer.label == "201" and sold_at.get(s.item_id, float("inf")) <= s.sent_at
    ]
    unknown = [
        s for s in result.sent if s.kind == "purchase" and s.answer.refusal == "code_not_found"
    ]
    mismatches = {
        "2xx naming no committed hold of that buyer and item": len(unbacked),
        "201 on an item sold before the request": len(on_sold),
        "purchases of a code we gave answered code_not_found": len(unknown),
    }
    print(f"{len(granted)} 2xx checkouts checked; mismatches: {mismatches}")
    assert not any(mismatches.values()), (mismatches, (unbacked + on_sold + unknown)[:5])
    ((rows,),) = stack.query(
        "SELECT count(*) FROM sales_checkoutattempt WHERE sale_id = %s", [sale_id]
    )
    answered = [s for s in checkouts if not s.answer.label.startswith(("0 ", "5"))]
    lost = len(checkouts) - len(answered)  # killed in flight: recorded or not
    assert len(answered) <= rows <= len(checkouts), (len(answered), rows, lost)


def assert_within_the_rules(stack: Stack, sale_id: int) -> None:
    report = stack.manage_json("sale_report", str(sale_id))
    invariants = {name: value for name, value in report.items() if isinstance(value, bool)}
    assert all(invariants.values()), invariants
    assert report["max_items_per_buyer"] <= LIMIT


def assert_redis_agrees(stack: Stack, sale_id: int) -> None:
    """Redis holds PostgreSQL's sold items, live holds and purchase counts, nothing else."""
    client = redis.Redis.from_url(stack.redis_url, decode_responses=True)
    tag = f"{{sale:{sale_id}}}"
    now_ms = int(time.time() * 1000)
    sold = {int(item) for item in client.smembers(f"{tag}:sold")}
    holds = {
        int(item): hold
        for item, hold in client.hgetall(f"{tag}:holds").items()
        if int(hold.split()[2]) > now_ms and int(item) not in sold
    }
    bought = {user: int(n) for user, n in client.hgetall(f"{tag}:bought").items()}
    pg_sold = {item for (item,) in stack.query("SELECT id FROM sales_item WHERE sold")}
    pg_holds = {
        item: f"{user} {code} {int(until.timestamp() * 1000)}"
        for item, user, code, until in stack.query(
            "SELECT id, claimed_by, claim_code, claimed_until FROM sales_item"
            " WHERE sale_id = %s AND NOT sold AND claimed_until > %s",
            [sale_id, datetime.fromtimestamp(now_ms / 1000, tz=UTC)],
        )
    }
    pg_bought = dict(
        stack.query(
            "SELECT user_id, purchased FROM sales_buyer WHERE sale_id = %s AND purchased > 0",
            [sale_id],
        )
    )
    assert sold == pg_sold
    assert holds == pg_holds
    assert {u: n for u, n in bought.items() if n} == pg_bought


def test_start_sale_killed_at_random_instants(stack, rng):
    """Opening a sale is one transaction, then Redis: killed anywhere, a sale is absent or
    whole, and checkouts on the last one opened answer within the rules."""
    web = Web(stack)
    for _ in range(KILLS):
        opening = subprocess.Popen(
            [stack.python, "manage.py", "start_sale", "--items", "5000"],
            cwd=stack.root,
            env=stack.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.3, 2.5))
        opening.kill()
        opening.wait(timeout=30)
    counts = stack.query(
        "SELECT (SELECT count(*) FROM sales_item i WHERE i.sale_id = s.id) FROM sales_sale s"
    )
    assert {count for (count,) in counts} <= {5000}, "no sale half made"
    sale = stack.manage_json("start_sale", "--items", "50", "--user-limit", str(LIMIT))
    result = http_rush(
        [web.url], sale_item_ids(web.url, sale["id"]), slots=8, user_limit=LIMIT, abandon=0,
        deadline=120,
    )  # fmt: skip
    assert result.server_errors == 0, result.outcomes
    assert_within_the_rules(stack, sale["id"])


# -- tickets ----------------------------------------------------------------------------------


def burst_with_kills(stack: Stack, web: Web, rng: random.Random, seed: int) -> dict[str, int]:
    bodies = TicketFactory(seed=seed).bodies(3000)
    kills = web.kills

    def kill_at_random() -> None:
        for _ in range(KILLS // 2):
            time.sleep(rng.uniform(0.2, 1.0))
            web.kill_and_restart()

    result = post_tickets(web.url, bodies, 16, during=kill_at_random)
    assert web.kills == kills + KILLS // 2
    assert not [status for status in result["statuses"] if str(status).startswith("5")]
    acknowledged: dict[str, int] = result["acknowledged"]
    return acknowledged


def assert_each_stored_once(stack: Stack, acknowledged: dict[str, int]) -> None:
    settled = stack.tickets_settled(len(acknowledged), timeout=600)
    assert settled["settled"], settled
    stored = [str(pk) for (pk,) in stack.query("SELECT id FROM tickets_ticket")]
    assert len(stored) == len(set(stored))
    assert set(acknowledged) <= set(stored), "every acknowledged ticket stored"
    ((orders, parsed),) = stack.query(
        "SELECT (SELECT count(*) FROM tickets_order),"
        " (SELECT count(*) FROM tickets_ticket WHERE status = 'parsed')"
    )
    assert orders == parsed, "each parsed ticket counted once"


def test_web_killed_mid_burst_of_tickets(stack, rng):
    web = Web(stack)
    stack.start_worker()
    acknowledged = burst_with_kills(stack, web, rng, seed=21)
    acknowledged |= burst_with_kills(stack, web, rng, seed=22)
    assert_each_stored_once(stack, acknowledged)


@pytest.fixture
def stack_with_own_postgres() -> Iterator[Stack]:
    with Stack("faults_kills_pg", own_postgres=True) as stack:
        yield stack


def test_web_killed_while_postgresql_is_down_then_the_worker_killed_draining(
    stack_with_own_postgres, rng
):
    stack = stack_with_own_postgres
    assert stack.postgres is not None
    web = Web(stack)
    stack.postgres.stop("immediate")
    acknowledged = burst_with_kills(stack, web, rng, seed=23)
    assert stack.spool_files() > 0, "the burst was spooled"
    stack.postgres.start()
    for n in range(KILLS // 2):  # the drain and the parse batches, killed as they go
        stack.start_worker(f"worker-{n}")
        time.sleep(rng.uniform(0.5, 2.0))
        stack.stop(f"worker-{n}", signal.SIGKILL)
    stack.start_worker("worker-last")
    assert_each_stored_once(stack, acknowledged)
