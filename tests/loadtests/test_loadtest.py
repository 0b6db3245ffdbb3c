"""The locust scenarios, run headless for a few seconds against a throw-away stack by
`make loadtest`'s own script: buyers and tills both get through, and every invariant it checks
from the database afterwards holds (sales, one attempt row per checkout request, acknowledged
tickets stored, exactly the malformed ones rejected, no 5xx)."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_locust_scenarios_keep_every_invariant(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "loadtests.loadtest"],
        cwd=ROOT,
        env={
            **os.environ,
            "LOADTEST_USERS": "20",
            "LOADTEST_SPAWN_RATE": "20",
            "LOADTEST_DURATION": "10s",
            "LOADTEST_ITEMS": "300",
            "LOADTEST_USER_LIMIT": "3",
            "LOADTEST_TTL": "2",
            "LOADTEST_RESULTS": str(tmp_path),
        },
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads((tmp_path / "loadtest.json").read_text())
    assert all(result["checks"].values()), result["checks"]
    assert result["business"].get("sold", 0) > 0, result["business"]
    assert result["tickets_acknowledged"] > 0, result["business"]
