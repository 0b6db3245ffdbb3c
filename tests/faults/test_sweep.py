"""Malformed requests over every path, through the real server, with everything up, then Redis
killed, then PostgreSQL stopped: no 5xx but a 503 with Retry-After for a service that is down,
and every error from the application in the one JSON shape (testkit/sweep.py)."""

from collections.abc import Iterator

import pytest

from testkit.stack import Stack
from testkit.sweep import DOWN_PROBES, PROBES, Answer, sweep, violations

pytestmark = pytest.mark.faults

# Fewer methods than the full sweep (`make fuzz`), to keep the suite quick; these include an
# unknown one and one that carries a body.
METHODS = ["GET", "POST", "PUT", "OPTIONS", "FOO"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack("faults_sweep", own_postgres=True) as stack:
        yield stack


@pytest.fixture(scope="module")
def url(stack: Stack) -> str:
    url = stack.start_web(workers=1, threads=8, server="granian")
    stack.manage("start_sale", "--hourly")
    return url


def answer(answers: list[Answer], probe: str, method: str, path: str) -> Answer:
    return next(a for a in answers if (a.probe, a.method, a.path) == (probe, method, path))


def test_with_everything_up_nothing_fails_and_every_error_has_the_shape(url):
    answers = sweep(url, PROBES, METHODS)
    assert violations(answers, backend_down=False) == []
    assert answer(answers, "NUL in path", "GET", "/products/abc").status == 400
    assert answer(answers, "deep JSON array", "POST", "/checkout").status == 400
    assert answer(answers, "form field flood", "POST", "/checkout").status == 400
    assert answer(answers, "chunked ticket", "POST", "/ticket").status == 202


def test_with_redis_killed_nothing_fails(stack, url):
    stack.redis.kill()
    answers = sweep(url, PROBES, METHODS)
    assert violations(answers, backend_down=True) == []
    assert answer(answers, "valid-looking fields", "POST", "/checkout").status < 500


def test_with_postgresql_stopped_requests_that_need_it_are_503_with_retry_after(stack, url):
    assert stack.postgres is not None
    stack.postgres.stop()
    answers = sweep(url, DOWN_PROBES, METHODS, concurrency=16)
    assert violations(answers, backend_down=True) == []
    checkout = answer(answers, "valid-looking fields", "POST", "/checkout")
    assert (checkout.status, checkout.shaped, checkout.retry_after) == (503, True, "5")
