"""A Celery worker that still runs but no longer consumes stops, so that its supervisor starts
it again.

After its broker connection drops, a worker can come back connected and answering `inspect
ping` while it no longer reads its queues (a known fault of kombu's Redis transport): tickets
would wait as `received` until someone restarts it. So the worker's main process sends itself a
probe through the broker, on its own queue, every quarter of `WORKER_STALL_SECONDS`; when a
probe it sent has not come back within that time, the worker logs why and shuts down warmly
(SIGTERM). A probe that cannot be sent (the broker is down) starts nothing: reconnecting is the
consumer's work, and a stall is counted from the first probe sent after it.
"""

import logging
import os
import signal
import threading
import time

from celery import shared_task, signals
from celery.utils.nodenames import worker_direct
from django.conf import settings

logger = logging.getLogger(__name__)


@shared_task(ignore_result=True)
def probe() -> None:
    """Does nothing: its arrival is what counts (`task_received`, in the main process)."""


class Watchdog:
    def __init__(self, hostname: str, stall_seconds: int) -> None:
        self.queue = worker_direct(hostname)
        self.stall_seconds = stall_seconds
        self.seen_at = float("-inf")  # when a probe last came back (monotonic clock)
        self.waiting_since: float | None = None  # the first probe sent after that
        self.stopped = threading.Event()

    def answered(self) -> None:
        self.seen_at = time.monotonic()

    def stalled(self) -> bool:
        since = self.waiting_since
        return (
            since is not None
            and self.seen_at < since
            and time.monotonic() - since >= self.stall_seconds
        )

    def run(self) -> None:
        while not self.stopped.wait(self.stall_seconds / 4):
            if self.stalled():
                logger.error(
                    "no probe came back through the broker in %s s: this worker no longer"
                    " consumes; it stops so that its supervisor starts it again",
                    self.stall_seconds,
                )
                os.kill(os.getpid(), signal.SIGTERM)
                return
            sent_at = time.monotonic()
            try:
                probe.apply_async(queue=self.queue, retry=False)
            except Exception:  # the broker is down: the consumer reconnects
                self.waiting_since = None
                continue
            if self.waiting_since is None or self.waiting_since <= self.seen_at:
                self.waiting_since = sent_at


_watchdog: list[Watchdog] = []


@signals.worker_ready.connect
def start(sender: object, **_: object) -> None:
    if not settings.WORKER_STALL_SECONDS or settings.CELERY_TASK_ALWAYS_EAGER:
        return
    watchdog = Watchdog(sender.hostname, settings.WORKER_STALL_SECONDS)  # type: ignore[attr-defined]
    _watchdog.append(watchdog)
    threading.Thread(target=watchdog.run, name="watchdog", daemon=True).start()


@signals.task_received.connect
def received(request: object, **_: object) -> None:
    if _watchdog and request.name == probe.name:  # type: ignore[attr-defined]
        _watchdog[0].answered()


@signals.worker_shutdown.connect
def stop(**_: object) -> None:
    for watchdog in _watchdog:
        watchdog.stopped.set()
