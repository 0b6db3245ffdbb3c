"""`make test` on a machine where nothing is running: a command run with PostgreSQL and Redis
at `DATABASE_URL` and `REDIS_URL` when they answer there, or else with throw-away ones started
from the installed server binaries (initdb and pg_ctl, redis-server) and stopped afterwards.

    python -m testkit.services pytest -q tests/sales

It says which it used. The command sees the URLs it should use, plus `LOADTEST_ADMIN_DB` for the
stacks that create databases of their own. Tests that need a broker, PgBouncer or a Redis
Cluster start theirs, as ever.
"""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
import redis

from testkit.stack import Postgres, RedisServer

PROBE_SECONDS = 3


def postgres_answers(url: str) -> bool:
    """The server of `url` takes a connection to its `postgres` database (the suite creates
    its own test database there)."""
    try:
        psycopg.connect(with_path(url, "/postgres"), connect_timeout=PROBE_SECONDS).close()
    except psycopg.OperationalError:
        return False
    return True


def redis_answers(url: str) -> bool:
    client = redis.Redis.from_url(
        url, socket_connect_timeout=PROBE_SECONDS, socket_timeout=PROBE_SECONDS
    )
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False
    finally:
        client.close()


def with_path(url: str, path: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=path))


def with_port(url: str, port: int) -> str:
    """The same URL (user, database or db index) on 127.0.0.1:`port`."""
    parts = urlsplit(url)
    user = f"{parts.username}@" if parts.username else ""
    return urlunsplit(parts._replace(netloc=f"{user}127.0.0.1:{port}"))


def say(line: str) -> None:
    print(f"services: {line}", file=sys.stderr, flush=True)


def run(command: list[str], env: dict[str, str]) -> int:
    with contextlib.ExitStack() as started:
        database, cache = env["DATABASE_URL"], env["REDIS_URL"]
        if postgres_answers(database):
            say(f"PostgreSQL at {urlsplit(database).netloc}, already running")
        else:
            workdir = Path(tempfile.mkdtemp(prefix="test-services-"))
            cluster = Postgres(workdir)
            started.callback(subprocess.run, ["rm", "-rf", str(workdir)], check=False)
            started.callback(cluster.stop, "immediate")
            cluster.create()
            env["DATABASE_URL"] = with_port(database, cluster.port)
            env["LOADTEST_ADMIN_DB"] = cluster.admin_url
            say(
                f"no PostgreSQL at {urlsplit(database).netloc}: a throw-away cluster on"
                f" 127.0.0.1:{cluster.port} ({cluster.bin}), removed afterwards"
            )
        if redis_answers(cache):
            say(f"Redis at {urlsplit(cache).netloc}, already running")
        else:
            server = RedisServer()
            started.callback(server.kill)
            server.start()
            env["REDIS_URL"] = with_port(cache, server.port)
            say(
                f"no Redis at {urlsplit(cache).netloc}: a throw-away redis-server on"
                f" 127.0.0.1:{server.port}"
            )
        return subprocess.run(command, env=env, check=False).returncode


def main() -> None:
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    # SIGTERM unwinds like Ctrl-C, so that what was started is stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sys.exit(run(sys.argv[1:], dict(os.environ)))


if __name__ == "__main__":
    main()
