import os
import socket
import subprocess
import sys

import pytest
import yaml
from django.conf import settings

from tests.metrics import sample

pytestmark = pytest.mark.django_db


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.smoke
def test_health_is_ok_when_every_configured_backend_answers(api):
    response = api.get("/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    expected_redis = "ok" if settings.REDIS_URL else "disabled"
    assert body["redis"] == expected_redis


@pytest.mark.skipif(not settings.REDIS_URL, reason="needs Redis configured")
def test_health_is_degraded_when_redis_is_down(api, settings):
    dead = f"redis://127.0.0.1:{closed_port()}/0"
    settings.CACHES = {
        alias: {**config, "LOCATION": dead} for alias, config in settings.CACHES.items()
    }
    response = api.get("/health")
    assert response.status_code == 200
    assert response.json()["status"] == "degraded"
    assert response.json()["redis"] == "down"
    assert response.json()["database"] == "ok"


def test_health_is_503_when_the_database_is_down():
    environ = dict(
        os.environ,
        DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/none",
        DJANGO_SECRET_KEY="x",
        DJANGO_ALLOWED_HOSTS="testserver",
        DJANGO_SECURE_SSL_REDIRECT="false",
        LOG_LEVEL="CRITICAL",
    )
    code = (
        "import django, json; django.setup(); from django.test import Client;"
        "r = Client().get('/health'); print(r.status_code, json.dumps(r.json()))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, check=True
    ).stdout
    status, _, body = out.strip().partition(" ")
    assert status == "503"
    assert '"database": "down"' in body
    assert '"status": "down"' in body


@pytest.mark.smoke
def test_ping_touches_no_backend(api, django_assert_num_queries):
    with django_assert_num_queries(0):
        response = api.get("/ping")
    assert response.status_code == 200


@pytest.mark.smoke
def test_metrics_are_prometheus_text(api):
    pings = sample("django_http_requests_total_by_method_total", method="GET")
    api.get("/ping")
    assert sample("django_http_requests_total_by_method_total", method="GET") - pings == 1
    response = api.get("/metrics")
    assert response.status_code == 200
    text = response.content.decode()
    assert "django_http_requests_total_by_method_total" in text
    assert "django_db_execute_total" in text or "django_db_new_connections_total" in text


@pytest.mark.smoke
def test_openapi_schema_and_docs(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    assert "/health" in paths
    docs = api.get("/api/docs/")
    assert docs.status_code == 200
    assert b"swagger-ui" in docs.content


@pytest.mark.smoke
def test_admin_login_page_renders(api):
    assert api.get("/admin/login/").status_code == 200


def test_compose_file_runs_the_whole_stack():
    compose = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"postgres", "redis", "migrate", "web", "worker", "beat", "locust"} <= set(services)
    for name in ("web", "worker", "beat"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert "DATABASE_URL" in services[name]["environment"]
    assert services["locust"]["ports"] == ["8089:8089"]
    for name in ("postgres", "redis", "web"):
        assert "healthcheck" in services[name]
