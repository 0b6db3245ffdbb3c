"""Settings are read in a fresh interpreter per case: they are evaluated once per process."""

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from testkit.stack import free_port, wait_for

pytestmark = pytest.mark.smoke

PRODUCTION = {"DJANGO_SECRET_KEY": "s", "DJANGO_ALLOWED_HOSTS": "example.com"}
CONFIG_VARS = (
    "DATABASE_URL",
    "DB_HOST",
    "DB_PORT",
    "DB_USER",
    "DB_PASSWORD",
    "DB_NAME",
    "DB_SSL_MODE",
    "REDIS_URL",
    "REDIS_HOST",
    "REDIS_PORT",
    "REDIS_PASSWORD",
    "REDIS_CLUSTER",
    "REDIS_CLUSTER_NODES",
    "CELERY_BROKER_URL",
    "DJANGO_SECRET_KEY",
    "DJANGO_ALLOWED_HOSTS",
    "DJANGO_DEBUG",
)


def load_settings(**variables: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS}
    environ.update(variables, DJANGO_SETTINGS_MODULE="config.settings")
    code = (
        "import json; from django.conf import settings as s; print(json.dumps({"
        "'db': s.DATABASES['default'], 'caches': sorted(s.CACHES), 'redis': s.REDIS_URL,"
        "'broker': s.CELERY_BROKER_URL, 'eager': s.CELERY_TASK_ALWAYS_EAGER,"
        "'embedded': s.EMBEDDED, 'limit': s.APP_USER_LIMIT, 'cluster': s.REDIS_CLUSTER,"
        "'cluster_nodes': s.REDIS_CLUSTER_NODES, 'transport': s.CELERY_BROKER_TRANSPORT_OPTIONS,"
        "'cache_options': {k: v.get('OPTIONS', {}) for k, v in s.CACHES.items()}}, default=str))"
    )
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=False
    )


