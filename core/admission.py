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
of jitter, at most `max_retry_after`). Return times are spaced at a share (`return_share`) of
the rate the process completes admitted requests, and no more a second than the queue holds, so
the wait named grows with the number waiting and those turned away first return first. Coming
back with the token from that time on (for `token_ttl` seconds) admits the buyer with priority,
once. A token that is forged, another buyer's, spent already or stale is ignored, and so is one
brought back early but for its return time: the request is a newcomer's, never refused for its
token (a 4xx would only make the client retry sooner), and turned away, a buyer back early keeps
its place.

**The door.** Most of a rush's busy answers go to new checkouts that find no room and the queue
full. `AdmissionDoor`, in front of Django, answers those itself, for a quarter of the work.

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
from django.http import HttpRequest, HttpResponse, QueryDict
from django.urls import URLPattern, get_resolver
from prometheus_client import Counter, Gauge

from core.errors import error_body
from core.middleware import answered, requested
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

    def _queue_full(self, priority: bool) -> bool:
        share = 1.0 if priority else 1.0 - self.config["reserve"]
        return len(self.waiting) >= int(self.config["queue"] * share)

    def refuses_newcomer(self) -> bool:
        """`enter(False)` would turn it away at once: no slot free for it (or others waiting
        for one), and no place in the queue."""
        with self.lock:
            return (bool(self.waiting) or not self._room(False)) and self._queue_full(False)

    def enter(self, priority: bool) -> bool:
        """Take a slot, waiting in the queue if there is room in it; False: turned away."""
        with self.lock:
            ahead = any(w.priority or not priority for w in self.waiting)
            if not ahead and self._room(priority):
                self.inside += 1
                return True
            if self._queue_full(priority):
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

    def return_at(self, now: float) -> float:
        """When a buyer turned away now should come back (wall clock): after everyone waiting
        already."""
        with self.lock:
            # Returns are spaced at a share of what the process completes; the rest is for
            # purchases, returning buyers turned away again and newcomers who find room. Spaced
            # at the whole rate, returns and newcomers together exceed it: the excess waits in
            # the server's queue, and every answer, busy ones included, waits with it. And no
            # more in a second than the queue holds: Retry-After counts whole seconds, so a
            # crowd turned away together comes back in lumps, one a second, and a lump larger
            # than the queue would be turned away again, together, and come back as one.
            rate = self.limit.rate or self.limit.limit / self.config["target"]
            per_second = min(rate * self.config["return_share"], self.config["queue"])
            slot = max(now + 1.0, self.next_return)
            self.next_return = slot + 1.0 / max(per_second, 1.0)
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
    """The token's payload if it is genuine, this buyer's and not stale (at most `token_ttl`
    seconds past its return time); else None. Whether it is due yet is `due`'s to say."""
    try:
        payload = signing.loads(token, salt=_SALT)
    except (signing.BadSignature, ValueError, TypeError):
        return None
    if not isinstance(payload, dict) or payload.get("b") != buyer or not buyer:
        return None
    return_at = payload.get("r")
    if not isinstance(return_at, int | float):
        return None
    if now > return_at + settings.ADMISSION["token_ttl"]:
        return None
    return payload


def due(payload: dict[str, Any], now: float) -> bool:
    """A token read admits ahead of newcomers from its return time on, less a little: the
    hosts' clocks differ."""
    return bool(payload["r"] - _EARLY <= now)


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


def _busy(gate_: Gate, buyer: str, held: dict[str, Any] | None) -> tuple[dict[str, str], bytes]:
    """A busy answer's headers and body, counted: the middleware and the door send the same.
    `held` is the buyer's token, read: a buyer back early keeps its return time (Retry-After
    names at most `max_retry_after` seconds, and a return time may lie further), a buyer back
    at its time and turned away again is named the next second, and both keep the time they
    were first turned away."""
    now = wall_clock()
    if held is None:
        return_at = gate().return_at(now)
    elif not due(held, now):
        return_at = float(held["r"])
    else:
        return_at = now + 1.0
    issued = float(held["i"]) if held else now
    token = token_issue(buyer=buyer, issued=issued, return_at=return_at)
    wait = math.ceil(return_at - now + random.random())
    retry_after = max(1, min(wait, settings.ADMISSION["max_retry_after"]))
    TURNED_AWAY.labels(gate_.operation).inc()
    tally().add(gate_.operation, admitted=False)
    body = error_body(BUSY_CODE, BUSY_MESSAGE, token=token, retry_after=retry_after)
    return {"Retry-After": str(retry_after), TOKEN_HEADER: token}, json.dumps(body).encode()


