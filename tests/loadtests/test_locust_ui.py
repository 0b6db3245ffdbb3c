"""What a load tester sees in locust's web UI: request figures that are HTTP requests only, the
business outcomes in a tab of their own, and the scenario mix and malformed rate as set."""

import json
import subprocess
import sys
import time
import urllib.request
from datetime import timedelta

import pytest
from django.utils import timezone

from sales.services import sale_open
from testkit.stack import free_port

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
