"""The parse pipeline: the ticket table is the work queue.

Parsers claim the oldest `received` tickets with `FOR UPDATE SKIP LOCKED`, so any number of them
share the backlog, and a claim dies with its transaction: a crashed worker's batch is claimed
again by the next run. Each claimed batch is parsed (`tickets.parsing`, pure), and its orders,
lines and catalogue updates (`tickets.catalogue`) are stored in the claim's transaction.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from django.db import IntegrityError, InterfaceError, OperationalError, transaction
from django.utils import timezone
from prometheus_client import Counter

from core.sql import insert_rows, update_rows
from tickets import metrics
from tickets.catalogue import Sighting, catalogue_record
from tickets.exceptions import TicketNotFound, TicketNotReprocessable
from tickets.models import Order, OrderLine, Ticket
from tickets.parsing import ParsedTicket, parse_ticket

logger = logging.getLogger(__name__)

BATCH_SIZE = 500
_RACE_ATTEMPTS = 3
# Unique violation on the parsed-once constraint, or a deadlock between two such waits.
_RACE_SQLSTATES = {"23505", "40P01"}


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


def tickets_parse(
    *,
    ticket_ids: Sequence[UUID] | None = None,
    limit: int = BATCH_SIZE,
    counter: Counter = metrics.tickets,
) -> int:
    """Claim up to `limit` received tickets (the oldest, or among `ticket_ids`), parse them and
    store the outcome, counted in `counter`; returns how many were claimed.

    A batch that fails for a reason other than the database being unreachable is parsed again
    one ticket at a time, so that one ticket that can't be stored doesn't hold up the others.
    """
    try:
        return _parse_batch(ticket_ids, limit, counter)
    except (OperationalError, InterfaceError):
        raise
    except Exception:
        logger.exception("a batch of tickets failed; parsing them one at a time")
    ids = list(_claimable(ticket_ids, limit).values_list("id", flat=True))
    for ticket_id in ids:
        try:
            _parse_batch([ticket_id], 1, counter)
        except (OperationalError, InterfaceError):
            raise
        except Exception as exc:
            logger.exception("ticket %s could not be stored; rejected", ticket_id)
            Ticket.objects.filter(id=ticket_id, status=Ticket.Status.RECEIVED).update(
                status=Ticket.Status.REJECTED,
                parsed_at=timezone.now(),
                rejection_reason=f"the parse result could not be stored ({type(exc).__name__})",
            )
            counter.labels(Ticket.Status.REJECTED).inc()
    return len(ids)


def _claimable(ticket_ids: Sequence[UUID] | None, limit: int) -> Any:
    tickets = Ticket.objects.filter(status=Ticket.Status.RECEIVED)
    if ticket_ids is not None:
        tickets = tickets.filter(id__in=ticket_ids)
    return tickets.order_by("received_at")[:limit]


def _is_race(exc: Exception) -> bool:
    return getattr(exc.__cause__, "sqlstate", None) in _RACE_SQLSTATES


def _parse_batch(ticket_ids: Sequence[UUID] | None, limit: int, counter: Counter) -> int:
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
            counter.labels(status).inc(count)
        return len(tickets)
    raise AssertionError("unreachable")


_PARSED_COLUMNS = (
    "id",
    "status",
    "parsed_at",
    "order_number",
    "fingerprint",
    "duplicate_of_id",
    "anomalies",
    "unknown_headers",
    "rejection_line",
    "rejection_reason",
)


def _store_outcomes(tickets: list[Ticket]) -> dict[str, int]:
    """Parse claimed tickets and write the results, counted by status. Holds the claim's
    transaction."""
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
    rows = _Rows()
    outcome: dict[str, int] = {}
    for ticket in sorted(tickets, key=lambda t: (t.received_at, t.id)):
        result = results[ticket.id]
        ticket.parsed_at = now
        if isinstance(result, ParsedTicket):
            _accept(ticket, result, fingerprints[ticket.id], originals)
            if ticket.status == Ticket.Status.PARSED:
                rows.add(ticket, result)
        else:
            ticket.status = Ticket.Status.REJECTED
            ticket.rejection_line = result.line
            ticket.rejection_reason = result.reason
        outcome[ticket.status] = outcome.get(ticket.status, 0) + 1
    rows.write(tickets)
    return outcome


def _accept(
    ticket: Ticket, parsed: ParsedTicket, fingerprint: str, originals: dict[str, UUID]
) -> None:
    """Parsed, or a duplicate of the first ticket parsed with the same content: `originals`
    maps each fingerprint to that ticket, and a ticket with a new one joins it here."""
    ticket.order_number = parsed.order
    ticket.fingerprint = fingerprint
    ticket.anomalies = [vars(anomaly) for anomaly in parsed.anomalies]
    ticket.unknown_headers = parsed.unknown_headers
    original = originals.setdefault(fingerprint, ticket.id)
    if original != ticket.id:
        ticket.status = Ticket.Status.DUPLICATE
        ticket.duplicate_of_id = original
    else:
        ticket.status = Ticket.Status.PARSED


@dataclass
class _Rows:
    """What a batch's parsed tickets add: their orders, order lines and catalogue sightings."""

    orders: list[tuple[Any, ...]] = field(default_factory=list)
    lines: list[tuple[Any, ...]] = field(default_factory=list)
    sightings: list[Sighting] = field(default_factory=list)

    def add(self, ticket: Ticket, parsed: ParsedTicket) -> None:
        self.orders.append((ticket.id, parsed.order, parsed.vat, parsed.total, ticket.received_at))
        self.lines.extend(
            (ticket.id, item.line, item.product_id, item.name, item.price) for item in parsed.lines
        )
        last_rows = {item.product_id: item for item in parsed.lines}
        self.sightings.extend(
            Sighting(item.product_id, item.name, item.price, ticket.received_at, ticket.id)
            for item in last_rows.values()
        )

    def write(self, tickets: list[Ticket]) -> None:
        """These rows, then the tickets' outcomes, in the caller's transaction."""
        catalogue_record(sightings=self.sightings)
        db = transaction.get_connection()
        insert_rows(db, Order, ("ticket_id", "number", "vat", "total", "received_at"), self.orders)
        insert_rows(db, OrderLine, ("order_id", "line", "product_id", "name", "price"), self.lines)
        # Last: a concurrent parse of the same content makes this fail (or wait, then fail) on
        # the parsed-once constraint, after every product lock this transaction needs is already
        # held. The rows exist and are claimed: one statement updates them all.
        update_rows(
            db,
            Ticket,
            _PARSED_COLUMNS,
            [tuple(getattr(ticket, column) for column in _PARSED_COLUMNS) for ticket in tickets],
        )


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
    # Counted apart: the ticket's first outcome is in `tickets_total` already.
    tickets_parse(ticket_ids=[ticket_id], limit=1, counter=metrics.reprocessed)
    ticket.refresh_from_db()
    return ticket
