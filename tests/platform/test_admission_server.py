"""Admission control in the real server (granian, started by testkit's stack): a crowd of real
threads on loopback against a limit of one request at a time and no queue. Safety only: what a
busy answer carries and what it leaves behind, whatever the machine lets the crowd achieve."""

import http.client
import json
import threading
import time
from collections import Counter

from testkit.http import run_threads
from testkit.stack import Stack

CROWD, EACH = 24, 6


def post(port: int, path: str, headers: dict[str, str] | None = None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, headers=headers or {})
        response = conn.getresponse()
        # Header names as sent: case-insensitive (the server writes them lowercase).
        headers = {name.lower(): value for name, value in response.getheaders()}
        return response.status, headers, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def test_a_crowd_past_the_limit_is_answered_busy_with_a_token_and_leaves_no_attempt():
    tight = {
        "ADMISSION": "true",
        "ADMISSION_MAX_LIMIT": "1",
        "ADMISSION_MIN_LIMIT": "1",
        "ADMISSION_QUEUE": "0",
        "ADMISSION_FLUSH_SECONDS": "1",
    }
    with Stack("platform_admission", extra_env=tight) as stack:
        url = stack.start_web(workers=1, threads=16)
        port = int(url.rsplit(":", 1)[1])
        sale = stack.manage_json("start_sale", "--items", str(CROWD * EACH + 1), "--ttl", "600")
        rows = stack.query("SELECT id FROM sales_item WHERE sale_id = %s", [sale["id"]])
        items = [row[0] for row in rows]
        lock = threading.Lock()
        statuses: Counter[int] = Counter()
        busy: list[tuple[str, dict[str, str], dict[str, object]]] = []

        def buyer(n: int) -> None:
            for k in range(EACH):
                user = f"b{n}-{k}"
                status, headers, body = post(port, f"/checkout?user_id={user}&id={items[n]}")
                with lock:
                    statuses[status] += 1
                    if status == 503:
                        busy.append((user, headers, body))

        run_threads(CROWD, buyer, timeout=120)

        assert set(statuses) <= {201, 409, 503}, statuses
        assert busy, "a limit of one never turned anybody away"
        for _, headers, body in busy:
            error = body["error"]
            assert isinstance(error, dict)
            assert error["code"] == "busy"
            assert int(headers["retry-after"]) >= 1
            assert headers["admission-token"] == error["token"]
        ((attempts,),) = stack.query("SELECT count(*) FROM sales_checkoutattempt")
        assert attempts == statuses[201] + statuses[409]  # a busy answer is no attempt

        deadline = time.monotonic() + 30
        counted = 0
        while counted < len(busy) and time.monotonic() < deadline:
            time.sleep(0.5)
            ((counted,),) = stack.query(
                "SELECT coalesce(sum(turned_away), 0) FROM sales_admissionminute"
                " WHERE operation = 'checkout'"
            )
        assert counted == len(busy)

        # The last buyer turned away comes back alone at the time named, with the token.
        user, headers, _ = busy[-1]
        time.sleep(int(headers["retry-after"]))
        token = {"Admission-Token": headers["admission-token"]}
        status, _, _ = post(port, f"/checkout?user_id={user}&id={items[-1]}", token)
        assert status == 201
