"""A throw-away local stack for load and fault runs: its own PostgreSQL database, its own
redis-server, gunicorn instances and Celery workers on spare ports of 127.0.0.1.

Everything it starts, it stops (also on Ctrl-C). It never stops the machine's shared servers.
"""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Stack:
    def __init__(
        self,
        name: str,
        *,
        admin_url: str = os.environ.get(
            "LOADTEST_ADMIN_DB", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
        extra_env: dict[str, str] | None = None,
    ) -> None:
        self.name = name
        self.admin_url = admin_url
        self.db_url = admin_url.rsplit("/", 1)[0] + f"/{name}"
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.ports: list[int] = []
        self.env = {
            **os.environ,
            "DATABASE_URL": self.db_url,
            "REDIS_URL": self.redis_url,
            "CELERY_BROKER_URL": self.redis_url.replace("/0", "/1"),
            "DJANGO_SECRET_KEY": "load-test",
            "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
            "DJANGO_SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "TICKET_SPOOL_DIR": str(self.workdir / "spool"),
            # Load runs send everything from one address: they measure the service, not the
            # rate limiter (which tests/platform/test_security.py covers).
            "RATE_LIMIT_PER_USER": "off",
            "RATE_LIMIT_PER_CODE": "off",
            "RATE_LIMIT_PER_ADDRESS": "off",
            **(extra_env or {}),
        }

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> "Stack":
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.start_redis()
        self.manage("migrate", "--no-input", "-v0")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        return self

    def __exit__(self, *exc: object) -> None:
        for name in list(self.processes):
            self.stop(name)
        with contextlib.suppress(Exception), psycopg.connect(self.admin_url, autocommit=True) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        shutil.rmtree(self.workdir, ignore_errors=True)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        self.processes[name] = subprocess.Popen(
            args, cwd=ROOT, env={**self.env, **(env or {})}, stdout=log, stderr=log
        )

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGCONT)
            process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    # -- parts ----------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.spawn(
            "redis",
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        client = redis.Redis(port=self.redis_port)
        wait_for(client.ping, "redis-server")

    def start_web(self, *, workers: int = 2, threads: int = 4, port: int | None = None) -> str:
        port = port or free_port()
        name = f"web-{port}"
        self.spawn(
            name,
            [str(BIN / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi"],
            env={
                "APP_PORT": str(port),
                "WEB_WORKERS": str(workers),
                "WEB_THREADS": str(threads),
                "PROMETHEUS_MULTIPROC_DIR": str(self.workdir / f"metrics-{port}"),
            },
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{url}/ping", timeout=1), f"gunicorn on {port}")
        self.ports.append(port)
        return url

    def start_worker(self, name: str = "worker", *args: str) -> None:
        self.spawn(
            name,
            [
                str(BIN / "celery"),
                "-A",
                "config",
                "worker",
                "--loglevel=WARNING",
                "-n",
                f"{name}@%h",
                *args,
            ],
        )

    def manage(self, *args: str) -> str:
        result = subprocess.run(
            [PYTHON, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode not in (0, 1):
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def manage_json(self, *args: str) -> Any:
        return json.loads(self.manage(*args))


def wait_for(probe: Any, what: str, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while True:
        try:
            probe()
            return
        except Exception:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not come up") from None
            time.sleep(0.1)
