"""The flash-sale rush, end to end over HTTP, and its invariants checked afterwards.

Two web server instances on two ports (2 worker processes each) share one PostgreSQL database and
one redis-server, both the run's own. 300 concurrent buyers (a buyer who reaches the limit makes
room for a new one) rush a 1,000-item sale with limit 3 and TTL 3 s, abandoning a third of their
holds. Then `sale_report` must show exactly 1,000 sold, nobody over 3 and every invariant true,
with zero 5xx and one CheckoutAttempt per checkout request sent. With --kill-redis-after N, the
redis-server is killed N seconds into the rush.

    python loadtests/sales_rush.py [--kill-redis-after 5] [--buyers 300] [--items 1000]
"""

import argparse
import http.client
import json
import random
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.stack import Stack


class Client:
    """One keep-alive HTTP connection, as a browser tab would hold."""

    def __init__(self, base: str) -> None:
        self.netloc = urlsplit(base).netloc
        self.conn = http.client.HTTPConnection(self.netloc, timeout=30)

    def post(self, path: str) -> tuple[int, dict]:
        return self.request("POST", path)

    def request(self, method: str, path: str) -> tuple[int, dict]:
        for attempt in (1, 2):
            try:
                self.conn.request(method, path)
                response = self.conn.getresponse()
                return response.status, json.loads(response.read() or b"{}")
            except (ConnectionError, http.client.HTTPException):
                self.conn.close()
                self.conn = http.client.HTTPConnection(self.netloc, timeout=30)
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def rush(
    urls: list[str],
    item_ids: list[int],
    *,
    buyers: int,
    user_limit: int,
    abandon: float,
    deadline: float,
) -> dict:
    """Buyer slots over keep-alive connections spread across `urls`, until every item is sold
    or `deadline` seconds pass. A request whose connection breaks (a killed server worker) is
    counted as `connection_error`: it may or may not have reached the database."""
    sold: set[int] = set()
    statuses: Counter[str] = Counter()
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline
    next_buyer = iter(range(10**9))

    def post(client: Client, kind: str, path: str) -> tuple[int, dict]:
        try:
            status, body = client.post(path)
        except (OSError, http.client.HTTPException):
            status, body = 0, {}
        code = body.get("error", {}).get("code", "") if status else "connection_error"
        with lock:
            statuses[f"{kind} {status} {code}".rstrip()] += 1
        return status, body

    def slot(i: int) -> None:
        rng = random.Random(i)
        client = Client(urls[i % len(urls)])
        while len(sold) < len(item_ids) and time.monotonic() < stop_at:
            with lock:
                user = f"buyer-{next(next_buyer)}"
            bought = 0
            while bought < user_limit and len(sold) < len(item_ids):
                candidates = [pk for pk in item_ids if pk not in sold]
                if time.monotonic() > stop_at or not candidates:
                    return
                item_id = rng.choice(candidates)
                status, body = post(client, "checkout", f"/checkout?user_id={user}&id={item_id}")
                refusal = body.get("error", {}).get("code")
                if refusal == "item_sold":
                    sold.add(item_id)
                elif refusal == "user_limit_reached":
                    time.sleep(0.2)  # one of our abandoned holds will expire
                if status not in (200, 201) or rng.random() < abandon:
                    continue
                status, _ = post(client, "purchase", f"/purchase?code={body['code']}")
                if status == 200:
                    bought += 1
                    sold.add(item_id)

    threads = [threading.Thread(target=slot, args=(i,)) for i in range(buyers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "seconds": round(time.monotonic() - started, 1),
        "checkout_requests": sum(n for k, n in statuses.items() if k.startswith("checkout")),
        "responses": dict(sorted(statuses.items())),
    }


def sale_item_ids(url: str, sale_id: int) -> list[int]:
    client, path = Client(url), f"/sales/{sale_id}/items?page_size=1000"
    item_ids: list[int] = []
    while path:
        page = client.request("GET", path)[1]
        item_ids += [row["id"] for row in page["results"]]
        path = page["next"] and page["next"].split(urlsplit(page["next"]).netloc, 1)[1]
    return item_ids


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--buyers", type=int, default=300)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--limit", type=int, default=3)
    parser.add_argument("--ttl", type=int, default=3)
    parser.add_argument("--abandon", type=float, default=1 / 3)
    parser.add_argument("--deadline", type=float, default=240)
    parser.add_argument("--kill-redis-after", type=float, default=None)
    args = parser.parse_args()

    with Stack("flashsale_rush") as stack:
        urls = [stack.start_web(workers=2), stack.start_web(workers=2)]
        sale = stack.manage_json(
            "start_sale",
            "--items",
            str(args.items),
            "--user-limit",
            str(args.limit),
            "--ttl",
            str(args.ttl),
        )
        item_ids = sale_item_ids(urls[0], sale["id"])
        assert len(item_ids) == args.items, len(item_ids)

        killer = None
        if args.kill_redis_after is not None:
            killer = threading.Timer(args.kill_redis_after, stack.redis.kill)
            killer.start()
        result = rush(
            urls,
            item_ids,
            buyers=args.buyers,
            user_limit=args.limit,
            abandon=args.abandon,
            deadline=args.deadline,
        )
        if killer:
            killer.join()
        report = stack.manage_json("sale_report", str(sale["id"]))

    attempts = sum(report["attempts_by_outcome"].values())
    server_errors = sum(
        n for key, n in result["responses"].items() if " 5" in key or key.endswith("error")
    )
    checks = {
        "sold_everything": report["sold"] == args.items,
        "nobody_over_the_limit": report["max_items_per_buyer"] <= args.limit,
        "zero_5xx": server_errors == 0,
        "one_attempt_per_checkout_request": attempts == result["checkout_requests"],
        **{name: value for name, value in report.items() if isinstance(value, bool)},
    }
    print(
        json.dumps(
            {
                "scenario": {**vars(args), "web_instances": 2, "workers_each": 2},
                "rush": result,
                "report": {
                    k: report[k]
                    for k in (
                        "item_count",
                        "sold",
                        "reserved",
                        "available",
                        "buyers",
                        "max_items_per_buyer",
                        "attempts_by_outcome",
                        "purchases",
                    )
                },
                "checkout_attempt_rows": attempts,
                "checks": checks,
            },
            indent=2,
        )
    )
    return 0 if all(checks.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
