"""What a load tester sees in locust's web UI: request figures that are HTTP requests only, the
business outcomes in a tab of their own, and the scenario mix and malformed rate as set."""

import json
import os
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from sales.services import sale_open
from testkit.stack import free_port, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def fetch_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.loads(response.read())


def test_outcomes_are_not_requests_and_the_form_sets_the_mix(live_server, tmp_path, settings):
    settings.TICKET_SPOOL_DIR = tmp_path / "spool"
    sale_open(
        starts_at=timezone.now() - timedelta(seconds=1), item_count=50, user_limit=3, ttl_seconds=30
    )
    port = free_port()
    summary = tmp_path / "summary.json"
    locust = subprocess.Popen(
        [
            sys.executable,
            *f"-m locust -f loadtests/locustfile.py --host {live_server.url} --web-host 127.0.0.1"
            f" --web-port {port} --autostart --autoquit 0 --run-time 6s --users 4 --spawn-rate 4"
            " --buyer-weight 1 --till-weight 3 --malformed-rate 1".split(),
        ],
        cwd=settings.BASE_DIR,
        env={
            "PATH": "/usr/bin:/bin",
            "LOCUST_SUMMARY": str(summary),
            "LOCUST_ERROR_LOG": str(tmp_path / "errors.log"),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        tab: list = []
        deadline = time.monotonic() + 30
        while not tab and time.monotonic() < deadline:
            time.sleep(0.5)
            try:
                stats = fetch_json(f"http://127.0.0.1:{port}/stats/requests")
            except OSError:
                continue
            tab = [t for t in stats.get("extended_stats", []) if t["data"]]
        assert tab, "the business outcomes tab stayed empty"
        assert tab[0]["key"] == "business"
        output, _ = locust.communicate(timeout=30)
    finally:
        locust.kill()
    assert '"FlashSaleBuyer": 1, "Till": 3' in output, output
    result = json.loads(summary.read_text())
    assert {row["type"] for row in result["requests"]} <= {"GET", "POST", None}
    outcomes = result["outcomes"]
    assert outcomes["ticket accepted"] > 0
    assert outcomes["ticket accepted, malformed"] == outcomes["ticket accepted"]


def test_make_locust_listens_where_told_and_its_ratio_tab_follows_the_users(live_server, tmp_path):
    """`LOCUST_WEB_PORT=N make locust`, as the README shows, with the form's defaults sized for
    the embedded server; once started, "Current ratio" gives each class its share (4:1)."""
    port = free_port()
    locust = subprocess.Popen(
        ["make", "--no-print-directory", "locust"],
        cwd=settings.BASE_DIR,
        env={
            **os.environ,
            "LOCUST_WEB_PORT": str(port),
            "LOCUST_HOST": live_server.url,
            "LOCUST_ERROR_LOG": str(tmp_path / "errors.log"),
        },
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # make and the locust it starts stop together
    )
    ui = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: urllib.request.urlopen(ui, timeout=1), "locust's web UI", seconds=60)
        page = urllib.request.urlopen(ui, timeout=5).read().decode()
        assert '"num_users": 20,' in page
        classes = [("user_classes", "FlashSaleBuyer"), ("user_classes", "Till")]
        fields = [("user_count", 5), ("spawn_rate", 5), ("host", live_server.url), *classes]
        form = urllib.parse.urlencode(fields).encode()
        assert json.loads(urllib.request.urlopen(f"{ui}/swarm", form, timeout=5).read())["success"]
        shares: dict = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ratio = fetch_json(f"{ui}/tasks")["per_class"]
            shares = {name: ratio[name]["ratio"] for name in ratio}
            if sum(shares.values()) > 0.99:
                break
            time.sleep(0.5)
        assert shares == {"FlashSaleBuyer": 0.8, "Till": 0.2}
    finally:
        os.killpg(locust.pid, signal.SIGTERM)
        locust.wait(timeout=30)
