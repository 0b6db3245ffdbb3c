"""Group commit on the real PostgreSQL, with real threads racing into one writer."""

import threading
from collections.abc import Sequence

import pytest
from django.db import DataError, connection
from django.db.backends.base.base import BaseDatabaseWrapper

from core.groupcommit import GroupCommit
from sales.models import CheckoutAttempt, Outcome
from sales.stock import refuse
from tests.sales.transactional.rush import race

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL"),
    pytest.mark.django_db(transaction=True),
]


class SlowFirstStatement:
    """Tenths of each row, one statement per batch; the first statement waits, so that the
    other callers queue behind it and share the next one."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.lock = threading.Lock()

    def __call__(self, db: BaseDatabaseWrapper, rows: Sequence[int]) -> list[int]:
        with self.lock:
            self.batches.append(list(rows))
            first = len(self.batches) == 1
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT 10 / x FROM unnest(%s::int[]) WITH ORDINALITY AS t(x, n) "
                "WHERE pg_sleep(%s) IS NOT NULL ORDER BY n",
                [list(rows), 0.5 if first else 0],
            )
            return [value for (value,) in cursor.fetchall()]


def write_each(writer: GroupCommit, rows: list[int]) -> list[object]:
    def work(i: int) -> object:
        try:
            return writer.insert(rows[i])
        except DataError as failure:
            return type(failure).__name__

    return race(len(rows), work)


def test_concurrent_rows_share_statements_and_each_caller_gets_its_own_result():
    write = SlowFirstStatement()
    rows = list(range(1, 31))
    results = write_each(GroupCommit(write), rows)
    assert results == [10 // row for row in rows]
    assert sorted(row for batch in write.batches for row in batch) == rows
    assert len(write.batches) < len(rows)


def test_a_row_that_fails_fails_only_its_own_caller():
    write = SlowFirstStatement()
    rows = [*range(1, 16), 0, *range(16, 31)]  # 10 / 0: the statement of its batch fails
    results = write_each(GroupCommit(write), rows)
    assert results == ["DataError" if row == 0 else 10 // row for row in rows]
    assert any(0 in batch and len(batch) > 1 for batch in write.batches)


def test_each_attempt_is_committed_before_its_caller_is_answered():
    """Every caller looks for its own row through its own connection, which is not the
    writer's: it is there, committed, the moment the caller is answered."""

    def work(i: int) -> bool:
        attempt = refuse(user_id=f"u{i}", requested_id=str(i), outcome=Outcome.ITEM_NOT_FOUND)
        return CheckoutAttempt.objects.filter(pk=attempt.pk, user_id=f"u{i}").exists()

    assert race(40, work) == [True] * 40
    assert CheckoutAttempt.objects.count() == 40


@pytest.mark.skipif(
    connection.settings_dict["OPTIONS"].get("prepare_threshold") is None,
    reason="nothing is prepared behind PgBouncer",
)
def test_the_writer_prepares_its_statement_and_plans_it_anew_each_time():
    def write(db: BaseDatabaseWrapper, rows: Sequence[int]) -> list[tuple[str, int]]:
        with db.cursor() as cursor:
            cursor.execute(
                "SELECT current_setting('plan_cache_mode'), "
                "(SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql) "
                "FROM unnest(%s::int[])",
                [list(rows)],
            )
            return cursor.fetchall()

    writer = GroupCommit(write)
    try:
        answers = [writer.insert(row) for row in range(10)]
    finally:
        writer.close()
    assert {mode for mode, _ in answers} == {"force_custom_plan"}
    assert answers[-1][1] >= 1  # prepared after a few runs: parsed once per connection
