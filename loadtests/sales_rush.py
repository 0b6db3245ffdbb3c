"""The flash-sale rush, end to end over HTTP, and its invariants checked afterwards.

Two gunicorn instances on two ports (2 worker processes each) share one PostgreSQL database and
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

from loadtests.stack import Stack


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


def run_rush(urls: list[str], sale: dict, item_ids: list[int], args: argparse.Namespace) -> dict:
    sold: set[int] = set()
    statuses: Counter[str] = Counter()
    checkouts = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + args.deadline
    next_buyer = iter(range(10**9))

    def slot(i: int) -> None:
        rng = random.Random(i)
        client = Client(urls[i % len(urls)])
        while len(sold) < len(item_ids) and time.monotonic() < deadline:
            with lock:
                user = f"buyer-{next(next_buyer)}"
            bought = 0
            while bought < sale["user_limit"] and len(sold) < len(item_ids):
                if time.monotonic() > deadline:
                    return
                candidates = [pk for pk in item_ids if pk not in sold]
                if not candidates:
                    return
                item_id = rng.choice(candidates)
                status, body = client.post(f"/checkout?user_id={user}&id={item_id}")
                with lock:
                    checkouts[0] += 1
                    statuses[f"checkout {status} {body.get('error', {}).get('code', '')}"] += 1
                if status == 409 and body["error"]["code"] == "item_sold":
                    sold.add(item_id)
                if status == 409 and body["error"]["code"] == "user_limit_reached":
                    time.sleep(0.2)  # one of our abandoned holds will expire
                if status not in (200, 201) or rng.random() < args.abandon:
                    continue
                status, body = client.post(f"/purchase?code={body['code']}")
                with lock:
                    statuses[f"purchase {status} {body.get('error', {}).get('code', '')}"] += 1
                if status == 200:
                    bought += 1
                    sold.add(item_id)

    threads = [threading.Thread(target=slot, args=(i,)) for i in range(args.buyers)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {
        "seconds": round(time.monotonic() - started, 1),
        "checkout_requests": checkouts[0],
        "responses": dict(sorted(statuses.items())),
    }


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
        client, path = Client(urls[0]), f"/sales/{sale['id']}/items?page_size=1000"
        item_ids: list[int] = []
        while path:
            page = client.request("GET", path)[1]
            item_ids += [row["id"] for row in page["results"]]
            path = page["next"] and page["next"].split(urlsplit(page["next"]).netloc, 1)[1]
        assert len(item_ids) == args.items, len(item_ids)

        killer = None
        if args.kill_redis_after is not None:
            killer = threading.Timer(args.kill_redis_after, stack.stop, args=("redis",))
            killer.start()
        result = run_rush(urls, sale, item_ids, args)
        if killer:
            killer.join()
        report = stack.manage_json("sale_report", str(sale["id"]))

    attempts = sum(report["attempts_by_outcome"].values())
    server_errors = sum(n for key, n in result["responses"].items() if " 5" in key)
    checks = {
        "sold_everything": report["sold"] == args.items,
        "nobody_over_the_limit": report["max_items_per_buyer"] <= args.limit,
        "zero_5xx": server_errors == 0,
        "one_attempt_per_checkout_request": attempts == result["checkout_requests"],
        **{
            k: report[k]
            for k in ("no_oversell", "user_limit_respected", "every_sold_item_has_one_purchase")
        },
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
