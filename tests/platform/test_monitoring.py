"""The monitoring shipped with the stack: every metric the Grafana dashboard and the Prometheus
alert rules query is one the application (or Prometheus) exports, the compose file provisions
them, every scrape target answers what Prometheus sends, and, where Debian's `prometheus` is
installed (CI installs it), a real Prometheus run with the shipped configuration against a
throw-away stack finds every target up, every rule healthy and data in every panel."""

import json
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.conf import settings
from django_prometheus.middleware import Metrics
from prometheus_client import REGISTRY

from core import middleware
from testkit.http import Client
from testkit.stack import Stack, free_port, wait_for
from testkit.tickets import TicketFactory

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


# Series Prometheus makes itself: a target's `up`, and its own metrics (the `prometheus` job).
PROMETHEUS_OWN = re.compile(r"up|prometheus_\w+")


@pytest.mark.parametrize("source", ["dashboard", "rules"])
def test_every_metric_queried_is_exported(source, client):
    expressions = dashboard_expressions() if source == "dashboard" else rule_expressions()
    queried = set().union(*(queried_metrics(e) for e in expressions))
    assert queried, "no expression found"
    ours = {name for name in queried if not PROMETHEUS_OWN.fullmatch(name)}
    assert ours - exported_metrics(client) == set()


@pytest.fixture
def new_process_metrics():
    """The request series as a new process has them: not made yet. Afterwards, those made in the
    test stay, as a process's would."""
    made = Metrics._instance
    if made is not None:
        for collector in list(vars(made).values()):
            REGISTRY.unregister(collector)
    Metrics._instance = None
    middleware._requests.cache_clear()
    middleware._answers.cache_clear()
    yield
    middleware._requests.cache_clear()
    middleware._answers.cache_clear()


def test_the_first_requests_of_a_process_together_are_each_counted(new_process_metrics):
    """The first requests of a process arrive together in a rush, and each makes the request
    series if none has: the threads here are let go at once, switching as often as the
    interpreter can, and every one counts its request and its answer."""
    threads, start = 32, threading.Barrier(32)
    failures: list[BaseException] = []

    def first_request() -> None:
        start.wait()
        try:
            middleware.requested("POST")
            middleware.answered(201, "checkout", "POST", 0.01)
        except Exception as failure:
            failures.append(failure)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        running = [threading.Thread(target=first_request) for _ in range(threads)]
        for thread in running:
            thread.start()
        for thread in running:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert failures == []
    answers = REGISTRY.get_sample_value(
        "django_http_responses_total_by_status_view_method_total",
        {"status": "201", "view": "checkout", "method": "POST"},
    )
    assert answers == threads


def test_the_alert_rules_cover_what_operators_are_paged_for():
    names = {
        rule["alert"]
        for group in yaml.safe_load((MONITORING / "prometheus/alerts.yml").read_text())["groups"]
        for rule in group["rules"]
    }
    assert names == {
        "TargetDown",
        "ScrapeErrors",
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


def shipped_prometheus() -> dict[str, Any]:
    return yaml.safe_load((MONITORING / "prometheus/prometheus.yml").read_text())


def test_every_compose_target_is_scraped_where_it_answers_prometheus():
    """Read from the files, as no Docker engine runs the suite: the web and worker containers on
    the metrics port their environment sets, which no Host check guards; the fleet's figures
    through the proxy, under a host name the web containers allow."""
    services = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())["services"]
    jobs = {job["job_name"]: job for job in shipped_prometheus()["scrape_configs"]}
    for service in ("web", "worker"):
        (discovered,) = jobs[service]["dns_sd_configs"]
        env = services[service]["environment"]
        assert discovered["names"] == [service]  # every container of `--scale web=N`
        assert str(discovered["port"]) == env["APP_METRICS_PORT"]
        assert str(discovered["port"]) in services[service]["expose"]
    assert "PROMETHEUS_MULTIPROC_DIR" in services["worker"]["environment"]
    ((target,),) = [c["targets"] for c in jobs["fleet"]["static_configs"]]
    host, port = target.split(":")
    assert host in services["web"]["environment"]["DJANGO_ALLOWED_HOSTS"].split(":-")[1]
    proxy = yaml.safe_load((settings.BASE_DIR / "docker-compose.yml").read_text())["configs"]
    assert re.search(rf"listen {port}[ ;]", proxy["proxy"]["content"])


