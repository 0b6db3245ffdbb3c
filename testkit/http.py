"""A small threaded HTTP client for the rushes, the bursts and the fault runs: one keep-alive
connection per thread, as a browser tab or a till would hold."""

import http.client
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit


class Client:
    def __init__(self, base: str, timeout: float = 30) -> None:
        self.netloc = urlsplit(base).netloc
        self.timeout = timeout
        self.conn = http.client.HTTPConnection(self.netloc, timeout=timeout)

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        content_type: str = "text/plain",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """The status and the JSON body; a connection the server closed while idle is opened
        again once, anything else raises (OSError or http.client.HTTPException)."""
        headers = {
            **({"Content-Type": content_type} if body is not None else {}),
            **(headers or {}),
        }
        for attempt in (1, 2):
            try:
                self.conn.request(method, path, body=body, headers=headers)
                response = self.conn.getresponse()
                return response.status, json.loads(response.read() or b"{}")
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.netloc, timeout=self.timeout)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def post(
        self, path: str, body: bytes | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, Any]]:
        return self.request("POST", path, body, headers=headers)


def run_threads(count: int, work: Callable[[int], None], *, timeout: float) -> None:
    """`work(i)` in `count` threads; raises if one is still running after `timeout` seconds
    (a stuck client fails the run instead of hanging it) or if one crashed."""
    crashes: list[BaseException] = []

    def run(i: int) -> None:
        try:
            work(i)
        except BaseException as crash:
            crashes.append(crash)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    stuck = sum(thread.is_alive() for thread in threads)
    if stuck:
        raise TimeoutError(f"{stuck} of {count} threads still running after {timeout:.0f} s")
    if crashes:
        raise crashes[0]


def post_tickets(
    url: str | list[str],
    bodies: list[bytes],
    concurrency: int,
    *,
    during: Callable[[], None] | None = None,
    timeout: float = 600,
) -> dict[str, Any]:
    """POST every body to /ticket over `concurrency` connections (spread over the URLs, if given
    several: one per host of a scaled-out stack); `during` runs beside them in
    a thread of its own (a fault). Returns the answers by status, the acknowledged ticket ids
    (to the index of their body), the rate and the latency percentiles."""
    urls = [url] if isinstance(url, str) else url
    queue = iter(enumerate(bodies))
    lock = threading.Lock()
    statuses: Counter[int | str] = Counter()
    latencies: list[float] = []
    acknowledged: dict[str, int] = {}

    def connection(i: int) -> None:
        if i == concurrency:
            assert during is not None
            during()
            return
        client = Client(urls[i % len(urls)])
        while True:
            with lock:
                index, body = next(queue, (-1, b""))
            if index < 0:
                return
            started = time.perf_counter()
            try:
                status, answer = client.post("/ticket", body)
            except (OSError, http.client.HTTPException) as exc:
                with lock:
                    statuses[type(exc).__name__] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if status == 202:
                    acknowledged[answer["id"]] = index

    started = time.perf_counter()
    run_threads(concurrency + (during is not None), connection, timeout=timeout)
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {
        "statuses": dict(statuses),
        "acknowledged": acknowledged,
        "seconds": elapsed,
        "rate": len(latencies) / elapsed,
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }
