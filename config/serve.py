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

import os
import shutil
import tempfile

from granian import Granian
from granian.constants import Interfaces
from granian.log import LogLevels

WORKERS_KILL_TIMEOUT = 30


def metrics_dir() -> str:
    """prometheus_client's multiprocess mode: every worker writes its metrics to files in one
    directory, and /metrics (or APP_METRICS_PORT) adds them up. The files of an earlier run
    would be added up too, so the directory starts empty."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or tempfile.mkdtemp(prefix="metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
    shutil.rmtree(path, ignore_errors=True)
    os.makedirs(path, exist_ok=True)
    return path


def serve_metrics_port() -> None:
    """APP_METRICS_PORT, served by the main process from every worker's files."""
    port = os.environ.get("APP_METRICS_PORT")
    if port:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        address = os.environ.get("APP_HOST", "127.0.0.1")
        start_http_server(int(port), addr=address, registry=registry)


def main() -> None:
    metrics_dir()  # before the workers start: they inherit the variable
    server = Granian(
        "config.wsgi:application",
        interface=Interfaces.WSGI,
        address=os.environ.get("APP_HOST", "127.0.0.1"),
        port=int(os.environ.get("APP_PORT", "8000")),
        workers=int(os.environ.get("WEB_WORKERS", "2")),
        blocking_threads=int(os.environ.get("WEB_THREADS", "64")),
        websockets=False,
        # A rush opens thousands of connections: the kernel's listen queue as deep as
        # net.core.somaxconn allows, and granian's per-worker cap on the connections it holds
        # (one permit per open connection) far above them, so that a new arrival is accepted
        # and answered, admitted or busy (README "Admission").
        backlog=int(os.environ.get("WEB_BACKLOG", "4096")),
        backpressure=int(os.environ.get("WEB_MAX_CONNECTIONS", "16384")),
        respawn_failed_workers=True,
        workers_kill_timeout=WORKERS_KILL_TIMEOUT,
        # The request middleware logs failed and slow requests itself.
        log_level=LogLevels.warning,
    )
    server.on_startup(serve_metrics_port)
    server.serve()


if __name__ == "__main__":
    main()
