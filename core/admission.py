"""Admission control in front of the expensive operations, and a fair waiting room.

A view opts in with a class attribute, `admission = Gate("checkout", buyer="user_id")`. Once the
URL is resolved, before the view runs and so before any database or Redis work, the middleware
admits the request or answers it at once with `503 busy`.

**The limit.** Each process lets at most `limit` requests into the gated views at a time. The
limit follows the latency of what it admitted, additive increase and multiplicative decrease as
TCP and Netflix's concurrency-limits do: at the end of each window, a mean latency over the
target cuts it by a tenth, and one within the target, when the limit was reached, adds one. A
process so admits what it serves within its target whatever slows it (the machine, PostgreSQL,
Redis), and a fleet of N processes about N times that, with no coordination.

**Priority.** Purchases and buyers returning with a token may use the whole limit; new checkouts
only the part not reserved (`reserve`), so that a buyer who holds an item can pay for it in a
rush. A request that finds no free slot waits in a short queue, priority first and then first
come, for at most `max_wait`: the queue the server keeps anyway, made visible and bounded, so
that it has to run more threads than `limit + queue` (README "Admission"). Past that queue the
request is turned away; a purchase or a returning buyer finding it full turns away its last
newcomer instead.

**The waiting room.** A busy answer carries a signed token naming the buyer, when it was issued
and when to return, and `Retry-After` the same in whole seconds (rounded up, plus up to a second
of jitter). Return times are spaced at a share (`return_share`) of the rate the process completes
admitted requests, so the wait named grows with the number waiting and those turned away first
return first. Coming back with the token from that time on (for `token_ttl` seconds) admits the
buyer with priority, once. A token that is forged, another buyer's, spent already, early or
stale is ignored: the request is a newcomer's, never refused for it (a 4xx would only make the
client retry sooner).

Losing a process's state loses only its limit (it starts again at the maximum) and its counts
not yet flushed (at most `flush` seconds of them).
"""

import json
import logging
import math
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django import db
from django.conf import settings
from django.core import signing
from django.core.cache import cache
from django.http import HttpRequest, HttpResponse, JsonResponse, QueryDict
from prometheus_client import Counter, Gauge

from core.errors import shaped
from core.process import PerProcess

logger = logging.getLogger(__name__)

TOKEN_HEADER = "Admission-Token"  # noqa: S105 (a header's name)
_TOKEN_META = "HTTP_" + TOKEN_HEADER.upper().replace("-", "_")
BUSY_CODE = "busy"
BUSY_MESSAGE = "The sale is busy; come back after Retry-After seconds with the Admission-Token."

ADMITTED = Counter("admission_admitted_total", "Requests let into a gated view.", ["operation"])
TURNED_AWAY = Counter(
    "admission_turned_away_total", "Requests answered 503 busy, never run.", ["operation"]
)
LIMIT = Gauge(
    "admission_limit",
    "Concurrency limit of the gated views, summed over the live processes.",
    multiprocess_mode="livesum",
)


@dataclass(frozen=True)
class Gate:
    """What a view declares: the operation's name (for the counts), the request field that
    names the buyer (for the token) and whether it goes ahead of new checkouts."""

    operation: str
    buyer: str
    priority: bool = False

    def __post_init__(self) -> None:
        # Both series exported from the start, at 0: a quiet sale is data, not a gap.
        ADMITTED.labels(self.operation)
        TURNED_AWAY.labels(self.operation)


