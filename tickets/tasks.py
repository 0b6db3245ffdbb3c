"""Celery tasks: ids in, a service call, and the retry and expiry policy. Each is idempotent:
a redelivered or doubled run finds the work done (claimed tickets are parsed once, spooled
tickets stored once)."""

from celery import shared_task
from celery.signals import worker_ready
from django.db import DatabaseError

from tickets.services import spool_drain, tickets_parse_backlog


@shared_task(ignore_result=True)
def parse_backlog() -> int:
    run = tickets_parse_backlog()
    if run.out_of_time:
        parse_backlog.apply_async(expires=60)
    return run.parsed


@shared_task(
    ignore_result=True,
    autoretry_for=(DatabaseError,),
    retry_backoff=1,
    retry_backoff_max=30,
    max_retries=40,
)
def drain_spool() -> int | None:
    """Retried while PostgreSQL is still coming back: the drain is what empties the spool
    between beat's sweeps."""
    return spool_drain()


@worker_ready.connect
def resume_after_restart(**kwargs: object) -> None:
    """A worker that starts picks up what a killed one left: unparsed tickets and the spool."""
    parse_backlog.apply_async(expires=60)
    drain_spool.apply_async(expires=3600)
