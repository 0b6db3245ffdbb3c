"""Admission control's parts on their own: the adaptive limit, the gate and its queue, tokens."""

import math
import threading
import time
from collections import Counter

import pytest

from core.admission import AdaptiveLimit, Admission, due, token_issue, token_read

CONFIG = {
    "max_limit": 4,
    "min_limit": 4,
    "target": 0.1,
    "queue": 4,
    "max_wait": 5.0,
    "reserve": 0.5,
    "return_share": 0.25,
    "max_retry_after": 30,
}


def run_windows(limit: AdaptiveLimit, latency: float, windows: int, start: float) -> float:
    """Feed saturated samples of one latency until the limit was decided `windows` times;
    the clock after them."""
    now = start
    for _ in range(windows):
        now += limit.window / 4
        while not limit.sample(latency, saturated=True, now=now):
            now += limit.window / 4
    return now


def test_the_limit_shrinks_while_latency_is_over_the_target_and_grows_back():
    limit = AdaptiveLimit(maximum=32, minimum=2, target=0.1)
    now = run_windows(limit, 0.5, windows=10, start=0.0)
    assert limit.limit == pytest.approx(32 * 0.9**10)
    now = run_windows(limit, 0.5, windows=100, start=now)
    assert limit.limit == 2  # never below the minimum
    now = run_windows(limit, 0.01, windows=10, start=now)
    assert limit.limit == 12  # one more per window within the target
    run_windows(limit, 0.01, windows=100, start=now)
    assert limit.limit == 32  # never above the maximum


def test_the_limit_grows_only_when_it_was_reached():
    limit = AdaptiveLimit(maximum=32, minimum=2, target=0.1)
    run_windows(limit, 0.5, windows=20, start=0.0)
    before = limit.limit
    now = 100.0
    for _ in range(50):
        now += limit.window
        limit.sample(0.01, saturated=False, now=now)
    assert limit.limit == before


def test_new_checkouts_leave_the_reserved_share_to_priority():
    gate = Admission(CONFIG | {"queue": 0})
    assert gate.enter(False)
    assert gate.enter(False)
    assert not gate.enter(False)  # half of 4 reserved
    assert gate.enter(True)
    assert gate.enter(True)
    assert not gate.enter(True)
    gate.leave(None)
    assert not gate.enter(False)
    assert gate.enter(True)


def test_a_freed_slot_goes_to_a_waiting_priority_request_before_an_earlier_newcomer():
    gate = Admission(CONFIG | {"reserve": 0.0})
    for _ in range(4):
        assert gate.enter(True)
    admitted: list[str] = []

    def wait(name: str, priority: bool) -> None:
        if gate.enter(priority):
            admitted.append(name)

    newcomer = threading.Thread(target=wait, args=("newcomer", False))
    newcomer.start()
    while not gate.waiting:
        threading.Event().wait(0.001)
    returning = threading.Thread(target=wait, args=("returning", True))
    returning.start()
    while len(gate.waiting) < 2:
        threading.Event().wait(0.001)
    gate.leave(0.01)
    returning.join(timeout=5)
    assert admitted == ["returning"]
    gate.leave(0.01)
    newcomer.join(timeout=5)
    assert admitted == ["returning", "newcomer"]


def test_a_purchase_or_return_finding_the_queue_full_turns_away_its_last_newcomer():
    gate = Admission(CONFIG | {"queue": 2, "reserve": 0.0})
    for _ in range(4):
        assert gate.enter(True)
    admitted: dict[str, bool] = {}

    def wait(name: str, priority: bool) -> None:
        admitted[name] = gate.enter(priority)

    threads = [
        threading.Thread(target=wait, args=(name, priority))
        for name, priority in [("first", False), ("last", False), ("buyer", True)]
    ]
    for n, thread in enumerate(threads):
        thread.start()
        deadline = time.monotonic() + 5
        while len(gate.waiting) < min(n + 1, 2) and not admitted and time.monotonic() < deadline:
            threading.Event().wait(0.001)
    threads[1].join(timeout=5)
    assert admitted == {"last": False}  # pushed out at once, long before max_wait
    assert [w.priority for w in gate.waiting] == [True, False]
    gate.leave(0.01)
    gate.leave(0.01)
    for thread in threads:
        thread.join(timeout=5)
    assert admitted == {"last": False, "buyer": True, "first": True}
    assert gate.inside == 4


def test_past_a_full_queue_a_request_is_turned_away_at_once():
    gate = Admission(CONFIG | {"queue": 0})
    for _ in range(4):
        assert gate.enter(True)
    assert not gate.enter(True)
    assert gate.inside == 4


def test_a_request_waits_in_the_queue_no_longer_than_max_wait():
    gate = Admission(CONFIG | {"max_wait": 0.01})
    for _ in range(4):
        assert gate.enter(True)
    assert not gate.enter(True)
    assert gate.waiting == []


def test_return_times_are_spaced_by_the_rate_and_grow_with_those_waiting():
    gate = Admission(CONFIG | {"queue": 100})
    gate.limit.rate = 100.0
    times = [gate.return_at(1000.0) for _ in range(300)]
    assert times == sorted(times)
    assert times[0] == pytest.approx(1001.0)
    assert times[-1] == pytest.approx(1001.0 + 299 / (100 * 0.25))  # a quarter of the rate


def test_no_more_returns_a_second_than_the_queue_holds():
    # A crowd turned away at once comes back in whole-second lumps: each fits the queue.
    gate = Admission(CONFIG | {"queue": 8})
    gate.limit.rate = 1000.0
    times = [gate.return_at(1000.0) for _ in range(80)]
    assert times[-1] == pytest.approx(1001.0 + 79 / 8)
    lumps = Counter(math.ceil(t - 1000.0) for t in times)
    assert max(lumps.values()) <= 8


@pytest.mark.parametrize(
    ("presented_by", "at", "read", "due_"),
    [
        ("alice", 100.0, True, True),
        ("alice", 129.0, True, True),
        ("alice", 99.0, True, False),  # early: read (it keeps its place), not due
        ("alice", 131.0, False, None),  # stale
        ("bob", 100.0, False, None),  # another buyer's
    ],
)
def test_a_token_is_read_only_by_its_buyer_and_due_in_its_window(
    settings, presented_by, at, read, due_
):
    settings.ADMISSION = {**settings.ADMISSION, "token_ttl": 30}
    token = token_issue(buyer="alice", issued=90.0, return_at=100.0)
    payload = token_read(token, buyer=presented_by, now=at)
    assert (payload is not None) is read
    if payload is not None:
        assert due(payload, at) is due_


def test_a_forged_token_is_not_read():
    token = token_issue(buyer="alice", issued=90.0, return_at=100.0)
    payload, signature = token.rsplit(":", 1)
    assert token_read(f"{payload}:{signature[::-1]}", buyer="alice", now=100.0) is None
    assert token_read("not a token", buyer="alice", now=100.0) is None


def test_return_times_go_on_past_the_longest_wait_and_stay_spaced():
    gate = Admission(CONFIG)
    gate.limit.rate = 10.0
    times = [gate.return_at(1000.0) for _ in range(100)]
    assert times[-1] == pytest.approx(1001.0 + 99 / 2.5)  # past `max_retry_after`: see busy
    assert gate.return_at(1001.0) == pytest.approx(times[-1] + 1 / 2.5)