class AdaptiveLimit:
    """AIMD on the latency of admitted requests, decided once per window. Not thread-safe: the
    caller holds a lock. `rate` is the requests completed per second over the last window."""

    def __init__(
        self,
        *,
        maximum: int,
        minimum: int,
        target: float,
        window: float = 0.25,
        backoff: float = 0.9,
    ) -> None:
        self.maximum, self.minimum, self.target = maximum, minimum, target
        self.window, self.backoff = window, backoff
        self.limit = float(maximum)
        self.rate = 0.0
        self._started: float | None = None
        self._total = 0.0
        self._count = 0
        self._saturated = False

    def sample(self, latency: float, *, saturated: bool, now: float) -> bool:
        """Record one completed request; True when the limit was decided anew."""
        if self._started is None:
            self._started = now
        self._total += latency
        self._count += 1
        self._saturated |= saturated
        elapsed = now - self._started
        if elapsed < self.window:
            return False
        if self._total / self._count > self.target:
            self.limit = max(float(self.minimum), self.limit * self.backoff)
        elif self._saturated:
            self.limit = min(float(self.maximum), self.limit + 1)
        self.rate = self._count / elapsed
        self._started, self._total, self._count, self._saturated = now, 0.0, 0, False
        return True


class _Waiter:
    __slots__ = ("granted", "priority", "woken")

    def __init__(self, priority: bool) -> None:
        self.priority = priority
        self.granted = False
        self.woken = threading.Event()