def test_each_figure_from_the_database_is_kept_by_one_job_only():
    jobs = {job["job_name"]: job for job in shipped_prometheus()["scrape_configs"]}
    rules = {job: jobs[job].get("metric_relabel_configs", []) for job in jobs}
    ((kept,),) = [rules["fleet"]]
    assert kept["action"] == "keep"
    assert re.fullmatch(kept["regex"], "sales_sold_items")
    assert re.fullmatch(kept["regex"], "tickets_spool_depth")
    assert not re.fullmatch(kept["regex"], "sales_checkout_total")
    for job in ("web", "worker"):
        assert rules[job] == [{**kept, "action": "drop"}], job


def test_every_alert_says_what_happened_and_where_its_runbook_is():
    readme = (settings.BASE_DIR / "README.md").read_text()
    rules = yaml.safe_load((MONITORING / "prometheus/alerts.yml").read_text())
    for rule in (rule for group in rules["groups"] for rule in group["rules"]):
        annotations = rule["annotations"]
        assert annotations["summary"]
        assert annotations["description"]
        assert annotations["runbook"] == f"README, Operations, Runbook: {rule['alert']}"
        assert f"- **{rule['alert']}**" in readme, rule["alert"]


def test_no_panel_puts_a_ratio_beside_a_rate():
    dashboard = json.loads((MONITORING / "grafana/dashboards/flash-sale.json").read_text())
    for panel in dashboard["panels"]:
        unit = panel["fieldConfig"]["defaults"]["unit"]
        ratios = ["/ sum(" in target["expr"] for target in panel["targets"]]
        assert all(ratios) or not any(ratios), panel["title"]
        assert (unit == "percentunit") == all(ratios), panel["title"]


# -- a real Prometheus ----------------------------------------------------------------------

PROMETHEUS = shutil.which("prometheus")
RULES = MONITORING / "prometheus/alerts.yml"
PROMTOOL = shutil.which("promtool")


def local_config(path: Path, ports: dict[str, int]) -> None:
    """The shipped configuration with each job's targets at 127.0.0.1 and a one-second
    interval; the relabelling, the rules and everything else as shipped."""
    config = shipped_prometheus()
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    for job in config["scrape_configs"]:
        job.pop("dns_sd_configs", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{ports[job['job_name']]}"]}]
    path.write_text(yaml.safe_dump(config))


def api(base: str, path: str, **params: str) -> Any:
    url = f"{base}/api/v1/{path}?{urllib.parse.urlencode(params)}"
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())["data"]


def has_data(answer: Any) -> bool:
    """A number to draw: a quantile over a window without observations is NaN, drawn as nothing."""
    return any(series["value"][1] != "NaN" for series in answer["result"])


def traffic(web: str, stack: Stack, prometheus: str) -> tuple[str, str]:
    """Checkouts, purchases and tickets of every outcome; a sale sold out, one still selling.
    Returns the two sales' ids."""
    client = Client(web)
    sold_out = stack.manage_json("start_sale", "--items", "2")["id"]
    # Scraped while it sells, as a sale of an hour is: a process shows a sale's final figures
    # once it has shown it selling.
    selling_first = f'sales_available_items{{sale="{sold_out}"}}'
    wait_for(lambda: api(prometheus, "query", query=selling_first)["result"][0], "a sale selling")
    items = [row[0] for row in stack.query(f"SELECT id FROM sales_item WHERE sale_id = {sold_out}")]
    for n, item in enumerate(items):
        status, hold = client.post(f"/checkout?user_id=buyer{n}&id={item}")
        assert status == 201, hold
        assert client.post(f"/purchase?code={hold['code']}")[0] == 200
    selling = stack.manage_json("start_sale", "--items", "5")["id"]
    assert client.post(f"/checkout?user_id=late&id={items[0]}")[0] == 409
    return str(sold_out), str(selling)


