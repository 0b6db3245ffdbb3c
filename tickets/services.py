"""Writes of the tickets app: acknowledge, parse, reprocess, drain the spool.

The table is the work queue. Acknowledging a ticket is one INSERT; it then nudges the parser, at
most once a second per process (a nudge scheduled for later covers the tickets in between).
Parsers claim the oldest `received` tickets with `FOR UPDATE SKIP LOCKED`, so any number of them
share the backlog, and a claim dies with its transaction: a crashed worker's batch is claimed
again by the next run (the nudges, and beat every minute).
"""

import hashlib
import logging
import threading
import time
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from django.db import DatabaseError, IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone

from config.celery import app as celery_app
from tickets import metrics, spool
from tickets.catalogue import Sighting, catalogue_record
from tickets.exceptions import TicketNotFound, TicketNotReprocessable, TicketNotStored
from tickets.models import Order, OrderLine, Ticket, new_ticket_id
from tickets.parsing import ParsedTicket, parse_ticket

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
_NUDGE_INTERVAL = 1.0
_SPOOL_CHECK_INTERVAL = 1.0
_RACE_ATTEMPTS = 3
# Unique violation on the parsed-once constraint, or a deadlock between two such waits.
_RACE_SQLSTATES = {"23505", "40P01"}


@dataclass(frozen=True)
class Receipt:
    id: UUID
    received_at: datetime
    status: str = Ticket.Status.RECEIVED


class _DatabaseBreaker:
    """After a failed write, tickets go straight to the spool for `pause` seconds instead of each
    waiting for the connection pool to give up; then one request at a time tries the database
    again while the others keep spooling."""

    def __init__(self, pause: float) -> None:
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


_breaker = _DatabaseBreaker(pause=1.0)


def ticket_ingest(*, body: bytes, idempotency_key: str | None = None) -> Receipt:
    """Make the ticket durable, in PostgreSQL or else in the spool, and nothing more.

    A repeated idempotency key answers with the first ticket's receipt. Raises TicketNotStored
    when neither store takes the ticket.
    """
    ticket_id, received_at = new_ticket_id(), timezone.now()
    if _breaker.allows():
        try:
            # A savepoint only where a conflict is expected: the plain path stays one statement.
            with transaction.atomic() if idempotency_key else nullcontext():
                Ticket.objects.create(
                    id=ticket_id,
                    raw=body,
                    sha256=hashlib.sha256(body).hexdigest(),
                    received_at=received_at,
                    idempotency_key=idempotency_key,
                )
        except IntegrityError:
            _breaker.record(ok=True)
            if idempotency_key is None:
                raise
            first = Ticket.objects.only("id", "received_at").get(idempotency_key=idempotency_key)
            return Receipt(id=first.id, received_at=first.received_at)
        except DatabaseError:
            _breaker.record(ok=False)
            logger.warning("database unavailable; spooling ticket %s", ticket_id, exc_info=True)
        else:
            _breaker.record(ok=True)
            metrics.tickets.labels(Ticket.Status.RECEIVED).inc()
            transaction.on_commit(_after_store)
            return Receipt(id=ticket_id, received_at=received_at)
    try:
        spool.append(
            spool.SpooledTicket(
                id=ticket_id,
                received_at=received_at,
                idempotency_key=idempotency_key,
                body=body,
            )
        )
    except spool.SpoolError as exc:
        logger.error("ticket refused: spool failed too (%s)", exc)
        raise TicketNotStored() from exc
    metrics.spooled.inc()
    if not celery_app.conf.task_always_eager:  # in-process, a drain now would only fail again
        _nudge_drain()
    return Receipt(id=ticket_id, received_at=received_at)


class _Nudges:
    """When the next parser run starts, per process (monotonic clock)."""

    lock = threading.Lock()
    next_run = float("-inf")
    next_spool_check = float("-inf")


def _after_store() -> None:
    _nudge_parser()
    _nudge_drain()


def _nudge_drain() -> None:
    """Queue a drain when the spool holds tickets, at most once per interval per process. The
    task retries while PostgreSQL is still down, so the spool empties without waiting for beat
    or for the next ticket."""
    now = time.monotonic()
    if now >= _Nudges.next_spool_check:
        _Nudges.next_spool_check = now + _SPOOL_CHECK_INTERVAL
        if spool.pending():
            from tickets.tasks import drain_spool

            _enqueue(drain_spool, expires=3600)


