"""`make bench`'s table beside the floor: "project / floor" on the endpoints the floor has, and
none on the others. Run through the table's command line, as load drivers are imported by
nothing."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def cell(endpoint, rps):
    return {
        "endpoint": endpoint,
        "connections": 64,
        "rps": rps,
        "p50_ms": 1.0,
        "p99_ms": 2.0,
        "errors": 0,
        "ok": 10,
        "note": "",
    }


def test_the_table_sets_each_endpoint_against_the_floors_own(tmp_path):
    result = {
        "config": {"duration": 5, "instances": 1, "web_workers": 2, "web_threads": 16},
        "machine": {"cpus": 2, "load_average_before": [1.0], "load_average_after": [1.0]},
        "sides": [
            {
                "label": "here",
                "server": "granian",
                "cells": [cell("ping", 4000), cell("health", 1000), cell("checkout", 900)],
                "sale_open": {"items": 10, "runs_s": [0.1], "min_s": 0.1, "median_s": 0.1},
                "backlog": {
                    "tickets": 1,
                    "worker_processes": 1,
                    "parse_rate_per_s": 1,
                    "overall_rate_per_s": 1,
                    "statuses": {},
                    "drained": True,
                },
            }
        ],
        "floor": {
            "label": "floor",
            "server": "granian",
            "cells": [cell("ping", 10000), cell("checkout", 3000)],
        },
    }
    (tmp_path / "bench.json").write_text(json.dumps(result))
    table = subprocess.run(
        [sys.executable, "-m", "loadtests.bench.table", str(tmp_path / "bench.json")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    head, _, *rows = [line.split(" | ") for line in table.splitlines() if line.startswith("|")]
    ratio = head.index("project / floor")
    by_endpoint = {row[0].removeprefix("| "): row for row in rows}
    assert by_endpoint["ping"][ratio] == "**0.40**"
    assert by_endpoint["checkout"][ratio] == "**0.30**"
    assert by_endpoint["health"][ratio] == ""