def send_tickets(web: str, seed: int) -> None:
    """One ticket parsed, its copy a duplicate, one rejected."""
    client = Client(web)
    good = TicketFactory(seed=seed, malformed_rate=0).make()
    bad = TicketFactory(seed=seed, malformed_rate=1).make()
    for ticket in (good, good, bad):
        assert client.post("/ticket", ticket.body)[0] == 202


@pytest.mark.skipif(not PROMETHEUS, reason="Debian's prometheus is not installed (CI installs it)")
def test_a_real_prometheus_finds_every_target_up_and_data_in_every_panel(tmp_path):
    if PROMTOOL:
        local_config(tmp_path / "checked.yml", dict.fromkeys(JOBS, 1))
        for check, path in (("config", tmp_path / "checked.yml"), ("rules", RULES)):
            subprocess.run([PROMTOOL, "check", check, str(path)], check=True, capture_output=True)
    with Stack("monitoring") as stack:
        ports = {"web": free_port(), "worker": free_port(), "prometheus": free_port()}
        web = stack.start_web(workers=2, threads=4, env={"APP_METRICS_PORT": str(ports["web"])})
        ports["fleet"] = int(web.rsplit(":", 1)[1])
        worker_metrics = stack.workdir / "worker-metrics"
        worker_metrics.mkdir()
        stack.start_worker(
            env={
                "APP_METRICS_PORT": str(ports["worker"]),
                "PROMETHEUS_MULTIPROC_DIR": str(worker_metrics),
            }
        )
        local_config(tmp_path / "prometheus.yml", ports)
        base = f"http://127.0.0.1:{ports['prometheus']}"
        stack.spawn(
            "prometheus",
            [
                str(PROMETHEUS), f"--config.file={tmp_path / 'prometheus.yml'}",
                f"--storage.tsdb.path={tmp_path / 'data'}",
                f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
            ],
        )  # fmt: skip
        wait_for(lambda: urllib.request.urlopen(f"{base}/-/ready", timeout=1), "prometheus")
        # Once scraped, so that rates and quantiles see the traffic happen.
        wait_for(lambda: api(base, "query", query="up")["result"][len(JOBS) - 1], "targets")
        sold_out, selling = traffic(web, stack, base)
        # A counter's first sample is its first value, not an increase: a second round of
        # tickets is what rates see, as they would see the tickets of a steady day.
        send_tickets(web, seed=1)
        rejected = 'tickets_total{job="worker", status="rejected"}'
        wait_for(lambda: api(base, "query", query=rejected)["result"][0], "a rejected ticket")
        send_tickets(web, seed=2)

        expressions = dashboard_expressions()
        deadline = time.monotonic() + 90
        while True:
            targets = api(base, "targets")["activeTargets"]
            down = {t["labels"]["job"]: t["lastError"] for t in targets if t["health"] != "up"}
            empty = [e for e in expressions if not has_data(api(base, "query", query=e))]
            rules = [r for g in api(base, "rules")["groups"] for r in g["rules"]]
            unhealthy = {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"}
            if (not down and not empty and not unhealthy) or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert {t["labels"]["job"] for t in targets} == set(JOBS)
        assert down == {}
        assert empty == []
        assert unhealthy == {}
        assert len(rules) == len(rule_expressions())

        items = (
            "sales_sold_items unless on (sale) (sales_available_items + sales_reserved_items == 0)"
        )
        shown = {series["metric"]["sale"] for series in api(base, "query", query=items)["result"]}
        assert selling in shown
        assert sold_out not in shown
        every = {
            s["metric"]["sale"] for s in api(base, "query", query="sales_sold_items")["result"]
        }
        assert sold_out in every  # its series outlives it: the panel's filter is what hides it
        for figure in ("sales_sold_items", "tickets_backlog"):
            jobs = {s["metric"]["job"] for s in api(base, "query", query=figure)["result"]}
            assert jobs == {"fleet"}, figure


JOBS = ("web", "worker", "fleet", "prometheus")
