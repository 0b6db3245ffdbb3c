"""Locust scenarios: flash-sale buyers, tills sending receipts, and both mixed.

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000              # both, 4:1
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 FlashSaleBuyer
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 --class-picker

Business outcomes (sold, limit reached, item taken, ...) are counted apart from the HTTP
requests, so that requests per second and the Aggregated row show the real HTTP load: the web
UI lists them in a tab of their own ("Business outcomes"), added up across workers. Refusals the
spec promises (409, 410, 429) are successes for locust; anything else is a failure and is
appended, with the request that caused it, to `LOCUST_ERROR_LOG` (one JSON object a line).
With `LOCUST_SUMMARY` set, the counters below are also written there as JSON when the run
stops (single-process runs; `make loadtest` reads it).

The web UI's form also sets the scenario mix (`--buyer-weight`, `--till-weight`) and the share
of malformed tickets (`--malformed-rate`); users and spawn rate default to the values in
pyproject.toml's `[tool.locust]`.

Tags select behaviours inside a class (`--exclude-tags stale-code`); pick classes by name or
with the class picker, since a class left without tasks by `--tags` cannot start.
"""

import io
import itertools
import json
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

from locust import HttpUser, between, events, tag, task

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from testkit.tickets import GeneratedTicket, TicketFactory

RESULTS = Path(__file__).resolve().parent / "results"
ITEMS_PAGE_SIZE = int(os.environ.get("LOCUST_ITEMS_PAGE_SIZE", "200"))
MALFORMED_RATE = float(os.environ.get("LOCUST_MALFORMED_RATE", "0.05"))

# Counted in this process, for the UI's "Business outcomes" tab and the end-of-run summary.
# A worker sends its counts to the master with each report and starts again from zero.
OUTCOMES: Counter[str] = Counter()
SALES_SEEN: set[int] = set()
PURCHASED: set[str] = set()


def business(name: str) -> None:
    """Count an outcome; not a request, so that request rates stay those of HTTP."""
    OUTCOMES[name] += 1


# -- the error log --------------------------------------------------------------------------


class ErrorLog:
    """Appends every unexpected response, with its request, as one JSON line."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._file: io.TextIOWrapper | None = None

    def path(self) -> Path:
        return Path(os.environ.get("LOCUST_ERROR_LOG", RESULTS / "errors.log"))

    def write(self, response: Any, reason: str) -> None:
        request = response.request  # None when the connection failed before an answer
        meta = getattr(response, "request_meta", None) or {}
        error = getattr(response, "error", None) or meta.get("exception")
        record = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "reason": reason,
            "request": {
                "method": getattr(request, "method", None) or meta.get("request_type"),
                "url": getattr(request, "url", None) or meta.get("url"),
                "body": _text(getattr(request, "body", None) or b""),
            },
            "status": response.status_code,
            "response": _text(response.content or b""),
            "error": repr(error) if error else None,
        }
        with self._lock:
            if self._file is None:
                self.path().parent.mkdir(parents=True, exist_ok=True)
                self._file = open(self.path(), "a", encoding="utf-8")  # noqa: SIM115 (kept open)
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()


def _text(data: bytes | str, limit: int = 2000) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    return text[:limit]


ERRORS = ErrorLog()


def error_code(response: Any) -> str:
    """The platform's machine code of an error answer, or "" when the body has none."""
    try:
        return str(response.json()["error"]["code"])
    except (ValueError, KeyError, TypeError):
        return ""


def unexpected(response: Any, reason: str) -> None:
    response.failure(f"{reason}: {response.status_code} {error_code(response)}".strip())
    ERRORS.write(response, reason)


# -- the users ----------------------------------------------------------------------------


