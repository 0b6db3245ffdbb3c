"""Writes of the tickets app, along its pipeline: acknowledging a ticket (`ingest`), then
parsing the backlog into orders and the catalogue (`pipeline`)."""

from tickets.services.ingest import Receipt, spool_drain, ticket_ingest
from tickets.services.pipeline import (
    BacklogRun,
    ticket_reprocess,
    tickets_parse,
    tickets_parse_backlog,
)

__all__ = [
    "BacklogRun",
    "Receipt",
    "spool_drain",
    "ticket_ingest",
    "ticket_reprocess",
    "tickets_parse",
    "tickets_parse_backlog",
]