class Admission:
    """One process's gate: the limit, the requests inside and the queue before it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.limit = AdaptiveLimit(
            maximum=config["max_limit"], minimum=config["min_limit"], target=config["target"]
        )
        self.inside = 0
        self.waiting: list[_Waiter] = []  # priority first, then in order of arrival
        self.next_return = 0.0
        self.lock = threading.Lock()
        LIMIT.set(self.limit.limit)

    def _room(self, priority: bool) -> bool:
        share = 1.0 if priority else 1.0 - self.config["reserve"]
        return self.inside < max(1, int(self.limit.limit * share))

    def enter(self, priority: bool) -> bool:
        """Take a slot, waiting in the queue if there is room in it; False: turned away."""
        with self.lock:
            ahead = any(w.priority or not priority for w in self.waiting)
            if not ahead and self._room(priority):
                self.inside += 1
                return True
            room = self.config["queue"] * (1.0 if priority else 1.0 - self.config["reserve"])
            if len(self.waiting) >= int(room):
                if not priority or not self.waiting or self.waiting[-1].priority:
                    return False
                # A full queue turns away its last newcomer, not a purchase or a return.
                self.waiting.pop().woken.set()
            waiter = _Waiter(priority)
            at = next(
                (i for i, w in enumerate(self.waiting) if priority and not w.priority),
                len(self.waiting),
            )
            self.waiting.insert(at, waiter)
        if waiter.woken.wait(self.config["max_wait"]) and waiter.granted:
            return True
        with self.lock:
            if waiter.granted:  # granted between the timeout and the lock
                return True
            if waiter in self.waiting:  # else pushed out by a purchase or a return
                self.waiting.remove(waiter)
            return False

    def leave(self, latency: float | None) -> None:
        """Give the slot back; `latency` None: the request is not a sample (its token was
        refused after it was admitted)."""
        with self.lock:
            self.inside -= 1
            if latency is not None:
                saturated = bool(self.waiting) or self.inside + 1 >= int(self.limit.limit)
                if self.limit.sample(latency, saturated=saturated, now=time.monotonic()):
                    LIMIT.set(self.limit.limit)
            while self.waiting and self._room(self.waiting[0].priority):
                waiter = self.waiting.pop(0)
                waiter.granted = True
                self.inside += 1
                waiter.woken.set()

    def return_at(self, now: float, *, ahead: bool) -> float:
        """When a buyer turned away now should come back (wall clock): at the head of the room
        for a returning buyer turned away again, else after everyone waiting already."""
        with self.lock:
            if ahead:
                return now + 1.0
            # Returns are spaced at a share of what the process completes; the rest is for
            # purchases, returning buyers turned away again and newcomers who find room. Spaced
            # at the whole rate, returns and newcomers together exceed it: the excess waits in
            # the server's queue, and every answer, busy ones included, waits with it.
            rate = self.limit.rate or self.limit.limit / self.config["target"]
            slot = min(max(now + 1.0, self.next_return), now + self.config["max_retry_after"])
            self.next_return = slot + 1.0 / max(rate * self.config["return_share"], 1.0)
            return slot


def _config() -> Admission:
    return Admission(settings.ADMISSION)


_gate = PerProcess(_config)


def gate() -> Admission:
    return _gate.get()


# -- tokens ---------------------------------------------------------------------------------

_SALT = "core.admission"
_EARLY = 0.25  # seconds a token may come before its time: the hosts' clocks differ a little


def wall_clock() -> float:
    """The time tokens are issued and read in (a test may move it)."""
    return time.time()


def token_issue(*, buyer: str, issued: float, return_at: float) -> str:
    payload = {"b": buyer, "i": round(issued, 3), "r": round(return_at, 3)}
    return signing.dumps({**payload, "n": secrets.token_urlsafe(9)}, salt=_SALT)


def token_read(token: str, *, buyer: str, now: float) -> dict[str, Any] | None:
    """The token's payload if it is genuine, this buyer's and presented in its window (from
    its return time, less a little for clocks, for `token_ttl` seconds); else None."""
    try:
        payload = signing.loads(token, salt=_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or payload.get("b") != buyer or not buyer:
        return None
    return_at = payload.get("r")
    if not isinstance(return_at, int | float):
        return None
    if not return_at - _EARLY <= now <= return_at + settings.ADMISSION["token_ttl"]:
        return None
    return payload


class _Spent:
    """Tokens spent in this process: the fallback when the shared cache cannot be reached."""

    def __init__(self) -> None:
        self.until: dict[str, float] = {}
        self.lock = threading.Lock()

    def spend(self, nonce: str, until: float) -> bool:
        now = wall_clock()
        with self.lock:
            if len(self.until) > 10_000:
                self.until = {n: t for n, t in self.until.items() if t > now}
            if self.until.get(nonce, 0.0) > now:
                return False
            self.until[nonce] = until
            return True


_spent = PerProcess(_Spent)


def token_spend(payload: dict[str, Any]) -> bool:
    """Mark the token used, once across the fleet (SET NX in the shared cache, with the
    token's remaining life); False if it was used already."""
    nonce = str(payload.get("n", ""))
    until = float(payload["r"]) + settings.ADMISSION["token_ttl"]
    timeout = max(1, math.ceil(until - wall_clock()))
    added = cache.add(f"admission:spent:{nonce}", 1, timeout)
    if added is None:  # the cache swallowed a Redis error: remember it in this process
        return _spent.get().spend(nonce, until)
    return bool(added)


# -- counts ---------------------------------------------------------------------------------

Row = tuple[datetime, str, int, int]  # minute, operation, admitted, turned away
_sinks: list[Callable[[list[Row]], None]] = []


def on_flush(sink: Callable[[list[Row]], None]) -> None:
    """Register what stores the per-minute counts (an app's `ready()` does)."""
    if sink not in _sinks:
        _sinks.append(sink)


class Tally:
    """Admitted and turned-away requests per minute and operation, handed to the sinks by a
    thread of the process's own at most every `flush` seconds, never by a request."""

    def __init__(self) -> None:
        self.counts: dict[tuple[int, str], list[int]] = {}  # by minute since the epoch
        self.lock = threading.Lock()
        self.stopped = threading.Event()
        self.thread: threading.Thread | None = None

    def add(self, operation: str, *, admitted: bool) -> None:
        minute = int(time.time() // 60)
        with self.lock:
            counts = self.counts.setdefault((minute, operation), [0, 0])
            counts[0 if admitted else 1] += 1
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="admission-tally")
                self.thread.daemon = True
                self.thread.start()

    def _run(self) -> None:
        while not self.stopped.wait(settings.ADMISSION["flush"]):
            try:
                self.flush()
            finally:
                db.connections.close_all()

    def flush(self) -> None:
        with self.lock:
            counts, self.counts = self.counts, {}
        rows = [
            (datetime.fromtimestamp(minute * 60, UTC), op, n[0], n[1])
            for (minute, op), n in sorted(counts.items())
        ]
        if not rows:
            return
        try:
            for sink in _sinks:
                sink(rows)
        except Exception:
            logger.warning("admission counts not stored; kept for the next flush", exc_info=True)
            with self.lock:
                for (minute, op), n in counts.items():
                    kept = self.counts.setdefault((minute, op), [0, 0])
                    kept[0] += n[0]
                    kept[1] += n[1]

    def stop(self) -> None:
        self.stopped.set()


_tally = PerProcess(Tally, close=Tally.stop)


def tally() -> Tally:
    return _tally.get()


# -- the middleware -------------------------------------------------------------------------


def _buyer(request: HttpRequest, field: str) -> str:
    """The buyer as the view will read it: a body's field wins over the query's. A body is read
    only if its declared size is within the API's limit (the view refuses it otherwise)."""
    value: Any = None
    declared = request.META.get("CONTENT_LENGTH") or "0"
    readable = declared.isascii() and declared.isdigit()
    if readable and 0 < int(declared) <= settings.API_MAX_BODY_BYTES:
        try:
            if request.content_type == "application/json":
                body = json.loads(request.body)
                value = body.get(field) if isinstance(body, dict) else None
            elif request.content_type == "application/x-www-form-urlencoded":
                value = QueryDict(request.body).get(field)
        except (ValueError, UnicodeDecodeError, RecursionError):
            value = None
    if value is None:
        value = request.GET.get(field)
    return "" if value is None else str(value)[:64]


def _busy(gate_: Gate, buyer: str, returning: dict[str, Any] | None) -> JsonResponse:
    now = wall_clock()
    return_at = gate().return_at(now, ahead=returning is not None)
    issued = float(returning["i"]) if returning else now
    token = token_issue(buyer=buyer, issued=issued, return_at=return_at)
    retry_after = max(1, math.ceil(return_at - now + random.random()))
    TURNED_AWAY.labels(gate_.operation).inc()
    tally().add(gate_.operation, admitted=False)
    headers = {"Retry-After": str(retry_after), TOKEN_HEADER: token}
    response = shaped(503, BUSY_CODE, BUSY_MESSAGE, headers, token=token, retry_after=retry_after)
    # Counted, not logged: in a rush, thousands a second, and the log lines cost more than the
    # answer. Neither Django's error line for a 5xx nor ours (RequestMetricsMiddleware).
    response._has_been_logged = True  # type: ignore[attr-defined]
    response.shed = True  # type: ignore[attr-defined]
    return response


class AdmissionMiddleware:
    """Admits the POSTs to views that declare `admission`, or answers them `503 busy`."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        try:
            return self.get_response(request)
        finally:
            admitted_at = getattr(request, "_admitted_at", None)
            if admitted_at is not None:
                gate().leave(time.monotonic() - admitted_at)

    def process_view(
        self, request: HttpRequest, view: Callable[..., Any], args: Any, kwargs: Any
    ) -> HttpResponse | None:
        gate_: Gate | None = getattr(getattr(view, "view_class", None), "admission", None)
        if gate_ is None or request.method != "POST" or not settings.ADMISSION["enabled"]:
            return None
        # From META: `request.headers` would build a mapping of every header, for one.
        token = request.META.get(_TOKEN_META)
        buyer = _buyer(request, gate_.buyer) if token else None
        returning = token_read(token, buyer=buyer or "", now=wall_clock()) if token else None
        admission = gate()
        if not admission.enter(gate_.priority or returning is not None):
            return _busy(gate_, buyer or _buyer(request, gate_.buyer), returning)
        if returning is not None and not token_spend(returning):
            # Used already: the slot was a returning buyer's, and this is a newcomer.
            admission.leave(None)
            if not admission.enter(gate_.priority):
                return _busy(gate_, buyer or "", None)
        request._admitted_at = time.monotonic()  # type: ignore[attr-defined]
        ADMITTED.labels(gate_.operation).inc()
        tally().add(gate_.operation, admitted=True)
        return None
