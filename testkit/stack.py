"""A throw-away local stack for load and fault runs: its own PostgreSQL database (on the
machine's server, or in a cluster of its own that a fault run may stop), its own redis-server,
web servers and Celery workers, all on spare ports of 127.0.0.1.

The web server is the one `make serve` runs (granian), or `WEB_SERVER=gunicorn` for the one
`make serve-gunicorn` runs. A stack serves this checkout's code, or another checkout's (`root`,
with the Python of its virtualenv) for A/B benchmarks.

Everything it starts, it stops (also on Ctrl-C). It never stops the machine's shared servers.
"""

import contextlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
BIN = Path(PYTHON).parent
# A log line worth showing in a failing test's report whatever its place in the log: an error
# logged (as JSON by the web processes, as text by Celery) or a server error answered.
_ERROR = re.compile(r'"levelname": "(ERROR|CRITICAL)"|"status": 5\d\d|(ERROR|CRITICAL)/|\[ERROR\]')


def _shortened(line: str) -> str:
    """A long line's head and its end, where a trace names what was raised."""
    return line if len(line) <= 2000 else f"{line[:300]} ... {line[-1700:]}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server of the run's own on a spare port, without persistence: killed and
    started again, it has forgotten everything, as a crashed Redis would."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(self.port), "--bind", "127.0.0.1",
                "--save", "", "--appendonly", "no",
            ],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(redis.Redis(port=self.port).ping, "redis-server")

    def pause(self) -> None:
        """Stop answering without losing anything, like a stalled server or a network cut."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)
            self.process.kill()
            self.process.wait(timeout=30)
            self.process = None


def postgres_bin() -> Path:
    """Where initdb and pg_ctl are: pg_config's answer, or else (a server installed without the
    development files) the newest of Debian's /usr/lib/postgresql/<version>/bin."""
    if shutil.which("pg_config"):
        bindir = subprocess.run(
            ["pg_config", "--bindir"], capture_output=True, text=True, check=True
        ).stdout.strip()
        if (Path(bindir) / "initdb").exists():
            return Path(bindir)
    installed = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3])
    )
    if not installed:
        raise RuntimeError("no PostgreSQL server binaries (initdb): install PostgreSQL")
    return installed[-1].parent


