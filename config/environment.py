"""The one reader of the environment, `.env` included: settings and the web server launchers
(`config/serve.py`, `config/gunicorn.py`) take their values from here, so a variable set in
`.env` reaches both, and a bad value stops either with `ImproperlyConfigured` naming it.
"""

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
# The test suite points this at /dev/null: a developer's .env must not change what it tests.
env.read_env(os.environ.get("DJANGO_ENV_FILE", BASE_DIR / ".env"))


def read(name: str, cast: Any, default: Any) -> Any:
    """One variable, cast; a value that does not cast names the variable in the error."""
    try:
        return env.get_value(name, cast=cast, default=default)
    except (ValueError, TypeError) as exc:
        raise ImproperlyConfigured(
            f"{name}={env.str(name)!r} is not a valid {cast.__name__}"
        ) from exc


def positive(name: str, default: int) -> int:
    value = read(name, int, default)
    if value < 1:
        raise ImproperlyConfigured(f"{name} must be a positive integer, got {value}")
    return int(value)


def whole(name: str, default: int) -> int:
    value = read(name, int, default)
    if value < 0:
        raise ImproperlyConfigured(f"{name} must be zero or more, got {value}")
    return int(value)


def share(name: str, default: int) -> float:
    """A percentage, 0 to 100, as a fraction."""
    value = read(name, int, default)
    if not 0 <= value <= 100:
        raise ImproperlyConfigured(f"{name} must be a percentage from 0 to 100, got {value}")
    return float(value) / 100


@dataclass(frozen=True)
class Server:
    """Where and how wide the web server listens."""

    host: str
    port: int
    metrics_port: int | None
    workers: int
    threads: int
    backlog: int
    max_connections: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def server() -> Server:
    return Server(
        host=env.str("APP_HOST", "127.0.0.1"),
        port=positive("APP_PORT", 8000),
        metrics_port=read("APP_METRICS_PORT", int, None),
        workers=positive("WEB_WORKERS", 2),
        # More threads than admission control lets in (ADMISSION_MAX_LIMIT plus its queue):
        # the rest answer `busy` at once instead of leaving a rush's newcomers unanswered.
        threads=positive("WEB_THREADS", 96),
        # A rush opens thousands of connections: the kernel's listen queue as deep as
        # net.core.somaxconn allows, and granian's cap on the connections a worker holds far
        # above them, so that a new arrival is accepted and answered (README "Admission").
        backlog=positive("WEB_BACKLOG", 4096),
        max_connections=positive("WEB_MAX_CONNECTIONS", 16384),
    )