def _nudge_parser() -> None:
    from tickets.tasks import parse_backlog

    if celery_app.conf.task_always_eager:
        _enqueue(parse_backlog)
        return
    now = time.monotonic()
    with _Nudges.lock:
        if now <= _Nudges.next_run:
            return  # a run already scheduled starts after this commit and will see the ticket
        _Nudges.next_run = max(now, _Nudges.next_run + _NUDGE_INTERVAL)
        countdown = _Nudges.next_run - now
    _enqueue(parse_backlog, countdown=countdown)


def _enqueue(task: Any, *, expires: float = 60, **options: Any) -> None:
    """Best effort: the ticket is already durable, and beat sweeps what a lost nudge misses."""
    try:
        task.apply_async(retry=False, expires=expires, **options)
    except Exception:
        logger.warning("could not enqueue %s", task.name, exc_info=True)


@dataclass(frozen=True)
class BacklogRun:
    parsed: int
    out_of_time: bool


def tickets_parse_backlog(*, seconds: float = 50.0, batch_size: int = BATCH_SIZE) -> BacklogRun:
    """Parse claimable tickets, batch after batch, until none is left or time is up."""
    deadline = time.monotonic() + seconds
    parsed = 0
    while claimed := tickets_parse(limit=batch_size):
        parsed += claimed
        if time.monotonic() >= deadline:
            break
    metrics.backlog.set(Ticket.objects.filter(status=Ticket.Status.RECEIVED).count())
    return BacklogRun(parsed=parsed, out_of_time=bool(claimed))


def tickets_parse(*, ticket_ids: Sequence[UUID] | None = None, limit: int = BATCH_SIZE) -> int:
    """Claim up to `limit` received tickets (the oldest, or among `ticket_ids`), parse them and
    store the outcome; returns how many were claimed.

    A batch that fails for a reason other than the database being unreachable is parsed again
    one ticket at a time, so that one ticket that can't be stored doesn't hold up the others.
    """
    try:
        return _parse_batch(ticket_ids, limit)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("a batch of tickets failed; parsing them one at a time")
    ids = list(_claimable(ticket_ids, limit).values_list("id", flat=True))
    for ticket_id in ids:
        try:
            _parse_batch([ticket_id], 1)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            logger.exception("ticket %s could not be stored; rejected", ticket_id)
            Ticket.objects.filter(id=ticket_id, status=Ticket.Status.RECEIVED).update(
                status=Ticket.Status.REJECTED,
                parsed_at=timezone.now(),
                rejection_reason=f"the parse result could not be stored ({type(exc).__name__})",
            )
            metrics.tickets.labels(Ticket.Status.REJECTED).inc()
    return len(ids)


def _claimable(ticket_ids: Sequence[UUID] | None, limit: int) -> Any:
    tickets = Ticket.objects.filter(status=Ticket.Status.RECEIVED)
    if ticket_ids is not None:
        tickets = tickets.filter(id__in=ticket_ids)
    return tickets.order_by("received_at")[:limit]


