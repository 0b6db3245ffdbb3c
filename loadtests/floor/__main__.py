"""`python -m loadtests.floor`: make the floor's tables and mark its sale ready in Redis, then
serve it as `config/serve.py` serves the project (granian, WSGI, `APP_PORT`, `WEB_WORKERS`,
`WEB_THREADS`)."""

import os

import psycopg
import redis
from granian import Granian
from granian.constants import Interfaces
from granian.log import LogLevels

from loadtests.floor.views import KEY_LIFETIME_SECONDS, READY, TABLES


def main() -> None:
    with psycopg.connect(os.environ["DATABASE_URL"], autocommit=True) as db:
        for table in TABLES:
            db.execute(table)
    redis.Redis.from_url(os.environ["REDIS_URL"]).set(READY, 1, ex=KEY_LIFETIME_SECONDS)
    Granian(
        "loadtests.floor.wsgi:application",
        interface=Interfaces.WSGI,
        address="127.0.0.1",
        port=int(os.environ.get("APP_PORT", "8000")),
        workers=int(os.environ.get("WEB_WORKERS", "2")),
        blocking_threads=int(os.environ.get("WEB_THREADS", "16")),
        websockets=False,
        backlog=2048,
        log_level=LogLevels.warning,
    ).serve()


if __name__ == "__main__":
    main()
