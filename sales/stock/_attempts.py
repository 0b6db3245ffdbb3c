"""The one writer of checkout attempts, and the arbiter of every checkout answer.

Every attempt, decided or refused, is written here, and the answer is what this writer returns,
never what the path that decided it proposed. On PostgreSQL one statement, group-committed with
the attempts of concurrent requests, claims the item for each proposed hold and writes every
attempt: a hold is written only if the item's row (`Item.claimed_*`, `Item.sold`) is unsold
and unclaimed, or claimed already under the same code; otherwise the attempt is written with
what PostgreSQL knows instead (`item_sold`, `item_reserved`, or the buyer's own live hold).
The claim is a conditional UPDATE, which PostgreSQL re-checks on the row's latest version, so
concurrent statements never both claim an item. A process killed before the commit has told
nobody anything; killed after it, it leaves a committed row that nobody was told of.

Inside a transaction (the PostgreSQL path, which decides under the item's lock) the statement
runs in that transaction and claims as it decided. Elsewhere than PostgreSQL (the embedded
SQLite default, which has no Redis path) attempts are plain INSERTs and holds are claimed by a
plain UPDATE.
"""

import time
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.models import UniqueConstraint
from django.utils import timezone

from core.groupcommit import GroupCommit
from core.process import PerProcess
from core.sql import insert_rows, update_rows
from sales.models import CheckoutAttempt, Item, Outcome
from sales.stock._decision import Decision
from sales.stock._items import ItemInfo

_COLUMNS = (
    "sale_id",
    "item_id",
    "user_id",
    "requested_id",
    "outcome",
    "code",
    "expires_at",
    "via_redis",
    "created_at",
)
_ATTEMPTS = CheckoutAttempt._meta.db_table
_ITEMS = Item._meta.db_table
PROPOSED = (Outcome.HELD, Outcome.EXISTING)  # the outcomes that claim the item
_PROPOSED = "(" + ", ".join(f"'{outcome}'" for outcome in PROPOSED) + ")"

# The rows arrive as one array per column; `n` keeps their order. `verdict` and `decided` are
# evaluated once: each row's verdict is decided once, and each draws its id in `decided`, so the
# answer reads the same ids back.
_CLAIM_AND_RECORD = f"""
WITH u AS (
    SELECT * FROM unnest(%b::bigint[], %b::bigint[], %b::varchar[], %b::varchar[],
        %b::varchar[], %b::varchar[], %b::timestamptz[], %b::boolean[], %b::timestamptz[])
        WITH ORDINALITY AS u({", ".join(_COLUMNS)}, n)
), claimed AS (
    UPDATE {_ITEMS} i
    SET claimed_by = u.user_id, claim_code = u.code, claimed_until = u.expires_at
    FROM u
    WHERE u.outcome IN {_PROPOSED} AND i.id = u.item_id AND NOT i.sold
        AND (i.claimed_until IS NULL OR i.claimed_until <= u.created_at
            OR (i.claimed_by = u.user_id AND i.claim_code = u.code))
    RETURNING u.n
), verdict AS MATERIALIZED (
    SELECT u.*, i.claim_code AS their_code, i.claimed_until AS their_until, CASE
        WHEN u.outcome NOT IN {_PROPOSED} THEN u.outcome
        WHEN u.n IN (SELECT n FROM claimed) THEN CASE
            -- the hold under this code, if stored already (a subquery with LIMIT is run per
            -- row, over the unique index, never as a join or a hash of every held attempt)
            WHEN (SELECT true FROM {_ATTEMPTS} stored
                WHERE stored.code = u.code AND stored.outcome = 'held' LIMIT 1)
            THEN 'existing' ELSE 'held' END
        -- the same buyer's repeated request, claimed by its twin in this very statement
        WHEN EXISTS (SELECT FROM claimed c JOIN u twin ON twin.n = c.n
            WHERE twin.item_id = u.item_id AND twin.user_id = u.user_id AND twin.code = u.code)
        THEN 'same'
        WHEN i.sold THEN 'item_sold'
        WHEN i.claimed_by = u.user_id AND i.claimed_until > u.created_at THEN 'theirs'
        ELSE 'item_reserved'
    END AS verdict
    FROM u LEFT JOIN {_ITEMS} i ON i.id = u.item_id
), decided AS (
    SELECT nextval(pg_get_serial_sequence('{_ATTEMPTS}', 'id')) AS id,
        sale_id, item_id, user_id, requested_id, via_redis, created_at, n,
        CASE WHEN verdict IN ('same', 'theirs') THEN 'existing' ELSE verdict END AS outcome,
        CASE WHEN verdict IN ('held', 'existing', 'same') THEN code
            WHEN verdict = 'theirs' THEN their_code ELSE '' END AS code,
        CASE WHEN verdict IN ('held', 'existing', 'same') THEN expires_at
            WHEN verdict = 'theirs' THEN their_until END AS expires_at
    FROM verdict
), recorded AS (
    INSERT INTO {_ATTEMPTS} (id, {", ".join(_COLUMNS)})
    SELECT id, {", ".join(_COLUMNS)} FROM decided
)
SELECT id, outcome, code, expires_at FROM decided ORDER BY n
"""  # noqa: S608 (table names from the models, values bound)


@dataclass(frozen=True)
class _Written:
    id: int
    outcome: str
    code: str
    expires_at: datetime | None