def _is_race(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _RACE_SQLSTATES


def _parse_batch(ticket_ids: Sequence[UUID] | None, limit: int) -> int:
    for attempt in range(_RACE_ATTEMPTS):
        started = time.perf_counter()
        try:
            with transaction.atomic():
                tickets = list(
                    _claimable(ticket_ids, limit).select_for_update(skip_locked=True, no_key=True)
                )
                if not tickets:
                    return 0
                outcome = _store_outcomes(tickets)
        except (IntegrityError, OperationalError) as exc:
            # Another worker parsed the same content at the same moment: run again, and this
            # time see its ticket as the original.
            if attempt + 1 == _RACE_ATTEMPTS or not _is_race(exc):
                raise
            continue
        metrics.parse_seconds.observe(time.perf_counter() - started)
        for status, count in outcome.items():
            metrics.tickets.labels(status).inc(count)
        return len(tickets)
    raise AssertionError("unreachable")


def _store_outcomes(tickets: list[Ticket]) -> dict[str, int]:
    """Parse claimed tickets and write the results. Holds the claim's transaction."""
    now = timezone.now()
    results = {ticket.id: parse_ticket(bytes(ticket.raw)) for ticket in tickets}
    fingerprints = {
        ticket_id: result.fingerprint()
        for ticket_id, result in results.items()
        if isinstance(result, ParsedTicket)
    }
    originals: dict[str, UUID] = dict(
        Ticket.objects.filter(
            status=Ticket.Status.PARSED, fingerprint__in=set(fingerprints.values())
        ).values_list("fingerprint", "id")
    )
    orders: list[Order] = []
    lines: list[OrderLine] = []
    sightings: list[Sighting] = []
    outcome: dict[str, int] = {}
    for ticket in sorted(tickets, key=lambda t: (t.received_at, t.id)):
        result = results[ticket.id]
        ticket.parsed_at = now
        if not isinstance(result, ParsedTicket):
            ticket.status = Ticket.Status.REJECTED
            ticket.rejection_line = result.line
            ticket.rejection_reason = result.reason
        else:
            ticket.order_number = result.order
            ticket.fingerprint = fingerprints[ticket.id]
            ticket.anomalies = [vars(anomaly) for anomaly in result.anomalies]
            ticket.unknown_headers = result.unknown_headers
            original = originals.setdefault(ticket.fingerprint, ticket.id)
            if original != ticket.id:
                ticket.status = Ticket.Status.DUPLICATE
                ticket.duplicate_of_id = original
            else:
                ticket.status = Ticket.Status.PARSED
                orders.append(
                    Order(
                        ticket=ticket,
                        number=result.order,
                        vat=result.vat,
                        total=result.total,
                        received_at=ticket.received_at,
                    )
                )
                lines.extend(
                    OrderLine(
                        order_id=ticket.id,
                        line=item.line,
                        product_id=item.product_id,
                        name=item.name,
                        price=item.price,
                    )
                    for item in result.lines
                )
                last_rows = {item.product_id: item for item in result.lines}
                sightings.extend(
                    Sighting(item.product_id, item.name, item.price, ticket.received_at, ticket.id)
                    for item in last_rows.values()
                )
        outcome[ticket.status] = outcome.get(ticket.status, 0) + 1

    catalogue_record(sightings=sightings)
    Order.objects.bulk_create(orders)
    OrderLine.objects.bulk_create(lines, batch_size=1000)
    # Last: a concurrent parse of the same content makes this fail (or wait, then fail) on the
    # parsed-once constraint, after every product lock this transaction needs is already held.
    # The rows exist and are claimed: this upsert is a one-statement update of all of them.
    Ticket.objects.bulk_create(
        tickets,
        update_conflicts=True,
        unique_fields=["id"],
        update_fields=[
            "status",
            "parsed_at",
            "order_number",
            "fingerprint",
            "duplicate_of",
            "anomalies",
            "unknown_headers",
            "rejection_line",
            "rejection_reason",
        ],
    )
    return outcome


def ticket_reprocess(*, ticket_id: UUID) -> Ticket:
    """Parse a received or rejected ticket again, now; returns it with its new status."""
    with transaction.atomic():
        ticket = Ticket.objects.select_for_update(no_key=True).filter(id=ticket_id).first()
        if ticket is None:
            raise TicketNotFound()
        if ticket.status not in (Ticket.Status.RECEIVED, Ticket.Status.REJECTED):
            raise TicketNotReprocessable()
        ticket.status = Ticket.Status.RECEIVED
        ticket.rejection_line = None
        ticket.rejection_reason = ""
        ticket.save(update_fields=["status", "rejection_line", "rejection_reason"])
    tickets_parse(ticket_ids=[ticket_id], limit=1)
    ticket.refresh_from_db()
    return ticket


def spool_drain() -> int | None:
    """Move spooled tickets into the database, each exactly once; None if another drainer is at
    work. Raises the database's error when it is still unreachable (the spool stays as it was)."""
    metrics.spool_depth.set(spool.depth())
    handed = spool.drain(_store_spooled)
    metrics.spool_depth.set(spool.depth())
    if handed:
        logger.info("drained %s tickets from the spool", handed)
        _nudge_parser()
    return handed


def _store_spooled(batch: list[spool.SpooledTicket]) -> None:
    """Store spooled tickets; the ticket id makes a second store of a record a no-op. A ticket
    whose idempotency key was taken meanwhile (the sender retried once the database was back)
    is still stored, acknowledged as it was, without the key: never dropped."""
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
