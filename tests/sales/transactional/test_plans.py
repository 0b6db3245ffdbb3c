"""How the arbiter's statement is planned on the writer's session, on the real PostgreSQL."""

import math

import pytest
from django.db import connection

from sales.models import CheckoutAttempt, Outcome
from sales.stock import _attempts, refuse

pytestmark = [
    pytest.mark.skipif(
        connection.settings_dict["OPTIONS"].get("prepare_threshold") is None,
        reason="nothing is prepared behind PgBouncer",
    ),
    pytest.mark.django_db(transaction=True),
]


def _writer_plan(writes: int) -> tuple[str, int, str]:
    """Write `writes` attempts, then read the writer session's mode, its generic plans of the
    statement so far and the plan a run would use now."""
    for n in range(writes):
        refuse(user_id=f"u{n}", requested_id="1", outcome=Outcome.INVALID_REQUEST)
    own = _attempts._writer.get()._connection
    assert own is not None
    with own.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        (mode,) = cursor.fetchone()
        cursor.execute(
            "SELECT name, generic_plans FROM pg_prepared_statements WHERE statement LIKE %s",
            ["%claimed AS (%"],
        )
        ((name, generic),) = cursor.fetchall()
        # A batch of 16 proposed holds, as a rush writes them.
        columns = ("1", "1", "u", "1", "held", "c", "2026-01-01", "t", "2026-01-01")
        arrays = ", ".join("'{" + ",".join([value] * 16) + "}'" for value in columns)
        cursor.execute(f'EXPLAIN (COSTS OFF) EXECUTE "{name}"({arrays})')
        plan = "\n".join(line for (line,) in cursor.fetchall())
    return mode, generic, plan


def _add_held(item, first: int, count: int) -> None:
    """Held attempts written as a rush writes them, and counted in the table's statistics."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {CheckoutAttempt._meta.db_table} (sale_id, item_id, user_id,"
            " requested_id, outcome, code, expires_at, via_redis, created_at)"
            " SELECT %s, %s, 'u' || n, '1', 'held', 'c' || n, now(), false, now()"
            " FROM generate_series(%s::int, %s::int) AS n",
            [item.sale_id, item.pk, first, first + count - 1],
        )
        cursor.execute("SELECT pg_stat_force_next_flush()")
        cursor.execute("SELECT 1")  # idle in between: the counts are flushed


def _analyzed() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT coalesce(last_analyze, last_autoanalyze) IS NOT NULL"
            " FROM pg_stat_user_tables WHERE relid = %s::regclass",
            [CheckoutAttempt._meta.db_table],
        )
        return cursor.fetchone()[0]


def test_the_statement_is_planned_once_over_indexes_once_held_attempts_are_known(open_sale):
    item = open_sale(items=1).items.get()
    table = CheckoutAttempt._meta.db_table
    with connection.cursor() as cursor:  # as on a new database: no rows, no statistics, no count
        cursor.execute(f"TRUNCATE {table} CASCADE")
        cursor.execute("SELECT pg_stat_reset_single_table_counters(%s::regclass)", [table])
    _add_held(item, 1, 500)
    # Too few held attempts to be known: each run is planned.
    mode, generic, _ = _writer_plan(8)
    assert (mode, generic) == ("force_custom_plan", 0)

    # More, before the process looks again: each run is planned, and from statistics that do
    # not know them, looks a code up in their index, never reading them all.
    _add_held(item, 501, 1500)
    _attempts._plans.get().next_look = math.inf
    mode, generic, plan = _writer_plan(8)
    assert (mode, generic) == ("force_custom_plan", 0)
    assert "Index Cond: (code = " in plan, plan
    assert "Bitmap" not in plan, plan
    assert "Seq Scan on sales_checkoutattempt" not in plan, plan

    # At its next look, the writer finds the table, never analyzed, grown past the mark, and
    # analyzes it (unless autovacuum came first): its session keeps one plan from then on.
    _attempts._plans.reset()
    mode, generic, plan = _writer_plan(8)
    assert _analyzed()
    assert (mode, generic >= 1) == ("force_generic_plan", True)
    assert "using attempt_held_code_unique" in plan, plan
    assert "Seq Scan" not in plan, plan
    assert "Hash" not in plan, plan