class Postgres:
    """A PostgreSQL server of the run's own (initdb into a temporary directory, a spare port),
    which a fault run may stop and start at will."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir / "pg"
        self.port = free_port()
        self.admin_url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self.max_connections = 200
        self.bin = postgres_bin()
        # PostgreSQL refuses to run as root: run it as the account that owns the installation.
        self.user = pwd.getpwuid((self.bin / "postgres").stat().st_uid).pw_name
        if os.geteuid() == 0 and self.user == "root":
            self.user = "postgres"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", self.user, "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True, cwd=self.dir)

    def create(self) -> None:
        self.dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir.parent, self.user)
            shutil.chown(self.dir, self.user)
        self._run(str(self.bin / "initdb"), "-D", str(self.dir), "-U", "postgres", "-A", "trust")
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1"
            f" -c max_connections={self.max_connections}"
        )
        self._run(
            str(self.bin / "pg_ctl"), "-D", str(self.dir), "-o", options,
            "-l", str(self.dir / "log"), "-w", "start",
        )  # fmt: skip

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(subprocess.CalledProcessError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.dir), "-m", mode, "-w", "stop")


class Running:
    """A throw-away server or stack as a context: leaving it undoes even a half-done `up()`."""

    def up(self) -> None:
        raise NotImplementedError

    def __exit__(self, *exc: object) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            self.up()
        except BaseException:
            self.__exit__()
            raise
        return self


class Stack(Running):
    def __init__(
        self,
        name: str,
        *,
        own_postgres: bool = False,
        admin_url: str = os.environ.get(
            "LOADTEST_ADMIN_DB", "postgres://postgres@127.0.0.1:5432/postgres"
        ),
        extra_env: dict[str, str] | None = None,
        root: Path = ROOT,
        python: str = PYTHON,
    ) -> None:
        # The process id keeps two runs on one PostgreSQL server out of each other's database.
        self.name = f"{name}_{os.getpid()}"
        self.workdir = Path(tempfile.mkdtemp(prefix=f"{name}-"))
        self.postgres = Postgres(self.workdir) if own_postgres else None
        self.admin_url = self.postgres.admin_url if self.postgres else admin_url
        self.db_url = self.admin_url.rsplit("/", 1)[0] + f"/{self.name}"
        self.root = root
        self.python = python
        self.bin = Path(python).parent
        self.redis = RedisServer()
        self.redis_url = self.redis.url
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
            # Nor admission control, which answers a loaded machine's slowness with `busy`:
            # the admission runs turn it on.
            "ADMISSION": "false",
            **(extra_env or {}),
        }

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        if self.postgres:
            self.postgres.create()
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.redis.start()
        self.manage("migrate", "--no-input", "-v0")
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))

    def up(self) -> None:
        self.start()

    def __exit__(self, *exc: object) -> None:
        if exc and exc[0] is not None:  # what each process said, in the failing test's report
            for log in sorted(self.workdir.glob("*.log")):
                text = log.read_text(errors="replace")
                errors = [_shortened(line) for line in text.splitlines() if _ERROR.search(line)]
                print(
                    f"----- {log.name} (its errors) -----", *errors[:20], sep="\n", file=sys.stderr
                )
                print(f"----- {log.name} (its end) -----\n{text[-4000:]}", file=sys.stderr)
        for name in list(self.processes):
            self.stop(name)
        self.redis.kill()
        if self.postgres:
            self.postgres.stop("immediate")
        else:
            with (
                contextlib.suppress(Exception),
                psycopg.connect(self.admin_url, autocommit=True) as conn,
            ):
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        shutil.rmtree(self.workdir, ignore_errors=True)

    def spawn(self, name: str, args: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 (closed with the process)
        # A session of its own, so that a signal can reach a process and its children.
        self.processes[name] = subprocess.Popen(
            args,
            cwd=self.root,
            env={**self.env, **(env or {})},
            stdout=log,
            stderr=log,
            start_new_session=True,
        )

    def signal_group(self, name: str, sig: int) -> None:
        """To a process and its children: SIGSTOP pauses a Celery worker and its pool."""
        os.killpg(self.processes[name].pid, sig)

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGCONT)
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)
        # A child still shutting down (a server's worker) must not outlive the stack.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def log(self, name: str) -> str:
        return (self.workdir / f"{name}.log").read_text(errors="replace")

    # -- parts ----------------------------------------------------------------------------

    def start_web(
        self,
        *,
        workers: int = 2,
        threads: int = 16,
        port: int | None = None,
        server: str | None = None,
        env: dict[str, str] | None = None,
    ) -> str:
        """A web server (`granian` or `gunicorn`, default `WEB_SERVER` or granian) on a spare
        port, run as `make serve` or `make serve-gunicorn` runs it; returns its base URL once
        it answers."""
        port = port or free_port()
        name = f"web-{port}"
        server = server or os.environ.get("WEB_SERVER", "granian")
        command = {
            "granian": [self.python, "-m", "config.serve"],
            "gunicorn": [str(self.bin / "gunicorn"), "-c", "config/gunicorn.py", "config.wsgi"],
        }[server]
        metrics = self.workdir / f"metrics-{port}"
        metrics.mkdir(exist_ok=True)  # a server started again on its port reuses it
        self.spawn(
            name,
            command,
            env={
                "APP_PORT": str(port),
                "WEB_WORKERS": str(workers),
                "WEB_THREADS": str(threads),
                "PROMETHEUS_MULTIPROC_DIR": str(metrics),
                **(env or {}),
            },
        )
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: urllib.request.urlopen(f"{url}/ping", timeout=1), f"{server} on {port}")
        self.ports.append(port)
        return url

    def start_worker(
        self,
        name: str = "worker",
        concurrency: int = 1,
        env: dict[str, str] | None = None,
        supervised: bool = False,
    ) -> None:
        """A Celery worker; returns once it is consuming. A supervised one is started again
        whenever it exits, as the compose file's restart policy does."""
        command = [
            str(self.bin / "celery"), "-A", "config", "worker", "--loglevel=INFO",
            f"--concurrency={concurrency}", "-n", f"{name}@%h",
        ]  # fmt: skip
        if supervised:
            command = ["sh", "-c", 'while :; do "$@"; sleep 1; done', name, *command]
        self.spawn(name, command, env)

        def consuming() -> None:
            if "ready." not in self.log(name):
                raise RuntimeError("not yet")

        wait_for(consuming, f"celery worker {name}", seconds=60)

    def start_beat(self) -> None:
        self.spawn(
            "beat",
            [
                str(self.bin / "celery"), "-A", "config", "beat", "--loglevel=INFO",
                "--schedule", str(self.workdir / "beat-schedule"),
            ],
        )  # fmt: skip

    def manage(self, *args: str) -> str:
        """The command's output; it raises if the command failed, except `sale_report`, whose
        exit status 1 says that an invariant is broken (which the caller checks)."""
        result = subprocess.run(
            [self.python, "manage.py", *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        if result.returncode not in ((0, 1) if args[0] == "sale_report" else (0,)):
            raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def manage_json(self, *args: str) -> Any:
        return json.loads(self.manage(*args))

    def query(self, sql: str, params: list[Any] | None = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else []

    # -- tickets --------------------------------------------------------------------------

    def spool_files(self) -> int:
        spool = self.workdir / "spool"  # one directory, or one per host below it
        return len([*spool.glob("**/*.seg"), *spool.glob("**/*.sealed")])

    def tickets_settled(self, expected: int, timeout: float) -> dict[str, Any]:
        """Polls until `expected` tickets are stored, none is left `received` and the spool is
        empty, or `timeout` seconds pass; returns the status counts, whether they settled, and
        how fast the backlog found at the start was worked off."""
        started = time.monotonic()
        backlog = None
        while True:
            counts = dict(self.query("SELECT status, count(*) FROM tickets_ticket GROUP BY 1"))
            backlog = counts.get("received", 0) if backlog is None else backlog
            settled = (
                sum(counts.values()) >= expected
                and not counts.get("received")
                and not self.spool_files()
            )
            if settled or time.monotonic() - started > timeout:
                break
            time.sleep(0.2)
        elapsed = time.monotonic() - started
        ((parsed, span),) = self.query(
            "SELECT count(*), extract(epoch FROM max(parsed_at) - min(parsed_at))"
            " FROM tickets_ticket WHERE parsed_at IS NOT NULL"
        )
        return {
            "worker_rate": parsed / float(span) if span else None,
            "counts": counts,
            "settled": settled,
            "backlog": backlog,
            "catch_up_seconds": elapsed,
            "rate": backlog / elapsed if backlog and elapsed > 0.2 else None,
        }


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
