"""The web server: granian serving `config.wsgi`, configured from the environment.

`python -m config.serve` is what `make serve`, the Docker image and the throw-away stacks run.
Granian reads request headers in its Rust event loop and hands a request to a Python thread only
once its headers are complete, so clients that send headers slowly hold a socket, never a
thread: 64 of them trickling headers a byte a second leave checkouts answering
(tests/platform/test_server.py). gunicorn's gthread workers give a connection a thread while
they read its headers, which is why `make serve-gunicorn` needs a buffering proxy in front. A
request body is read by the thread as it arrives, under either server: README "Performance".

Graceful shutdown: on SIGTERM or Ctrl-C the main process stops accepting and lets each worker
finish its in-flight requests for up to `WORKERS_KILL_TIMEOUT` seconds before killing it. A
purchase is one database transaction, so even a killed worker leaves it whole or absent.
"""

import logging
import os
import shutil
import tempfile

from granian import Granian
from granian.constants import Interfaces
from granian.log import LogLevels

from config import environment

WORKERS_KILL_TIMEOUT = 30


def metrics_dir() -> str:
    """prometheus_client's multiprocess mode: every worker writes its metrics to files in one
    directory, and /metrics (or APP_METRICS_PORT) adds them up. The files of an earlier run
    would be added up too, so the directory starts empty."""
    path = environment.env.str("PROMETHEUS_MULTIPROC_DIR", "") or tempfile.mkdtemp(
        prefix="metrics-"
    )
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path


def serve_metrics_port() -> None:
    """APP_METRICS_PORT, served by the main process from every worker's files."""
    listen = environment.server()
    if listen.metrics_port:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        start_http_server(listen.metrics_port, addr=listen.host, registry=registry)


class _ThreadCountChosen(logging.Filter):
    """Granian warns when a worker may run more threads than twice the cores. Those threads
    wait on PostgreSQL and Redis, not on the CPU, and WEB_THREADS is the setting to change
    (README "Performance"), so the warning only puzzles whoever starts the server."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Python threads" not in record.getMessage()


def announce(host: str, port: int) -> None:
    """The address first, as the server bound it, so that `make run` ends on something to open."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "::") else host  # noqa: S104 (read, not bound)
    on = f" (all interfaces: {host})" if shown != host else ""
    print(f"Serving on http://{shown}:{port}/{on}; Ctrl-C stops", flush=True)


def main() -> None:
    metrics_dir()  # before the workers start: they inherit the variable
    listen = environment.server()
    server = Granian(
        "config.wsgi:application",
        interface=Interfaces.WSGI,
        address=listen.host,
        port=listen.port,
        workers=listen.workers,
        blocking_threads=listen.threads,
        websockets=False,
        # A rush opens thousands of connections: the kernel's listen queue as deep as
        # net.core.somaxconn allows, and granian's per-worker cap on the connections it holds
        # (one permit per open connection) far above them, so that a new arrival is accepted
        # and answered, admitted or busy (README "Admission").
        backlog=int(os.environ.get("WEB_BACKLOG", "4096")),
        backpressure=int(os.environ.get("WEB_MAX_CONNECTIONS", "16384")),
        respawn_failed_workers=True,
        workers_kill_timeout=WORKERS_KILL_TIMEOUT,
        # The request middleware writes the request lines (config/settings.py LOGGING).
        log_level=LogLevels.warning,
    )
    logging.getLogger("_granian").addFilter(_ThreadCountChosen())
    server.on_startup(lambda: announce(listen.host, listen.port))
    server.on_startup(serve_metrics_port)
    server.serve()


if __name__ == "__main__":
    main()
