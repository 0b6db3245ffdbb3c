"""Group commit: the rows of concurrent requests written by one transaction and one commit.

A request hands its row to `GroupCommit.insert` and blocks until the statement that carries it
has committed, then gets its own result. The first caller to find no write in flight leads: it
writes every row waiting (up to `max_rows`) on the writer's own connection, in autocommit, so
a single statement is the commit. The writer's connection is its own, outside the connection pool,
so that a leader never waits for a pool that the waiting callers have emptied. Rows that
arrive meanwhile wait for the next statement, led by the first of them. Nothing waits on a
timer: a lone request is written at once, and batches grow with the load, as a database's own
group commit does.

A caller is told of success only once its row is committed. A batch that fails is written again
row by row, so that one bad row fails only its own request; a database that is unreachable
fails every row of the batch without retrying each. A process killed mid-batch leaves those
requests unanswered and their rows absent, or (past the commit) present and unanswered, never
answered and absent.
"""

import threading
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

from django.db import DEFAULT_DB_ALIAS, InterfaceError, OperationalError, connection, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.utils import load_backend

Row = TypeVar("Row")
Result = TypeVar("Result")


def _unpooled_connection(custom_plans: bool) -> BaseDatabaseWrapper:
    settings_dict = {**connections.settings[DEFAULT_DB_ALIAS]}
    options = {k: v for k, v in settings_dict.get("OPTIONS", {}).items() if k != "pool"}
    if settings_dict["ENGINE"].endswith("postgresql"):
        # Waiting callers wait for this connection: an unreachable server must fail it soon.
        options.setdefault("connect_timeout", 5)
        # Prepared (parsed once) as the pool's statements are, but planned anew each time: a
        # writer's tables grow from empty within the first minute of a sale, before
        # autovacuum's first ANALYZE, and a generic plan kept from then scans what became
        # thousands of rows (a rush's rate fell threefold in a minute). A writer that knows
        # when its tables have statistics may switch its session to one generic plan then
        # (sales/stock/_attempts.py).
        if custom_plans and options.get("prepare_threshold") is not None:
            custom = "-c plan_cache_mode=force_custom_plan"
            options["options"] = f"{options.get('options', '')} {custom}".strip()
    settings_dict["OPTIONS"] = options
    backend = load_backend(settings_dict["ENGINE"])
    own: BaseDatabaseWrapper = backend.DatabaseWrapper(settings_dict, DEFAULT_DB_ALIAS)
    own.inc_thread_sharing()  # used by leaders of any thread, one at a time
    return own


class _Slot:
    __slots__ = ("done", "error", "result", "row", "wake")

    def __init__(self, row: Any) -> None:
        self.row = row
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False
        self.wake = threading.Event()  # set when done, or when this slot is to lead


class GroupCommit(Generic[Row, Result]):
    """`write(connection, rows)` writes the rows in ONE transaction (one statement, or one
    round trip of statements) and returns their results in order. `custom_plans=False` lets
    the writer's session keep generic plans, for statements that find their rows by unique
    keys, whatever the tables' size."""

    def __init__(
        self,
        write: Callable[[BaseDatabaseWrapper, Sequence[Row]], list[Result]],
        max_rows: int = 128,
        *,
        custom_plans: bool = True,
    ) -> None:
        self._write = write
        self._max_rows = max_rows
        self._custom_plans = custom_plans
        self._connection: BaseDatabaseWrapper | None = None  # used by one leader at a time
        self._lock = threading.Lock()
        self._queue: list[_Slot] = []
        self._busy = False  # a leader is writing; when False, the queue is empty

    def insert(self, row: Row) -> Result:
        """Write `row` and return its result once committed; raises what its write raised."""
        if connection.in_atomic_block:
            # The caller's transaction decides when this row commits: no one else may ride it.
            return self._write(connection, [row])[0]
        slot = _Slot(row)
        with self._lock:
            self._queue.append(slot)
            lead = not self._busy
            self._busy = True
        if not lead:
            # No timeout: the wait ends with the leader's statement, which the database ends.
            # Given up early, a row could still commit after its caller was told it failed.
            slot.wake.wait()
        if not slot.done:
            self._lead()
        if slot.error is not None:
            raise slot.error
        result: Result = slot.result
        return result

    def _lead(self) -> None:
        """Write the waiting rows, this caller's first among them, then hand over."""
        with self._lock:
            batch = self._queue[: self._max_rows]
            del self._queue[: self._max_rows]
        try:
            self._write_batch(batch)
        finally:
            for slot in batch:
                slot.done = True
            with self._lock:
                successor = self._queue[0] if self._queue else None
                self._busy = successor is not None
            for slot in batch:
                slot.wake.set()
            if successor is not None:
                successor.wake.set()

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def _write_batch(self, batch: list[_Slot]) -> None:
        if self._connection is None:
            self._connection = _unpooled_connection(self._custom_plans)
        own = self._connection
        try:
            results = self._write(own, [slot.row for slot in batch])
        except (OperationalError, InterfaceError) as unreachable:
            self.close()  # the next batch connects again
            for slot in batch:
                slot.error = unreachable
            return
        except Exception as failure:
            if len(batch) == 1:
                batch[0].error = failure
                return
            for slot in batch:
                try:
                    slot.result = self._write(own, [slot.row])[0]
                except Exception as own_failure:
                    slot.error = own_failure
            return
        except BaseException as interrupted:
            for slot in batch:
                slot.error = interrupted
            raise
        for slot, result in zip(batch, results, strict=True):
            slot.result = result
