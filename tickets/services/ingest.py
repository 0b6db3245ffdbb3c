"""Acknowledging a ticket: make it durable, in PostgreSQL or else in the local spool, and
nothing more.

Tickets of concurrent requests are written together (`core.groupcommit`): one INSERT and one
commit per batch, each request answered once its own row is committed. After a failed write,
the database breaker sends tickets straight to the spool for a second instead of each waiting
for the connection pool to give up; then one request at a time tries the database again.

An `Idempotency-Key` names one ticket: the same key with the same body is answered with the
first ticket's receipt; the same key with another body is refused (`422`), and nothing is
stored. Both hold for a key whose ticket waits in this host's spool.
"""

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import DatabaseError
from django.db.backends.base.base import BaseDatabaseWrapper
from django.utils import timezone

from core.groupcommit import GroupCommit
from core.process import PerProcess
from core.sql import insert_rows
from tickets import metrics, spool
from tickets.exceptions import IdempotencyKeyReused, TicketNotStored
from tickets.models import Ticket, new_ticket_id

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Receipt:
    id: UUID
    received_at: datetime
    status: str = Ticket.Status.RECEIVED
    spooled: bool = False


class _DatabaseBreaker:
    """Open for `pause` seconds after a failed write; then one caller at a time probes."""

    def __init__(self, pause: float = 1.0) -> None:
        self.pause = pause
        self._lock = threading.Lock()
        self._open_until: float | None = None
        self._probing = False

    def allows(self) -> bool:
        with self._lock:
            if self._open_until is None:
                return True
            if self._probing or time.monotonic() < self._open_until:
                return False
            self._probing = True
            return True

    def record(self, *, ok: bool) -> None:
        with self._lock:
            self._probing = False
            self._open_until = None if ok else time.monotonic() + self.pause


_breaker = PerProcess(_DatabaseBreaker)

# What a ticket is acknowledged with; the database fills the rest (the model's db_default).
_COLUMNS = ("id", "raw", "sha256", "received_at", "idempotency_key")
_RECEIVED = metrics.tickets.labels(Ticket.Status.RECEIVED)


def _insert(db: BaseDatabaseWrapper, rows: Sequence[tuple[Any, ...]]) -> list[bool]:
    """One statement for the rows; a row whose idempotency key is taken is skipped, not an
    error. Returns which rows were stored."""
    returned = insert_rows(db, Ticket, _COLUMNS, rows, suffix="ON CONFLICT DO NOTHING RETURNING id")
    stored = {UUID(str(pk)) for (pk,) in returned}
    return [row[0] in stored for row in rows]


_writer = PerProcess(lambda: GroupCommit(_insert), close=GroupCommit.close)


def ticket_ingest(*, body: bytes, idempotency_key: str | None = None) -> Receipt:
    """Store the ticket durably and return its receipt.

    Raises `IdempotencyKeyReused` for a known key with another body, and `TicketNotStored`
    when neither the database nor the spool takes the ticket.
    """
    ticket_id, received_at = new_ticket_id(), timezone.now()
    sha256 = hashlib.sha256(body).hexdigest()
    if idempotency_key is not None:
        spooled = spool.find(idempotency_key)
        if spooled is not None:
            if spooled.sha256 != sha256:
                raise IdempotencyKeyReused()
            return Receipt(id=spooled.id, received_at=spooled.received_at, spooled=True)
    breaker = _breaker.get()
    if breaker.allows():
        try:
            stored = _writer.get().insert((ticket_id, body, sha256, received_at, idempotency_key))
        except DatabaseError:
            breaker.record(ok=False)
            logger.warning("database unavailable; spooling ticket %s", ticket_id, exc_info=True)
        else:
            breaker.record(ok=True)
            if not stored:
                return _first_with_key(idempotency_key, sha256)
            _RECEIVED.inc()
            return Receipt(id=ticket_id, received_at=received_at)
    try:
        spool.append(
            spool.SpooledTicket(
                id=ticket_id, received_at=received_at, idempotency_key=idempotency_key, body=body
            )
        )
    except spool.SpoolError as exc:
        logger.error("ticket refused: spool failed too (%s)", exc)
        raise TicketNotStored() from exc
    metrics.spooled.inc()
    return Receipt(id=ticket_id, received_at=received_at, spooled=True)


def _first_with_key(key: str | None, sha256: str) -> Receipt:
    first = (
        Ticket.objects.filter(idempotency_key=key)
        .values_list("id", "received_at", "sha256")
        .first()
    )
    if first is None:  # the key's ticket vanished between the two statements: an operator's act
        raise TicketNotStored()
    if first[2] != sha256:
        raise IdempotencyKeyReused()
    return Receipt(id=first[0], received_at=first[1])


def spool_drain() -> int | None:
    """Move spooled tickets into the database, each exactly once; None if another drainer is at
    work. Raises the database's error when it is still unreachable (the spool stays as it was)."""
    metrics.spool_depth.set(spool.depth())
    handed = spool.drain(_store_spooled)
    metrics.spool_depth.set(spool.depth())
    if handed:
        logger.info("drained %s tickets from the spool", handed)
    return handed


def _store_spooled(batch: list[spool.SpooledTicket]) -> None:
    """Store spooled tickets; the ticket id makes a second store of a record a no-op. A ticket
    whose idempotency key was taken meanwhile by another host's ticket is still stored,
    acknowledged as it was, without the key: never dropped."""
    keys = {item.idempotency_key for item in batch if item.idempotency_key}
    taken = dict(
        Ticket.objects.filter(idempotency_key__in=keys).values_list("idempotency_key", "id")
    )
    tickets = []
    for item in batch:
        key = item.idempotency_key
        if key is not None and taken.setdefault(key, item.id) != item.id:
            logger.warning(
                "spooled ticket %s repeats the idempotency key of ticket %s; stored without it",
                item.id,
                taken[key],
            )
            key = None
        tickets.append(
            Ticket(
                id=item.id,
                raw=item.body,
                sha256=hashlib.sha256(item.body).hexdigest(),
                received_at=item.received_at,
                idempotency_key=key,
            )
        )
    Ticket.objects.bulk_create(tickets, ignore_conflicts=True)
