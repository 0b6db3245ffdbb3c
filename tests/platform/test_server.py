"""The production server as it runs (`make serve`, or `WEB_SERVER=gunicorn` for
`make serve-gunicorn`), started by testkit's stack on a spare port."""

import contextlib
import signal
import socket
import threading
import time
import urllib.error
import urllib.request

import psycopg

from testkit.stack import Stack, free_port

# A checkout answers in milliseconds; a server frozen by slow clients does not answer at all
# while they stay connected. The bound sits far from both, so that a loaded machine cannot
# make a free server fail, and a frozen one cannot pass.
ANSWER_BOUND_SECONDS = 5.0


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return response.read().decode()


def post(url: str, timeout: float) -> int:
    request = urllib.request.Request(url, data=b"", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def open_sale(stack: Stack, items: int) -> list[int]:
    sale = stack.manage_json("start_sale", "--items", str(items), "--ttl", "600")
    rows = stack.query("SELECT id FROM sales_item WHERE sale_id = %s ORDER BY id", [sale["id"]])
    return [row[0] for row in rows]


class SlowClients:
    """`count` connections that each send the headers of a checkout one byte a second and
    never finish them, as a slow mobile client or an attacker does."""

    HEAD = b"POST /checkout?user_id=slow&id=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 600

    def __init__(self, port: int, count: int) -> None:
        self.port, self.count = port, count
        self.sockets: list[socket.socket] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._trickle, daemon=True)
        self.bytes_sent = 0

    def __enter__(self) -> "SlowClients":
        try:
            for _ in range(self.count):
                self.sockets.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
        except BaseException:
            self.__exit__()
            raise
        self.thread.start()
        return self

    def _trickle(self) -> None:
        for byte in self.HEAD:
            for sock in self.sockets:
                with contextlib.suppress(OSError):  # the server may close a slow connection
                    self.bytes_sent += sock.send(bytes([byte]))
            if self.stop.wait(1.0):
                return

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)
        for sock in self.sockets:
            sock.close()


def test_slow_clients_do_not_stop_checkouts():
    with Stack("platform_slow_clients") as stack:
        url = stack.start_web(workers=2, threads=4)
        items = open_sale(stack, 60)
        assert post(f"{url}/checkout?user_id=warm-up&id={items[0]}", timeout=30) == 201
        port = int(url.rsplit(":", 1)[1])
        with SlowClients(port, 64) as slow:
            # Each slow connection is accepted and has sent its first bytes before we start.
            time.sleep(2.5)
            assert slow.bytes_sent >= 2 * 64
            for n, item in enumerate(items[1:51]):
                started = time.monotonic()
                try:
                    status = post(
                        f"{url}/checkout?user_id=buyer-{n}&id={item}", ANSWER_BOUND_SECONDS
                    )
                except OSError as error:  # a timeout: no answer within the bound
                    raise AssertionError(f"checkout {n + 1} of 50: {error!r}") from None
                took = time.monotonic() - started
                assert status == 201, f"checkout {n + 1} of 50: {status}"
                assert took < ANSWER_BOUND_SECONDS, f"checkout {n + 1} of 50 took {took:.2f} s"


def test_sigterm_lets_a_request_in_flight_finish():
    with Stack("platform_shutdown") as stack:
        url = stack.start_web(workers=2)
        items = open_sale(stack, 2)
        server = next(p for name, p in stack.processes.items() if name.startswith("web"))
        answers: list[int] = []
        with psycopg.connect(stack.db_url) as db:
            # The checkout's INSERT waits behind this lock: a request held in flight.
            db.execute("LOCK TABLE sales_checkoutattempt IN SHARE MODE")
            checkout = threading.Thread(
                target=lambda: answers.append(
                    post(f"{url}/checkout?user_id=late&id={items[0]}", timeout=30)
                )
            )
            checkout.start()
            deadline = time.monotonic() + 30
            while not stack.query(
                "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND datname = %s",
                [stack.name],
            ):
                assert time.monotonic() < deadline, "the checkout never reached the database"
                time.sleep(0.1)
            server.send_signal(signal.SIGTERM)
            time.sleep(3)
            assert server.poll() is None, "the server exited with a request in flight"
            db.rollback()
        checkout.join(timeout=30)
        assert answers == [201]
        assert server.wait(timeout=30) == 0


def test_metrics_of_every_worker_are_served_on_their_own_port():
    port = free_port()
    with Stack("platform_metrics", extra_env={"APP_METRICS_PORT": str(port)}) as stack:
        url = stack.start_web(workers=2)
        for _ in range(20):
            get(f"{url}/ping")
        text = get(f"http://127.0.0.1:{port}/metrics")
    counted = [
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("django_http_requests_total_by_method_total{") and 'method="GET"' in line
    ]
    assert sum(counted) >= 20  # added up over both workers' files
