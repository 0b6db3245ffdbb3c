"""Throw-away scale-out engines for tests and load runs, each on spare ports of 127.0.0.1 with
its files in a temporary directory: a Redis Cluster (3 masters, 3 replicas), PgBouncer in
transaction mode, and a RabbitMQ node. Each can be killed and started again; none touches the
machine's shared servers (a RabbitMQ node of its own name, ports, cookie and files).
"""

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

from testkit.stack import Running, Stack, free_port, wait_for


def _free_ports(count: int) -> list[int]:
    """`count` distinct spare ports: held open together while chosen, so none repeats."""
    with contextlib.ExitStack() as held:
        sockets = [held.enter_context(socket.socket()) for _ in range(count)]
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in sockets]


def _workdir(prefix: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=prefix))


def _spawn(args: list[str], log: Path, **kwargs: object) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen(  # type: ignore[call-overload, no-any-return]
            args, stdout=out, stderr=out, start_new_session=True, **kwargs
        )


def _kill(process: subprocess.Popen[bytes] | None) -> None:
    if process is not None and process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class RedisCluster(Running):
    """Six redis-servers in cluster mode: three masters, each with one replica. A master that
    stops answering for `NODE_TIMEOUT_MS` is replaced by its replica."""

    NODE_TIMEOUT_MS = 1000

    def __init__(self) -> None:
        self.dir = _workdir("redis-cluster-")
        ports = _free_ports(12)
        self.ports = ports[:6]
        self.bus_ports = dict(zip(self.ports, ports[6:], strict=True))
        self.processes: dict[int, subprocess.Popen[bytes] | None] = dict.fromkeys(self.ports)
        self.url = f"redis://127.0.0.1:{self.ports[0]}/0"

    def up(self) -> None:
        self.create()

    def __exit__(self, *exc: object) -> None:
        for port in self.ports:
            self.kill(port)
        shutil.rmtree(self.dir, ignore_errors=True)

    def create(self) -> None:
        for port in self.ports:
            self.start(port)
        subprocess.run(
            [
                shutil.which("redis-cli") or "redis-cli", "--cluster", "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        wait_for(self.assert_healthy, "redis cluster", seconds=60)

    def start(self, port: int) -> None:
        """Start a node; one that was killed rejoins from its nodes file, as a replica if its
        slots moved meanwhile. Without persistence, it rejoins empty."""
        data = self.dir / str(port)
        data.mkdir(exist_ok=True)
        self.processes[port] = _spawn(
            [
                shutil.which("redis-server") or "redis-server",
                "--port", str(port), "--bind", "127.0.0.1",
                "--cluster-enabled", "yes", "--cluster-port", str(self.bus_ports[port]),
                "--cluster-config-file", str(data / "nodes.conf"),
                "--cluster-node-timeout", str(self.NODE_TIMEOUT_MS),
                # A replica of a master killed mid-rush always takes over, however stale.
                "--cluster-replica-validity-factor", "0",
                "--save", "", "--appendonly", "no", "--dir", str(data),
            ],
            self.dir / f"{port}.log",
        )  # fmt: skip
        try:
            wait_for(redis.Redis(port=port).ping, f"redis-server on {port}")
        except RuntimeError as exc:
            log = (self.dir / f"{port}.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"{exc}:\n{log}") from None

    def kill(self, port: int) -> None:
        _kill(self.processes.get(port))
        self.processes[port] = None

    def master_of(self, key: str) -> int:
        """The port of the master that owns the slot of `key`."""
        node = redis.Redis(port=self._live_port())
        slot = node.cluster("keyslot", key)
        for start, end, master, *_ in node.cluster("slots"):
            if start <= slot <= end:
                return int(master[1])
        raise LookupError(f"no master owns slot {slot}")

    def assert_healthy(self) -> None:
        """Every live node sees the cluster as `ok` and every slot owned by a live master."""
        for port, process in self.processes.items():
            if process is None:
                continue
            info = redis.Redis(port=port).cluster("info")
            assert info["cluster_state"] == "ok", (port, info["cluster_state"])
            assert int(info["cluster_slots_ok"]) == 16384, (port, info)
        for _, _, master, *_ in redis.Redis(port=self._live_port()).cluster("slots"):
            assert self.processes.get(int(master[1])) is not None, master

    def _live_port(self) -> int:
        return next(port for port, process in self.processes.items() if process is not None)


class PgBouncer(Running):
    """PgBouncer in transaction mode in front of a PostgreSQL server (trust authentication),
    taking up to `max_clients` client connections onto at most `server_connections`."""

    def __init__(self, target_port: int, *, server_connections: int = 10) -> None:
        self.dir = _workdir("pgbouncer-")
        self.port = free_port()
        self.target_port = target_port
        self.server_connections = server_connections
        self.process: subprocess.Popen[bytes] | None = None
        # PgBouncer refuses to run as root: it runs as the account that owns PostgreSQL.
        self.user = "postgres" if os.geteuid() == 0 else ""

    def url(self, database: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def client_connections(self) -> int:
        """Clients connected right now, from PgBouncer's admin console."""
        console = self.url("pgbouncer")  # it speaks the simple query protocol only
        with psycopg.connect(console, autocommit=True, cursor_factory=psycopg.ClientCursor) as db:
            rows = db.execute("SHOW LISTS").fetchall()
        return int(dict(rows)["used_clients"])

    def up(self) -> None:
        self.start()

    def __exit__(self, *exc: object) -> None:
        _kill(self.process)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        (self.dir / "users.txt").write_text('"postgres" ""\n')
        (self.dir / "pgbouncer.ini").write_text(
            f"""\
[databases]
* = host=127.0.0.1 port={self.target_port}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {self.port}
unix_socket_dir =
auth_type = trust
admin_users = postgres
auth_file = {self.dir}/users.txt
pool_mode = transaction
max_client_conn = 1000
default_pool_size = {self.server_connections}
max_db_connections = {self.server_connections}
ignore_startup_parameters = extra_float_digits,options
; PostgreSQL down shows up as an error within seconds (tickets go to the spool), not as a wait.
query_wait_timeout = 5
server_login_retry = 1
server_reset_query =
logfile = {self.dir}/pgbouncer.log
"""
        )
        if self.user:
            shutil.chown(self.dir, self.user)
        prefix = ["runuser", "-u", self.user, "--"] if self.user else []
        self.process = _spawn(
            [*prefix, shutil.which("pgbouncer") or "/usr/sbin/pgbouncer", "pgbouncer.ini"],
            self.dir / "stdout.log",
            cwd=self.dir,
        )

        def listening() -> None:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()

        wait_for(listening, "pgbouncer")


class RabbitMQ(Running):
    """A RabbitMQ node of its own: its node name, AMQP and distribution ports, Erlang cookie,
    configuration, database and logs all in a temporary directory. Killed (SIGKILL) and started
    again, it keeps its durable queues and persistent messages, as a crashed broker would."""

    SERVER = "/usr/lib/rabbitmq/bin/rabbitmq-server"

    def __init__(self) -> None:
        self.dir = _workdir("rabbitmq-")
        self.port, self.dist_port = _free_ports(2)
        self.url = f"amqp://guest:guest@127.0.0.1:{self.port}//"
        self.process: subprocess.Popen[bytes] | None = None
        (self.dir / "rabbitmq.conf").write_text(
            f"listeners.tcp.local = 127.0.0.1:{self.port}\n"
            # Celery tasks here are short; a consumer is never that slow to acknowledge.
            "consumer_timeout = 60000\n"
        )
        (self.dir / "rabbitmq-env.conf").write_text("")  # not the machine's node settings
        (self.dir / "enabled_plugins").write_text("[].\n")
        self.env = {
            **os.environ,
            "HOME": str(self.dir),  # its own Erlang cookie
            "RABBITMQ_NODENAME": f"test-{os.getpid()}-{self.port}@localhost",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_CONF_ENV_FILE": str(self.dir / "rabbitmq-env.conf"),
            "RABBITMQ_CONFIG_FILE": str(self.dir / "rabbitmq.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(self.dir / "enabled_plugins"),
            "RABBITMQ_MNESIA_BASE": str(self.dir / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.dir / "log"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
        }

    def up(self) -> None:
        self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        self.process = _spawn([self.SERVER], self.dir / "server.log", env=self.env)
        wait_for(self.ping, "rabbitmq", seconds=90)

    def ping(self) -> None:
        from kombu import Connection

        with Connection(self.url, connect_timeout=1) as conn:
            conn.ensure_connection(max_retries=1, timeout=1)

    def kill(self) -> None:
        _kill(self.process)
        self.process = None
        time.sleep(0.1)  # the kernel releases the listening port


@dataclass
class Engines:
    """The engines a scaled-out stack runs on; None where the stack's own default serves."""

    redis_cluster: RedisCluster | None
    pgbouncer: PgBouncer | None
    rabbitmq: RabbitMQ | None


@contextlib.contextmanager
def scaled_out(
    name: str,
    *,
    cluster: bool = False,
    pgbouncer: bool = False,
    rabbitmq: bool = False,
    own_postgres: bool = False,
    extra_env: dict[str, str] | None = None,
) -> Iterator[tuple[Stack, Engines]]:
    """A stack on the engines asked for: a Redis Cluster for the cache aliases, PgBouncer in
    front of a PostgreSQL of its own that allows fewer connections than the processes hold,
    RabbitMQ as the broker."""
    with contextlib.ExitStack() as running:
        env = dict(extra_env or {})
        engines = Engines(
            redis_cluster=running.enter_context(RedisCluster()) if cluster else None,
            pgbouncer=None,
            rabbitmq=running.enter_context(RabbitMQ()) if rabbitmq else None,
        )
        if engines.redis_cluster:
            env.update(REDIS_URL=engines.redis_cluster.url, REDIS_CLUSTER="true")
        if engines.rabbitmq:
            env["CELERY_BROKER_URL"] = engines.rabbitmq.url
        stack = Stack(name, own_postgres=own_postgres or pgbouncer, extra_env=env)
        if pgbouncer:
            assert stack.postgres is not None
            stack.postgres.max_connections = 10
            engines.pgbouncer = running.enter_context(
                PgBouncer(stack.postgres.port, server_connections=6)
            )
            stack.env.update(DATABASE_URL=engines.pgbouncer.url(stack.name), DB_PGBOUNCER="true")
        yield running.enter_context(stack), engines


def start_hosts(stack: Stack, count: int = 2, *, web_workers: int = 2) -> list[str]:
    """`count` hosts, as separate machines would run them: each a web instance and a Celery
    worker sharing a spool directory of their own. Returns the web instances' URLs."""
    urls, shared = [], stack.env["TICKET_SPOOL_DIR"]
    for host in range(count):
        stack.env["TICKET_SPOOL_DIR"] = str(stack.workdir / "spool" / f"host-{host}")
        urls.append(stack.start_web(workers=web_workers))
        stack.start_worker(f"worker-{host}")
    stack.env["TICKET_SPOOL_DIR"] = shared
    return urls
