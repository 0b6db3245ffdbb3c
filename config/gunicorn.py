"""gunicorn configuration, from the environment.

Graceful shutdown: on SIGTERM or Ctrl-C the master stops accepting, lets each worker finish its
in-flight requests for up to `graceful_timeout` seconds, then exits. A purchase is one database
transaction, so a worker killed even harder leaves it either committed or not there at all.
"""

import os
import shutil
import tempfile

bind = f"{os.environ.get('APP_HOST', '127.0.0.1')}:{os.environ.get('APP_PORT', '8000')}"
workers = int(os.environ.get("WEB_WORKERS", "2"))
threads = int(os.environ.get("WEB_THREADS", "4"))
worker_class = "gthread"
keepalive = 30
graceful_timeout = 30
timeout = 60
backlog = 2048
max_requests = 0
accesslog = None  # the request log middleware writes one structured line per request
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")

# prometheus_client's multiprocess mode: every worker writes its metrics to files in one
# directory, and /metrics (or APP_METRICS_PORT) adds them up.
_metrics_dir = os.environ.setdefault(
    "PROMETHEUS_MULTIPROC_DIR", tempfile.mkdtemp(prefix="metrics-")
)


def on_starting(server):
    shutil.rmtree(_metrics_dir, ignore_errors=True)
    os.makedirs(_metrics_dir, exist_ok=True)


def when_ready(server):
    port = os.environ.get("APP_METRICS_PORT")
    if port:
        from prometheus_client import CollectorRegistry, start_http_server
        from prometheus_client.multiprocess import MultiProcessCollector

        registry = CollectorRegistry()
        MultiProcessCollector(registry)
        start_http_server(int(port), registry=registry)


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
