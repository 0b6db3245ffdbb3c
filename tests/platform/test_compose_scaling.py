"""The compose file scales out: any number of web containers behind the proxy, workers that
share the web containers' spool, RabbitMQ as the broker. Read as YAML: no Docker engine runs
the suite."""

import re

import yaml
from django.conf import settings


def compose() -> dict:
    return yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())


def test_web_containers_scale_behind_the_proxy():
    services = compose()["services"]
    assert "ports" not in services["web"], "a published port would stop `--scale web=N`"
    assert services["proxy"]["ports"] == ["8000:8000"]
    assert services["proxy"]["depends_on"]["web"]["condition"] == "service_healthy"
    proxy_conf = compose()["configs"]["proxy"]["content"]
    assert re.search(r"set \$\$web http://web:8000;", proxy_conf)
    assert "resolver 127.0.0.11" in proxy_conf  # scaled containers join the rotation
    env = services["web"]["environment"]
    assert env["TRUSTED_PROXY_COUNT"] == "1"
    assert "proxy" in env["DJANGO_ALLOWED_HOSTS"]


def test_workers_scale_on_rabbitmq_and_drain_the_web_containers_spool():
    services = compose()["services"]
    for name in ("web", "worker", "beat", "migrate"):
        assert services[name]["environment"]["CELERY_BROKER_URL"].startswith("amqp://")
    assert services["migrate"]["depends_on"]["rabbitmq"]["condition"] == "service_healthy"
    assert "healthcheck" in services["rabbitmq"]
    assert services["worker"]["volumes"] == services["web"]["volumes"]
    assert "ports" not in services["worker"]
