"""`make test` with nothing running: the launcher passes on the servers that answer, and starts
throw-away ones, which the command can use, where none does; it stops them afterwards."""

import os
import subprocess
import sys

from django.conf import settings

from testkit.stack import free_port

# What the command sees, and whether it reaches both servers through it.
PROBE = """
import os, psycopg, redis
from testkit.services import with_path
psycopg.connect(with_path(os.environ["DATABASE_URL"], "/postgres")).close()
redis.Redis.from_url(os.environ["REDIS_URL"]).ping()
print(os.environ["DATABASE_URL"], os.environ["REDIS_URL"], os.environ.get("LOADTEST_ADMIN_DB"))
"""


def launch(database: str, cache: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "testkit.services", sys.executable, "-c", PROBE],
        cwd=settings.BASE_DIR,
        env={**os.environ, "DATABASE_URL": database, "REDIS_URL": cache},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )


def test_servers_that_answer_are_used_as_they_are():
    database, cache = os.environ["DATABASE_URL"], os.environ["REDIS_URL"]
    result = launch(database, cache)
    assert result.stdout.split()[:2] == [database, cache]
    assert "already running" in result.stderr


def test_where_nothing_answers_throw_away_servers_are_started_and_stopped():
    closed = free_port()
    result = launch(
        f"postgres://postgres@127.0.0.1:{closed}/test_x", f"redis://127.0.0.1:{closed}/5"
    )
    database, cache, admin = result.stdout.split()
    assert database.startswith("postgres://postgres@127.0.0.1:")
    assert database.endswith("/test_x")
    assert cache.endswith("/5")
    assert admin.endswith("/postgres")
    assert "a throw-away cluster" in result.stderr
    assert "a throw-away redis-server" in result.stderr
    pg_port, redis_port = database.split(":")[2].split("/")[0], cache.split(":")[2].split("/")[0]
    running = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"127.0.0.1:{redis_port}" not in running
    assert f"-p {pg_port}" not in running
