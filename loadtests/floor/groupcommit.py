"""Group commit at its least: the rows of concurrent requests of a process committed by one
`INSERT ... SELECT FROM unnest(...)`, each caller answered once its own row is committed.

A caller queues its row and waits on the condition while a statement is in flight. The first to
find none leads: it takes every queued row, runs the statement on the process's one connection
(autocommit: the statement is the commit), hands each caller its result and wakes them all; a
caller still queued then leads the next batch. Nothing waits on a timer.
"""

import threading
from collections.abc import Sequence
from typing import Any

import psycopg


class _Queued:
    __slots__ = ("done", "error", "result", "row")

    def __init__(self, row: Sequence[Any]) -> None:
        self.row = row
        self.result: Any = None
        self.error: BaseException | None = None
        self.done = False


class GroupCommit:
    """`types` are the columns' PostgreSQL types, in the order of a row's values. With
    `returning`, a caller gets its row's value of that serial column, else None."""

    def __init__(self, url: str, table: str, columns: dict[str, str], returning: str = "") -> None:
        casts = ", ".join(f"%s::{db_type}[]" for db_type in columns.values())
        self.statement = (
            f"INSERT INTO {table} ({', '.join(columns)}) SELECT * FROM unnest({casts})"
            + (f" RETURNING {returning}" if returning else "")
        )
        self.url = url
        self.db: psycopg.Connection | None = None
        self.changed = threading.Condition()
        self.queue: list[_Queued] = []
        self.leading = False

    def write(self, row: Sequence[Any]) -> Any:
        mine = _Queued(row)
        with self.changed:
            self.queue.append(mine)
            while self.leading and not mine.done:
                self.changed.wait()
            if not mine.done:
                self.leading = True
                batch, self.queue = self.queue, []
        if not mine.done:
            self._lead(batch)
        if mine.error is not None:
            raise mine.error
        return mine.result

    def _lead(self, batch: list[_Queued]) -> None:
        results: list[Any] = [None] * len(batch)
        error: BaseException | None = RuntimeError("the batch's leader was interrupted")
        try:
            results = self._insert([queued.row for queued in batch])
            error = None
        except Exception as failure:
            error = failure
            if self.db is not None:
                self.db.close()
                self.db = None
        finally:
            with self.changed:
                for queued, result in zip(batch, results, strict=True):
                    queued.result, queued.error, queued.done = result, error, True
                self.leading = False
                self.changed.notify_all()

    def _insert(self, rows: list[Sequence[Any]]) -> list[Any]:
        if self.db is None:
            self.db = psycopg.connect(self.url, autocommit=True)
        cursor = self.db.execute(
            self.statement, [list(values) for values in zip(*rows, strict=True)]
        )
        if cursor.description is None:
            return [None] * len(rows)
        # A serial is drawn in the order of the rows.
        return sorted(value for (value,) in cursor.fetchall())
