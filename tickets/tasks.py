"""Celery tasks: ids in, a service call, and the retry and expiry policy. Each is idempotent:
a redelivered or doubled run finds the work done (claimed tickets are parsed once, spooled
tickets stored once)."""

from celery import shared_task

from tickets.services import spool_drain, tickets_parse_backlog


@shared_task(ignore_result=True)
def parse_backlog() -> int:
    run = tickets_parse_backlog()
    if run.out_of_time:
        parse_backlog.apply_async(expires=60)
    return run.parsed


@shared_task(ignore_result=True)
def drain_spool() -> int | None:
    return spool_drain()
