"""gunicorn configuration, from the environment: `make serve-gunicorn`. The default server is
granian (`config/serve.py`); gunicorn's threads block on slow clients, so it needs a buffering
proxy in front (README "Performance").

Graceful shutdown: on SIGTERM or Ctrl-C the master stops accepting, lets each worker finish its
in-flight requests for up to `graceful_timeout` seconds, then exits. A purchase is one database
transaction, so a worker killed even harder leaves it either committed or not there at all.
"""

from config import environment
from config.serve import metrics_dir, serve_metrics_port

listen = environment.server()
bind = f"{listen.host}:{listen.port}"
workers = listen.workers
threads = listen.threads
worker_class = "gthread"
keepalive = 30
graceful_timeout = 30
timeout = 60
backlog = listen.backlog
max_requests = 0
accesslog = None  # the request log middleware writes one structured line per request
forwarded_allow_ips = environment.env.str("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    metrics_dir()


def when_ready(server):
    serve_metrics_port()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
