"""The monitoring shipped with the stack: every metric the Grafana dashboard and the Prometheus
alert rules query is one the application exports, and the compose file provisions them."""

import json
import re

import pytest
import yaml
from django.conf import settings
from prometheus_client import REGISTRY

MONITORING = settings.BASE_DIR / "monitoring"
# PromQL words that are not metric names: functions are followed by "(" and dropped anyway.
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset", "le", "inf", "nan"}  # fmt: skip
SUFFIXES = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
}


def queried_metrics(expression: str) -> set[str]:
    """The metric names in a PromQL expression: identifiers left once strings, label matchers,
    ranges, grouping clauses and function calls are taken out."""
    text = re.sub(r'"[^"]*"', "", expression)
    text = re.sub(r"\{[^}]*\}|\[[^\]]*\]", " ", text)
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    names = re.findall(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", text)
    return {name for name in names if name.lower() not in KEYWORDS}


def exported_metrics(client) -> set[str]:
    """Every series name the application's registry can export, once a request has loaded the
    middleware and the views, as in a serving process."""
    assert client.get("/ping").status_code == 200
    names: set[str] = set()
    for family in REGISTRY.collect():
        base = family.name
        names.update(base + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


def dashboard_expressions() -> list[str]:
    dashboard = json.loads((MONITORING / "grafana/dashboards/flash-sale.json").read_text())
    return [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]


def rule_expressions() -> list[str]:
    rules = yaml.safe_load((MONITORING / "prometheus/alerts.yml").read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


def test_the_name_finder_sees_metrics_not_functions_or_labels():
    expression = (
        'histogram_quantile(0.99, sum by (le, view) (rate(a_bucket{view="x"}[1m])))'
        " / on (view) b_total and time() - c > 3900"
    )
    assert queried_metrics(expression) == {"a_bucket", "b_total", "c"}


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_queried_is_exported(source, client):
    expressions = dashboard_expressions() if source == "dashboard" else rule_expressions()
    queried = set().union(*(queried_metrics(e) for e in expressions))
    assert queried, "no expression found"
    assert queried - exported_metrics(client) == set()


def test_the_alert_rules_cover_what_operators_are_paged_for():
    names = {
        rule["alert"]
        for group in yaml.safe_load((MONITORING / "prometheus/alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert names == {
        "ServerErrors",
        "RedisFallback",
        "TicketBacklogGrowing",
        "TicketSpoolNotEmpty",
        "HourlySaleNotOpened",
    }


def test_compose_provisions_prometheus_and_grafana_from_the_repository():
    services = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())["services"]
    mounted = [
        volume.split(":")[0]
        for name in ("prometheus", "grafana")
        for volume in services[name]["volumes"]
    ]
    for source in mounted:
        assert (settings.BASE_DIR / source).exists(), source
    config = yaml.safe_load((MONITORING / "prometheus/prometheus.yml").read_text())
    # every web container, however many `--scale web=N` runs
    discovered = config["scrape_configs"][0]["dns_sd_configs"][0]
    assert (discovered["names"], discovered["port"]) == (["web"], 8000)
