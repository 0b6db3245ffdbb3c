"""A crowd of buyers on thousands of open connections, for the admission runs.

One asyncio task per keep-alive connection (plain sockets, a few lines of HTTP/1.1), each a
buyer after buyer checking out a new item. A `503 busy` is waited out for its `Retry-After` and
sent again with its `Admission-Token` (or at once and without it: `patient=False`, a client that
ignores the header). Beside them, a new buyer on a new connection every `arrival_every` seconds:
how long it takes to be answered at all is what a shop that looks dead is made of. The crowd
runs on the machine it measures: it reports how late its own loop wakes, which every latency it
measures includes.
"""

import asyncio
import itertools
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass
class CrowdResult:
    connections: int
    seconds: float = 0.0
    statuses: Counter[str] = field(default_factory=Counter)
    admitted: list[float] = field(default_factory=list)  # latency of each non-busy answer
    busy: list[float] = field(default_factory=list)
    returns: Counter[str] = field(default_factory=Counter)  # token sent back: admitted or busy
    arrivals: list[float] = field(default_factory=list)  # a new connection to its answer
    arrivals_unanswered: int = 0
    errors: int = 0
    lag: list[float] = field(default_factory=list)  # the generator's own: a 10 ms sleep's overshoot
    recorded_total: int = 0  # every answer other than busy or 5xx, measured or not: one row each

    def row(self) -> dict[str, object]:
        returned = sum(self.returns.values())
        return {
            "connections": self.connections,
            "served/s": round(len(self.admitted) / self.seconds),
            "admitted p50 ms": _ms(self.admitted, 0.5),
            "admitted p99 ms": _ms(self.admitted, 0.99),
            "busy/s": round(len(self.busy) / self.seconds),
            "busy p99 ms": _ms(self.busy, 0.99),
            "returns admitted": f"{self.returns['admitted'] / returned:.0%}" if returned else "-",
            "new arrival p50 ms": _ms(self.arrivals, 0.5),
            "new arrival p99 ms": _ms(self.arrivals, 0.99),
            "new arrivals unanswered": self.arrivals_unanswered,
            "generator lag p99 ms": _ms(self.lag, 0.99),
            "5xx not busy": sum(n for status, n in self.statuses.items() if status >= "500")
            - len(self.busy),
            "errors": self.errors,
        }


def _ms(values: list[float], q: float) -> int | None:
    ordered = sorted(values)
    return round(1000 * ordered[min(len(ordered) - 1, int(len(ordered) * q))]) if ordered else None


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, path: str, token: str | None
) -> tuple[int, dict[str, str], bytes]:
    extra = f"Admission-Token: {token}\r\n" if token else ""
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n{extra}\r\n".encode()
    )
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/"):  # not an answer's head: the stream lost its place
        raise ValueError(f"not a status line: {lines[0][:80]!r}")
    status = int(rest[:3])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers, body


async def _crowd(
    url: str,
    item_ids: list[int],
    result: CrowdResult,
    *,
    seconds: float,
    patient: bool,
    arrival_every: float,
    prefix: str,
) -> None:
    host, port = urlsplit(url).hostname or "127.0.0.1", urlsplit(url).port or 80
    buyers = itertools.count()
    items = itertools.cycle(item_ids)
    measuring = asyncio.Event()
    stop = asyncio.Event()

    async def connection() -> None:
        try:
            reader, writer = await asyncio.open_connection(host, port, limit=1 << 16)
        except OSError:
            result.errors += 1
            return
        try:
            while not stop.is_set():
                path = f"/checkout?user_id={prefix}{next(buyers)}&id={next(items)}"
                token = None
                while not stop.is_set():
                    started = time.perf_counter()
                    status, headers, body = await _exchange(reader, writer, path, token)
                    elapsed = time.perf_counter() - started
                    busy = status == 503 and b'"busy"' in body
                    result.recorded_total += status < 500
                    if measuring.is_set():
                        result.statuses[str(status)] += 1
                        (result.busy if busy else result.admitted).append(elapsed)
                        if token:
                            result.returns["busy" if busy else "admitted"] += 1
                    if not busy:
                        break
                    if patient:
                        token = json.loads(body)["error"]["token"]
                        await asyncio.wait(
                            [asyncio.ensure_future(stop.wait())],
                            timeout=int(headers.get("retry-after", "1")),
                        )
        except (OSError, asyncio.IncompleteReadError, ValueError):
            if not stop.is_set():
                result.errors += 1
        finally:
            writer.close()

    async def arrival(n: int) -> None:
        started = time.perf_counter()
        try:
            async with asyncio.timeout(10):
                reader, writer = await asyncio.open_connection(host, port)
                path = f"/checkout?user_id={prefix}new{n}&id={next(items)}"
                status, _, _ = await _exchange(reader, writer, path, None)
                writer.close()
            result.recorded_total += status < 500
            result.arrivals.append(time.perf_counter() - started)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
            result.arrivals_unanswered += 1

    async def lag() -> None:
        # How late this process's own loop wakes: every latency above includes it.
        while not stop.is_set():
            asked = time.perf_counter()
            await asyncio.sleep(0.01)
            if measuring.is_set():
                result.lag.append(time.perf_counter() - asked - 0.01)

    tasks = [asyncio.ensure_future(connection()) for _ in range(result.connections)]
    tasks.append(asyncio.ensure_future(lag()))
    await asyncio.sleep(min(5.0, seconds / 4))  # connected and past the first wave
    measuring.set()
    started = time.perf_counter()
    arrivals = []
    for n in itertools.count():
        if time.perf_counter() - started >= seconds:
            break
        arrivals.append(asyncio.ensure_future(arrival(n)))
        await asyncio.sleep(arrival_every)
    result.seconds = time.perf_counter() - started
    measuring.clear()
    await asyncio.gather(*arrivals)
    stop.set()
    await asyncio.wait(tasks, timeout=35)


def crowd(
    url: str,
    item_ids: list[int],
    connections: int,
    *,
    seconds: float = 20,
    patient: bool = True,
    arrival_every: float = 0.2,
    prefix: str = "c",
) -> CrowdResult:
    """`connections` buyers checking out new items for `seconds`, measured after a short start."""
    result = CrowdResult(connections)
    asyncio.run(
        _crowd(
            url,
            item_ids,
            result,
            seconds=seconds,
            patient=patient,
            arrival_every=arrival_every,
            prefix=prefix,
        )
    )
    return result