def _busy_response(gate_: Gate, buyer: str, held: dict[str, Any] | None) -> HttpResponse:
    headers, body = _busy(gate_, buyer, held)
    response = HttpResponse(body, status=503, content_type="application/json", headers=headers)
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
        now = wall_clock()
        held = token_read(token, buyer=buyer or "", now=now) if token else None
        returning = held if held is not None and due(held, now) else None
        admission = gate()
        if not admission.enter(gate_.priority or returning is not None):
            return _busy_response(gate_, buyer or _buyer(request, gate_.buyer), held)
        if returning is not None and not token_spend(returning):
            # Used already: the slot was a returning buyer's, and this is a newcomer.
            admission.leave(None)
            if not admission.enter(gate_.priority):
                return _busy_response(gate_, buyer or "", None)
        request._admitted_at = time.monotonic()  # type: ignore[attr-defined]
        ADMITTED.labels(gate_.operation).inc()
        tally().add(gate_.operation, admitted=True)
        return None


class AdmissionDoor:
    """WSGI, in front of Django: a new checkout that the gate would turn away at once (no room
    for it, the newcomers' queue full; no token and no body) is answered busy here, before
    Django builds a request and runs its middleware, for about a quarter of the CPU (36 against
    142 µs in one process). Anything else goes on to the middleware, which decides as before.

    The door's answer is Django's: the same body, and the headers of the first busy answer Django
    gave at that scheme (the security headers, HSTS over HTTPS), but for the answer's own. Until
    Django has given one, the door lets Django answer. It answers before Django's host check and
    HTTPS redirect, which a busy answer needs neither: it names no URL and carries no secret."""

    _OWN = frozenset(("Retry-After", TOKEN_HEADER, "Content-Length"))

    def __init__(self, application: Callable[..., Any]) -> None:
        self.application = application
        self.gates: dict[str, tuple[Gate, str]] = {}  # path: the gate and the view's name
        for pattern in get_resolver().url_patterns:
            if not isinstance(pattern, URLPattern):
                continue
            gate_ = getattr(getattr(pattern.callback, "view_class", None), "admission", None)
            if gate_ is not None and not gate_.priority and pattern.name:
                self.gates[f"/{pattern.pattern}"] = (gate_, pattern.name)
        proxy = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
        self.scheme_header = proxy[0] if proxy else ""
        self.headers: dict[tuple[str, str], list[tuple[str, str]]] = {}  # Django's, by scheme

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        found = self.gates.get(environ.get("PATH_INFO", ""))
        if (
            found is None
            or environ.get("REQUEST_METHOD") != "POST"
            or _TOKEN_META in environ
            or environ.get("CONTENT_LENGTH") not in (None, "", "0")
            or not settings.ADMISSION["enabled"]
            or not gate().refuses_newcomer()
        ):
            return self.application(environ, start_response)
        scheme = (environ.get("wsgi.url_scheme", ""), environ.get(self.scheme_header, ""))
        common = self.headers.get(scheme)
        if common is None:
            return self.application(environ, self._learning(scheme, start_response))
        started = time.perf_counter()
        requested("POST")
        gate_, view = found
        buyer = QueryDict(environ.get("QUERY_STRING", "")).get(gate_.buyer) or ""
        headers, body = _busy(gate_, buyer[:64], None)
        start_response(
            "503 Service Unavailable",
            [*common, *headers.items(), ("Content-Length", str(len(body)))],
        )
        answered(503, view, "POST", time.perf_counter() - started)
        return [body]

    def _learning(
        self, scheme: tuple[str, str], start_response: Callable[..., Any]
    ) -> Callable[..., Any]:
        def learn(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            if status.startswith("503") and any(name == TOKEN_HEADER for name, _ in headers):
                self.headers[scheme] = [(n, v) for n, v in headers if n not in self._OWN]
            return start_response(status, headers, *exc_info)

        return learn
