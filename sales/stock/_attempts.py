"""The one writer of checkout attempts: every attempt, decided or refused, is written here.

Outside a transaction (the Redis path, refusals) rows go through group commit; inside one (the
PostgreSQL path, which must write the hold before it lets go of its locks) the row is written in
that transaction.
"""

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from core.groupcommit import GroupCommit
from core.process import PerProcess
from core.sql import insert_rows
from sales.models import CheckoutAttempt
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


def _insert(db: BaseDatabaseWrapper, rows: Sequence[tuple[Any, ...]]) -> list[int]:
    """One statement for the rows; ids are drawn in the order of the rows."""
    returned = insert_rows(db, CheckoutAttempt, _COLUMNS, rows, suffix="RETURNING id")
    return sorted(pk for (pk,) in returned)


_writer = PerProcess(lambda: GroupCommit(_insert), close=GroupCommit.close)


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
    """Write one attempt and return it once it is committed (or written in the caller's
    transaction). Input kept as sent is cut to the column sizes, less what a text column
    cannot hold (NUL, lone surrogates)."""
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
    pk = _writer.get().insert(values)
    return CheckoutAttempt(id=pk, **dict(zip(_COLUMNS, values, strict=True)))


def record_decision(
    item: ItemInfo, user_id: str, decision: Decision, *, via_redis: bool
) -> CheckoutAttempt:
    """Write the attempt a path decided."""
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