class FlashSaleBuyer(HttpUser):
    """A buyer in the rush: browses available items, checks out, buys or abandons, refreshes,
    comes back to old tabs, and keeps trying after reaching the limit before giving up."""

    weight = 4
    wait_time = between(0.2, 1.5)
    run_id = uuid.uuid4().hex[:6]  # user ids stay unique across runs on the same sale
    numbers = itertools.count(1)

    def on_start(self) -> None:
        self.rng = random.Random()
        self.tokens: dict[str, str] = {}  # buyer (user id or code) -> its busy answer's token
        self.items: list[int] = []
        self.abandoned: list[tuple[str, float]] = []
        self.new_identity()
        self.browse()

    def new_identity(self) -> None:
        """A buyer who has given up leaves; a new one arrives in the same slot."""
        self.user_id = f"locust-{self.run_id}-{next(self.numbers)}"
        self.refusals_at_limit = 0
        self.abandoned.clear()

    def browse(self) -> None:
        with self.client.get("/sales/current", catch_response=True) as response:
            if response.status_code != 200:
                unexpected(response, "no current sale")
                return
            sale = response.json()
        SALES_SEEN.add(sale["id"])
        pages = max(1, -(-sale["available"] // ITEMS_PAGE_SIZE))
        # Buyers crowd the first pages, as they do the top of a shop window.
        page = min(pages, 1 + int(self.rng.expovariate(1.0)))
        url = f"/sales/{sale['id']}/items?status=available&page_size={ITEMS_PAGE_SIZE}"
        with self.client.get(
            f"{url}&page={page}", name="/sales/[id]/items", catch_response=True
        ) as response:
            if response.status_code == 404 and page > 1:
                response.success()  # the page emptied since we counted: the first one will do
                self.items = []
                return
            if response.status_code != 200:
                unexpected(response, "items list")
                return
            self.items = [row["id"] for row in response.json()["results"]]
        if not self.items:
            business("sold out seen")

    @tag("checkout")
    @task(10)
    def checkout(self) -> None:
        if len(self.items) < 3:
            self.browse()
        if not self.items:
            return
        item_id = self.rng.choice(self.items)
        hold = self.try_checkout(item_id)
        if hold is None:
            return
        choice = self.rng.random()
        if choice < 0.15:
            # Back button, then checkout again: the same hold, answered 200 with the same code.
            again = self.try_checkout(item_id, expect_code=hold)
            if again is None:
                return
        if choice < 0.8:
            self.purchase(hold, item_id)
        else:
            self.abandoned.append((hold, time.monotonic()))
            self.forget(item_id)
            business("abandoned")

    @tag("stale-code")
    @task(1)
    def old_tab(self) -> None:
        """Pay with the code of a checkout abandoned a while ago (expired by then, or not)."""
        if self.abandoned:
            code, _ = self.abandoned.pop(0)
            self.purchase(code, None)

    def try_checkout(self, item_id: int, expect_code: str | None = None) -> str | None:
        """The hold's code, or None after a refusal."""
        with self.client.post(
            f"/checkout?user_id={self.user_id}&id={item_id}",
            name="/checkout",
            catch_response=True,
            headers=self.token_of(self.user_id),
        ) as response:
            status, code = response.status_code, error_code(response)
            if status == 503 and code == "busy":
                self.wait_busy(response, self.user_id, "checkout busy")
            elif status in (200, 201):
                body = response.json()
                SALES_SEEN.add(body["sale_id"])
                if expect_code is not None and (status != 200 or body["code"] != expect_code):
                    unexpected(response, "checking out a held item again changed the hold")
                    return None
                name = "held" if status == 201 else "held again"
                business(name)
                return str(body["code"])
            if status == 409 and code in ("item_reserved", "item_sold"):
                response.success()
                self.forget(item_id)
                name = "item reserved" if code == "item_reserved" else "item taken"
                business(name)
            elif status == 409 and code == "user_limit_reached":
                response.success()
                business("limit reached")
                self.refusals_at_limit += 1
                if self.refusals_at_limit >= 3:
                    self.new_identity()
            elif status == 429:
                response.success()
                business("rate limited")
            else:
                unexpected(response, "checkout")
        return None

    def purchase(self, code: str, item_id: int | None, returning: bool = False) -> None:
        with self.client.post(
            f"/purchase?code={code}",
            name="/purchase",
            catch_response=True,
            headers=self.token_of(code),
        ) as response:
            status, error = response.status_code, error_code(response)
            if status == 503 and error == "busy":
                self.wait_busy(response, code, "purchase busy")
                if not returning:  # a buyer holding an item comes back once to pay for it
                    self.purchase(code, item_id, returning=True)
                return
            if status == 200:
                # A repeat of a purchase that succeeded answers 200 too: count each sale once.
                name = "sold again (idempotent)" if code in PURCHASED else "sold"
                PURCHASED.add(code)
                business(name)
            elif status == 410 and error == "code_expired":
                response.success()
                business("expired")
            elif status == 409 and error in ("item_sold", "user_limit_reached"):
                response.success()
                name = "item taken" if error == "item_sold" else "limit reached"
                business(name)
            elif status == 429:
                response.success()
                business("rate limited")
            else:
                unexpected(response, "purchase")
                return
        self.forget(item_id)

    def token_of(self, buyer: str) -> dict[str, str]:
        """The header that brings a buyer back from the waiting room, once."""
        token = self.tokens.pop(buyer, None)
        return {"Admission-Token": token} if token else {}

    def wait_busy(self, response: Any, buyer: str, outcome: str) -> None:
        """Turned away busy: not a failure, its own outcome; wait as told, keep the token."""
        response.success()
        business(outcome)
        self.tokens[buyer] = response.json()["error"]["token"]
        time.sleep(int(response.headers.get("Retry-After", "1")))

    def forget(self, item_id: int | None) -> None:
        """Drop an item that is no longer ours to try."""
        if item_id in self.items:
            self.items.remove(item_id)


class Till(HttpUser):
    """A shop till: sends receipts in bursts (opening, lunch rush, a flushed backlog)."""

    weight = 1
    wait_time = between(1, 5)

    def on_start(self) -> None:
        options = self.environment.parsed_options
        self.tickets = TicketFactory(
            malformed_rate=getattr(options, "malformed_rate", MALFORMED_RATE)
        )

    @tag("tickets")
    @task
    def burst(self) -> None:
        # Mostly a handful of tickets, now and then a till flushing a hundred or more.
        size = min(200, int(self.tickets.rng.paretovariate(1.5) * 5))
        for _ in range(size):
            self.send(self.tickets.make())

    def send(self, ticket: GeneratedTicket) -> None:
        with self.client.post(
            "/ticket",
            data=ticket.body,
            headers={"Content-Type": "text/plain; charset=utf-8"},
            catch_response=True,
        ) as response:
            if response.status_code == 202:
                business("ticket accepted")
                if ticket.malformed:
                    OUTCOMES["ticket accepted, malformed"] += 1
            else:
                unexpected(response, "ticket")


# -- the web UI: the scenario mix, and the business outcomes in a tab of their own -----------

OUTCOMES_TAB = "business"
_started = time.monotonic()


@events.init_command_line_parser.add_listener
def scenario_options(parser: Any) -> None:
    parser.add_argument(
        "--buyer-weight",
        type=int,
        default=FlashSaleBuyer.weight,
        help="Flash-sale buyers in the mix: their weight against tills'",
    )
    parser.add_argument(
        "--till-weight", type=int, default=Till.weight, help="Tills in the mix: their weight"
    )
    parser.add_argument(
        "--malformed-rate",
        type=float,
        default=MALFORMED_RATE,
        help="Share of the tills' tickets that are malformed by design (0 to 1)",
    )


@events.test_start.add_listener
def apply_scenario_options(environment: Any, **_: Any) -> None:
    """The weights as the form set them, read before locust spreads users over the classes."""
    global _started
    options = environment.parsed_options
    if options is not None:
        FlashSaleBuyer.weight = max(0, options.buyer_weight)
        Till.weight = max(0, options.till_weight)
    _started = time.monotonic()


def outcome_rows() -> list[dict[str, Any]]:
    seconds = max(time.monotonic() - _started, 1e-9)
    return [
        {"outcome": name, "count": count, "persecond": round(count / seconds, 1)}
        for name, count in OUTCOMES.most_common()
    ]


@events.init.add_listener
def outcomes_tab(environment: Any, **_: Any) -> None:
    if environment.web_ui is None:
        return
    from flask import request

    environment.web_ui.template_args["extendedTabs"] = [
        {"title": "Business outcomes", "key": OUTCOMES_TAB}
    ]
    environment.web_ui.template_args["extendedTables"] = [
        {
            "key": OUTCOMES_TAB,
            "structure": [
                {"key": "outcome", "title": "Outcome"},
                {"key": "count", "title": "Count"},
                {"key": "persecond", "title": "Per second (since start)"},
            ],
        }
    ]

    @environment.web_ui.app.after_request
    def add_outcomes(response: Any) -> Any:
        if request.path == "/stats/requests" and response.is_json:
            stats = response.get_json()
            stats["extended_stats"] = [{"key": OUTCOMES_TAB, "data": outcome_rows()}]
            response.set_data(json.dumps(stats))
        return response


@events.report_to_master.add_listener
def send_outcomes(client_id: str, data: dict[str, Any]) -> None:
    data["business_outcomes"] = dict(OUTCOMES)
    OUTCOMES.clear()


@events.worker_report.add_listener
def add_outcomes_of_worker(client_id: str, data: dict[str, Any]) -> None:
    OUTCOMES.update(data.get("business_outcomes", {}))


@events.reset_stats.add_listener
def forget_outcomes(**_: Any) -> None:
    global _started
    OUTCOMES.clear()
    _started = time.monotonic()


# -- end of run -----------------------------------------------------------------------------


@events.test_stop.add_listener
def summarise(environment: Any, **_: Any) -> None:
    summary: dict[str, Any] = {
        "requests": [
            {
                "type": entry.method,
                "name": entry.name,
                "requests": entry.num_requests,
                "failures": entry.num_failures,
                "rps": round(entry.total_rps, 1),
                **{
                    f"p{round(q * 100)}": entry.get_response_time_percentile(q)
                    for q in (0.5, 0.95, 0.99)
                },
            }
            for entry in sorted(environment.stats.entries.values(), key=lambda e: e.method or "")
        ],
        "failures": [
            {"name": e.name, "error": str(e.error), "occurrences": e.occurrences}
            for e in environment.stats.errors.values()
        ],
        "outcomes": dict(sorted(OUTCOMES.items())),
        "sales_seen": sorted(SALES_SEEN),
        "tickets_by_status": ticket_counts(environment.host),
    }
    print("business outcomes:", json.dumps(summary["outcomes"], indent=2))
    if path := os.environ.get("LOCUST_SUMMARY"):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_text(json.dumps(summary, indent=2))


def ticket_counts(host: str | None) -> dict[str, int | None]:
    """Tickets per status from `GET /tickets?status=`; None where the list gives no `count`."""
    import requests

    if not host:
        return {}
    counts: dict[str, int | None] = {}
    for status in ("received", "parsed", "rejected", "duplicate"):
        try:
            page = requests.get(f"{host}/tickets", params={"status": status}, timeout=10).json()
            counts[status] = page.get("count")
        except (requests.RequestException, ValueError, AttributeError):
            counts[status] = None
    return counts