def _write(db: BaseDatabaseWrapper, rows: Sequence[tuple[Any, ...]]) -> list[_Written]:
    """One statement for the rows, answered in their order."""
    if db.vendor != "postgresql":
        # No Redis path here: the PostgreSQL path decided under the item's lock, so its holds
        # are claimed as decided.
        returned = insert_rows(db, CheckoutAttempt, _COLUMNS, rows, suffix="RETURNING id")
        claims = [(row[1], row[2], row[5], row[6]) for row in rows if row[4] == Outcome.HELD]
        update_rows(db, Item, ("id", "claimed_by", "claim_code", "claimed_until"), claims)
        ids = sorted(pk for (pk,) in returned)  # drawn in the order of the rows
        return [_Written(pk, row[4], row[5], row[6]) for pk, row in zip(ids, rows, strict=True)]
    if not db.in_atomic_block:
        _plan_once_when_known(db)
    with db.cursor() as cursor:
        cursor.execute(
            _CLAIM_AND_RECORD,
            [list(column) for column in zip(*rows, strict=True)],
        )
        return [_Written(*row) for row in cursor.fetchall()]


# The writer's session plans the statement on every run (core/groupcommit.py), about half of
# PostgreSQL's work for it. Once the held attempts have statistics, the session keeps one
# generic plan, over indexes. Made earlier, on an empty table, that plan reads every held
# attempt to find one code: it costs nothing while the table is empty and ever more as it
# fills (README "Performance"). PostgreSQL makes the plan anew whenever the table's statistics
# change (autovacuum's ANALYZE). A table that has never had statistics (a new database) and has
# grown by as many rows is analyzed by the writer itself, rather than planned on every run until
# autovacuum's next round (up to a minute of the first rush); never while another analysis or a
# vacuum holds the table. Not behind PgBouncer: nothing is prepared there, and a session's
# setting would outlive its transaction.
_KNOWN_HELD = 1000
_LOOK_EVERY = 1.0  # seconds between looks at the statistics, per process
# The unique index of held attempts' codes, its statistics those of the held attempts.
_HELD_CODES = next(
    c.name for c in CheckoutAttempt._meta.constraints if isinstance(c, UniqueConstraint)
)
# The held attempts as the statistics count them, and whether the table, never analyzed, has
# grown by as many rows as would make them known.
_LOOK = (
    "SELECT i.reltuples, t.reltuples < 0 AND s.n_mod_since_analyze >= %s"
    " FROM pg_class i, pg_class t JOIN pg_stat_user_tables s ON s.relid = t.oid"
    " WHERE i.oid = %s::regclass AND t.oid = %s::regclass"
)


class _Plans:
    """The writer sessions of this process switched to the generic plan, and when the process
    next looks at the statistics."""

    def __init__(self) -> None:
        self.switched: weakref.WeakSet[Any] = weakref.WeakSet()
        self.next_look = 0.0


_plans = PerProcess(_Plans)


def _plan_once_when_known(db: BaseDatabaseWrapper) -> None:
    if db.settings_dict["OPTIONS"].get("prepare_threshold") is None:
        return
    db.ensure_connection()
    session, plans = db.connection, _plans.get()
    if session in plans.switched or time.monotonic() < plans.next_look:
        return
    plans.next_look = time.monotonic() + _LOOK_EVERY
    with db.cursor() as cursor:
        look: list[int | str] = [_KNOWN_HELD, _HELD_CODES, _ATTEMPTS]
        cursor.execute(_LOOK, look)
        held, grown_unknown = cursor.fetchone()
        if held < _KNOWN_HELD and grown_unknown:
            cursor.execute(f"ANALYZE (SKIP_LOCKED) {_ATTEMPTS}")
            cursor.execute(_LOOK, look)
            held, _ = cursor.fetchone()
        if held < _KNOWN_HELD:
            return
        cursor.execute(
            "SELECT set_config('plan_cache_mode', 'force_generic_plan', false),"
            " set_config('enable_seqscan', 'off', false),"
            " set_config('enable_hashjoin', 'off', false),"
            " set_config('enable_mergejoin', 'off', false)"
        )
    plans.switched.add(session)


_writer = PerProcess(lambda: GroupCommit(_write), close=GroupCommit.close)


def record(
    *,
    sale_id: int | None,
    item_id: int | None,
    user_id: str,
    requested_id: str,
    outcome: str,
    code: str = "",
    expires_at: datetime | None = None,
    via_redis: bool = False,
) -> CheckoutAttempt:
    """Write one attempt and return it as committed (or as written in the caller's
    transaction): a proposed hold comes back as what PostgreSQL decided. Input kept as sent is
    cut to the column sizes, less what a text column cannot hold (NUL, lone surrogates)."""
    values = (
        sale_id,
        item_id,
        _storable(user_id)[:64],
        _storable(requested_id)[:32],
        outcome,
        code,
        expires_at,
        via_redis,
        timezone.now(),
    )
    written = _writer.get().insert(values)
    fields = dict(zip(_COLUMNS, values, strict=True))
    fields.update(outcome=written.outcome, code=written.code, expires_at=written.expires_at)
    return CheckoutAttempt(id=written.id, **fields)


def record_decision(
    item: ItemInfo, user_id: str, decision: Decision, *, via_redis: bool
) -> CheckoutAttempt:
    """Write the attempt a path decided; the answer is what PostgreSQL made of it."""
    return record(
        sale_id=item.sale_id,
        item_id=item.id,
        user_id=user_id,
        requested_id=str(item.id),
        outcome=decision.outcome,
        code=decision.code,
        expires_at=decision.expires_at,
        via_redis=via_redis,
    )


def _storable(text: str) -> str:
    if text.isascii() and "\x00" not in text:
        return text
    return text.encode("utf-8", "replace").decode().replace("\x00", "")