def settings_of(**variables: str) -> dict:
    result = load_settings(**variables)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_embedded_default_needs_no_variable():
    s = settings_of()
    assert s["embedded"] is True
    assert s["db"]["ENGINE"].endswith("sqlite3")
    assert s["db"]["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert s["caches"] == ["default"]
    assert s["redis"] == ""
    assert s["eager"] is True
    assert s["broker"] == "memory://localhost/"  # kombu warns on each task without a host


def test_seed_style_database_variables_equal_the_url():
    from_url = settings_of(
        DATABASE_URL="postgres://shop:p%40ss@db.internal:6543/shop?sslmode=require", **PRODUCTION
    )["db"]
    from_parts = settings_of(
        DB_HOST="db.internal",
        DB_PORT="6543",
        DB_USER="shop",
        DB_PASSWORD="p@ss",
        DB_NAME="shop",
        DB_SSL_MODE="require",
        **PRODUCTION,
    )["db"]
    keys = ("ENGINE", "HOST", "PORT", "USER", "PASSWORD", "NAME")
    assert {k: str(from_url[k]) for k in keys} == {k: str(from_parts[k]) for k in keys}
    assert from_url["OPTIONS"]["sslmode"] == from_parts["OPTIONS"]["sslmode"] == "require"
    assert from_url["OPTIONS"]["pool"] == from_parts["OPTIONS"]["pool"]


def test_seed_style_redis_variables_equal_the_url():
    from_parts = settings_of(REDIS_HOST="cache", REDIS_PORT="6380", REDIS_PASSWORD="s/cret")
    assert from_parts["redis"] == "redis://:s%2Fcret@cache:6380/0"
    assert from_parts["broker"] == from_parts["redis"]
    assert from_parts["caches"] == ["default", "stock"]
    assert from_parts["eager"] is False


def test_a_redis_cluster_is_named_by_any_node_or_a_list():
    by_url = settings_of(
        REDIS_URL="redis://node-1:7000/0", REDIS_CLUSTER="true", CELERY_BROKER_URL="amqp://mq//"
    )
    by_list = settings_of(
        REDIS_CLUSTER_NODES="node-1:7000,node-2:7000", CELERY_BROKER_URL="amqp://mq//"
    )
    for s in (by_url, by_list):
        assert s["cluster"] is True
        assert s["redis"] == "redis://node-1:7000/0"
        assert s["broker"] == "amqp://mq//"
        factories = {alias: o["CONNECTION_FACTORY"] for alias, o in s["cache_options"].items()}
        assert factories == dict.fromkeys(
            ["default", "stock"], "core.redis.ClusterConnectionFactory"
        )
    assert by_list["cluster_nodes"] == ["node-1:7000", "node-2:7000"]


def test_rabbitmq_publishes_with_confirms_and_redis_keeps_its_visibility_timeout():
    assert settings_of(CELERY_BROKER_URL="amqp://mq//")["transport"] == {"confirm_publish": True}
    assert settings_of(REDIS_URL="redis://cache:6379/0")["transport"] == {
        "visibility_timeout": 3600
    }


@pytest.mark.parametrize(
    ("variables", "named"),
    [
        ({"APP_USER_LIMIT": "ten"}, "APP_USER_LIMIT"),
        ({"APP_ITEM_NUMBER": "0"}, "APP_ITEM_NUMBER"),
        ({"CHECKOUT_TTL_SECONDS": "-5"}, "CHECKOUT_TTL_SECONDS"),
        ({"DB_HOST": "db", "DB_PORT": "fivefourthreetwo", **PRODUCTION}, "DB_PORT"),
        ({"REDIS_URL": "http://cache:6379"}, "REDIS_URL"),
        ({"REDIS_CLUSTER": "true"}, "REDIS_CLUSTER"),
        ({"REDIS_CLUSTER_NODES": "node-1:7000,node-2"}, "REDIS_CLUSTER_NODES"),
        ({"REDIS_URL": "redis://cache:6379/0", "REDIS_CLUSTER": "true"}, "CELERY_BROKER_URL"),
        (
            {
                "REDIS_URL": "redis://c:6379/2",
                "REDIS_CLUSTER": "true",
                "CELERY_BROKER_URL": "amqp://",
            },
            "REDIS_URL",
        ),
        ({"ADMISSION_RESERVE_PERCENT": "120"}, "ADMISSION_RESERVE_PERCENT"),
        ({"ADMISSION_RETURN_PERCENT": "-1"}, "ADMISSION_RETURN_PERCENT"),
        ({"ADMISSION_QUEUE": "-1"}, "ADMISSION_QUEUE"),
        ({"ADMISSION_MIN_LIMIT": "40"}, "ADMISSION_MIN_LIMIT"),
        ({"DATABASE_URL": "mysql://x@y/z", **PRODUCTION}, "DATABASE_URL"),
        ({"DATABASE_URL": "postgres://x@y/z"}, "DJANGO_SECRET_KEY"),
        ({"DATABASE_URL": "postgres://x@y/z", "DJANGO_SECRET_KEY": "s"}, "DJANGO_ALLOWED_HOSTS"),
        (
            {"DATABASE_URL": "postgres://x@y/z", "DJANGO_DEBUG": "true", **PRODUCTION},
            "DJANGO_DEBUG",
        ),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(variables, named):
    result = load_settings(**variables)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr
    assert named in result.stderr


def test_no_request_is_wrapped_in_a_transaction():
    """ATOMIC_REQUESTS stays off on every database: each service owns its transaction and how
    long its locks are held."""
    from django.db import connections

    assert not [conn.alias for conn in connections.all() if conn.settings_dict["ATOMIC_REQUESTS"]]


SERVER_VARS = ("APP_HOST", "APP_PORT", "APP_METRICS_PORT", "WEB_WORKERS", "WEB_THREADS")


def launcher_environ(tmp_path: Path, env_file: str) -> dict[str, str]:
    """The embedded default, with the server's variables in a `.env` file only."""
    (tmp_path / ".env").write_text(env_file)
    environ = {k: v for k, v in os.environ.items() if k not in CONFIG_VARS + SERVER_VARS}
    environ.update(
        DJANGO_ENV_FILE=str(tmp_path / ".env"),
        SQLITE_PATH=str(tmp_path / "db.sqlite3"),
        PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "metrics"),
    )
    return environ


def test_the_port_in_the_env_file_is_the_one_served_and_the_one_printed(tmp_path):
    port = free_port()
    environ = launcher_environ(tmp_path, f"APP_PORT={port}\nWEB_WORKERS=1\nWEB_THREADS=2\n")
    printed = subprocess.run(
        [sys.executable, "-c", "from config.environment import server; print(server().url)"],
        env=environ,
        capture_output=True,
        text=True,
        check=True,
    )
    assert printed.stdout.strip() == f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "config.serve"],
        env=environ,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        wait_for(
            lambda: urllib.request.urlopen(f"{printed.stdout.strip()}/ping", timeout=1), "serve"
        )
    finally:
        server.terminate()
        server.wait(timeout=40)


def test_a_bad_server_value_in_the_env_file_stops_the_launcher_naming_it(tmp_path):
    environ = launcher_environ(tmp_path, "APP_PORT=eighty\n")
    result = subprocess.run(
        [sys.executable, "-m", "config.serve"], env=environ, capture_output=True, text=True
    )
    assert result.returncode != 0
    assert "ImproperlyConfigured: APP_PORT='eighty'" in result.stderr
