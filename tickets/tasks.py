"""Celery tasks: ids in, a service call, and the retry and expiry policy. Each is idempotent:
a redelivered or doubled run finds the work done (claimed tickets are parsed once, spooled
tickets stored once).

Also the nudges that queue them as tickets arrive: a parse run at most once a second per
process (a run scheduled for later covers the tickets in between), and a drain while the spool
holds tickets. A lost nudge costs only time: beat sweeps every minute.
"""

import logging
import threading
import time
from typing import Any

from celery import current_app as celery_app
from celery import shared_task
from celery.signals import worker_ready
from django.db import DatabaseError

from core.process import PerProcess
from tickets import spool
from tickets.services import Receipt, spool_drain, tickets_parse_backlog

logger = logging.getLogger(__name__)

_NUDGE_INTERVAL = 1.0


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
    handed = spool_drain()
    if handed:
        parse_soon()
    if spool.pending():  # spooled while this drain ran, by a process whose breaker was open
        _enqueue(drain_spool, expires=3600, countdown=1)
    return handed


@worker_ready.connect
def resume_after_restart(**kwargs: object) -> None:
    """A worker that starts picks up what a killed one left: unparsed tickets and the spool."""
    parse_backlog.apply_async(expires=60)
    drain_spool.apply_async(expires=3600)


class _Nudges:
    """When this process's next parse run and next drain start, and its next look at the spool
    is due (monotonic clock); and whether tasks run in-process (no broker), read once: Celery's
    configuration lookup costs more than the rest of a nudge."""

    def __init__(self) -> None:
        self.eager = bool(celery_app.conf.task_always_eager)
        self.lock = threading.Lock()
        self.next_parse = float("-inf")
        self.next_drain = float("-inf")
        self.next_spool_check = float("-inf")


_nudges = PerProcess(_Nudges)


def after_ingest(receipt: Receipt) -> None:
    """Set going what a stored ticket needs: its parse, or the drain of the spool it went to."""
    nudges = _nudges.get()
    if receipt.spooled:
        if not nudges.eager:  # in-process, a drain now would only fail
            drain_soon()
        return
    parse_soon()
    now = time.monotonic()
    if now >= nudges.next_spool_check:  # the database is back: is a spool left to drain?
        nudges.next_spool_check = now + _NUDGE_INTERVAL
        if spool.pending():
            drain_soon()


def parse_soon() -> None:
    if _nudges.get().eager:
        _enqueue(parse_backlog)
        return
    _schedule(parse_backlog, "next_parse", expires=60)


def drain_soon() -> None:
    _schedule(drain_spool, "next_drain", expires=3600)


def _schedule(task: Any, slot: str, *, expires: float) -> None:
    """Run `task` now, or once the run already scheduled in this process has started: at most
    one run per interval, and always one starting after this call."""
    nudges, now = _nudges.get(), time.monotonic()
    with nudges.lock:
        if now <= getattr(nudges, slot):
            return  # a run already scheduled starts after this call
        at = max(now, getattr(nudges, slot) + _NUDGE_INTERVAL)
        setattr(nudges, slot, at)
    _enqueue(task, expires=expires, countdown=at - now)


def _enqueue(task: Any, *, expires: float = 60, **options: Any) -> None:
    """Best effort: the ticket is already durable, and beat sweeps what a lost nudge misses."""
    try:
        task.apply_async(retry=False, expires=expires, **options)
    except Exception:
        logger.warning("could not enqueue %s", task.name, exc_info=True)
