"""Multi-row INSERTs and UPDATEs written out: the hot and the bulk writes, without model
instances. Table and column names come from the models; every value is a bound parameter.

Building model instances and compiling the ORM's bulk INSERT costs several times the database's
own work on the service's hottest statements (a checkout attempt, a ticket acknowledgement) and
on a parsed batch's orders and lines.
"""

import json
from collections.abc import Callable, Sequence
from typing import Any

from django.db import models
from django.db.backends.base.base import BaseDatabaseWrapper


def insert_rows(
    db: BaseDatabaseWrapper,
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    suffix: str = "",
) -> list[tuple[Any, ...]]:
    """INSERT `rows` (Python values, in the order of `columns`, which are the fields' column
    names) and return the rows `suffix` (e.g. `RETURNING id`) gives. Runs in the caller's
    transaction, or is one in autocommit."""
    head = f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
    return _run(db, model, columns, rows, lambda source: f"{head}{source} {suffix}")


def update_rows(
    db: BaseDatabaseWrapper,
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
) -> None:
    """UPDATE, for each of `rows`, the row whose key (the first of `columns`) it names, setting
    the other columns to its values."""
    key, *rest = columns
    table = model._meta.db_table
    names = [f"c{n}" for n in range(len(columns))]
    assignments = ", ".join(
        f"{column} = v.{name}" for column, name in zip(rest, names[1:], strict=True)
    )
    _run(
        db,
        model,
        columns,
        rows,
        lambda source: (
            f"UPDATE {table} SET {assignments} FROM ({source}) AS v WHERE {table}.{key} = v.c0"
        ),
    )


def _run(
    db: BaseDatabaseWrapper,
    model: type[models.Model],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    statement: Callable[[str], str],
) -> list[tuple[Any, ...]]:
    """Run `statement(source)` with the rows as its source of values, columns named c0, c1...,
    and return what it returns.

    On PostgreSQL the rows travel as one array per column (`unnest`): a short statement text
    that psycopg and PostgreSQL parse once, whatever the number of rows. Elsewhere (the embedded
    SQLite default) they go as a VALUES list of the values as the fields store them, one
    statement per `_MAX_PARAMETERS` values.
    """
    if not rows:
        return []
    if db.vendor == "postgresql":
        source, json_columns = _unnest(db, model, tuple(columns))
        arrays = [
            [None if value is None else json.dumps(value) for value in values]
            if is_json
            else list(values)
            for is_json, values in zip(json_columns, zip(*rows, strict=True), strict=True)
        ]
        with db.cursor() as cursor:
            cursor.execute(statement(source), arrays)
            return cursor.fetchall() if cursor.description else []
    fields = [model._meta.get_field(column) for column in columns]
    names = _names(len(columns))
    returned: list[tuple[Any, ...]] = []
    row = "(" + ", ".join(["%s"] * len(columns)) + ")"
    chunk = _MAX_PARAMETERS // len(columns)
    with db.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            values = ", ".join([row] * len(part))
            cursor.execute(
                # A CTE names the VALUES columns, which SQLite cannot alias; `WHERE true` keeps
                # SQLite from reading an upsert's ON CONFLICT as a join's ON.
                f"WITH u({names}) AS (VALUES {values}) " + statement("SELECT * FROM u WHERE true"),
                [
                    field.get_db_prep_save(value, db)  # type: ignore[union-attr]
                    for values_ in part
                    for field, value in zip(fields, values_, strict=True)
                ],
            )
            returned += cursor.fetchall() if cursor.description else []
    return returned


def _names(count: int) -> str:
    """The source's column names: c0, c1..."""
    return ", ".join(f"c{n}" for n in range(count))


_Source = tuple[str, tuple[bool, ...]]
_unnests: dict[tuple[type[models.Model], tuple[str, ...]], _Source] = {}


def _unnest(
    db: BaseDatabaseWrapper, model: type[models.Model], columns: tuple[str, ...]
) -> _Source:
    """The rows' source on PostgreSQL, one array per column, and which columns are JSON: the
    same for every call with these columns, so worked out once. The arrays travel in binary,
    which psycopg packs without escaping each value (a ticket's body is kilobytes)."""
    if (model, columns) not in _unnests:
        fields = [model._meta.get_field(column) for column in columns]
        types = [field.db_type(db).split("(")[0] for field in fields]  # type: ignore[union-attr]
        casts = ", ".join(f"%b::{db_type}[]" for db_type in types)
        source = f"SELECT * FROM unnest({casts}) AS u({_names(len(columns))}) WHERE true"
        _unnests[model, columns] = (source, tuple(isinstance(f, models.JSONField) for f in fields))
    return _unnests[model, columns]


_MAX_PARAMETERS = 32_000  # SQLite takes up to 32,766 parameters in one statement
