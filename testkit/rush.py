"""The flash-sale rush: buyers check items out at random and buy them, abandoning some holds,
until every item is sold or the deadline passes. One loop for every transport: the tests drive
it through the services in-process, the fault runs and `loadtests/sales_rush.py` over HTTP.

A buyer who reaches the limit leaves and a new one takes the slot, so a rush can sell out with
fewer slots than items / limit.
"""

import http.client
import itertools
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import urlsplit

from testkit.http import Client, run_threads


@dataclass(frozen=True)
class Answer:
    label: str  # what the rush counts: "held", "item_sold", "409 item_sold", ...
    ok: bool = False  # a hold granted, or a purchase made
    refusal: str = ""  # the platform's error code, if refused
    code: str = ""  # a granted hold's code


# (slot, user, item id) -> Answer, and (slot, code) -> Answer.
Checkout = Callable[[int, str, int], Answer]
Purchase = Callable[[int, str], Answer]


@dataclass(frozen=True)
class Sent:
    """One request of the rush and its answer."""

    kind: str  # "checkout" or "purchase"
    user: str
    item_id: int
    code: str  # a purchase's code
    sent_at: float  # time.time() when the request left
    answer: Answer


@dataclass
class RushResult:
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)  # "checkout <label>", "purchase ..."
    sent: list[Sent] = field(default_factory=list)

    @property
    def checkouts(self) -> int:
        return sum(n for key, n in self.outcomes.items() if key.startswith("checkout "))

    @property
    def server_errors(self) -> int:
        """5xx answers and broken connections, which no promise allows."""
        return sum(
            n
            for key, n in self.outcomes.items()
            if key.split()[1].startswith("5") or key.endswith("connection_error")
        )


def rush(
    item_ids: list[int],
    *,
    slots: int,
    user_limit: int,
    abandon: float,
    deadline: float,
    checkout: Checkout,
    purchase: Purchase,
    during: Callable[[], None] | None = None,
    limit_pause: float = 0.1,
) -> RushResult:
    """Runs `slots` buyers until every item is sold or `deadline` seconds pass; `during` runs
    beside them in a thread of its own (a fault). Raises if a thread is still running a minute
    after the deadline, or if one crashed."""
    sold: set[int] = set()
    result = RushResult()
    lock = threading.Lock()
    stop_at = time.monotonic() + deadline
    users = itertools.count()

    def count(
        kind: str, user: str, item_id: int, code: str, sent_at: float, answer: Answer
    ) -> Answer:
        with lock:
            result.outcomes[f"{kind} {answer.label}"] += 1
            result.sent.append(Sent(kind, user, item_id, code, sent_at, answer))
        return answer

    def ask(kind: str, user: str, item_id: int, code: str, send: Callable[[], Answer]) -> Answer:
        """Send, and send again while the connection breaks (a killed server), as a buyer's
        app retries: the same buyer asks for the same item, or pays with the same code."""
        while True:
            answer = count(kind, user, item_id, code, time.time(), send())
            if not answer.label.endswith("connection_error") or time.monotonic() >= stop_at:
                return answer

    def slot(i: int) -> None:
        if i == slots:
            assert during is not None
            during()
            return
        rng = random.Random(i)
        while len(sold) < len(item_ids) and time.monotonic() < stop_at:
            with lock:
                user = f"buyer-{next(users)}"
            bought = 0
            while bought < user_limit and time.monotonic() < stop_at:
                candidates = [pk for pk in item_ids if pk not in sold]
                if not candidates:
                    return
                item_id = rng.choice(candidates)
                held = ask("checkout", user, item_id, "", partial(checkout, i, user, item_id))
                if held.refusal == "item_sold":
                    sold.add(item_id)
                elif held.refusal == "user_limit_reached":
                    time.sleep(limit_pause)  # one of our abandoned holds will expire
                if not held.ok or rng.random() < abandon:
                    continue
                if ask("purchase", user, item_id, held.code, partial(purchase, i, held.code)).ok:
                    bought += 1
                    sold.add(item_id)

    started = time.monotonic()
    run_threads(slots + (during is not None), slot, timeout=deadline + 60)
    result.seconds = round(time.monotonic() - started, 1)
    return result


def http_rush(
    urls: list[str],
    item_ids: list[int],
    *,
    slots: int,
    user_limit: int,
    abandon: float,
    deadline: float,
    during: Callable[[], None] | None = None,
) -> RushResult:
    """The rush over keep-alive connections spread across `urls`. A request whose connection
    breaks (a killed server worker) is counted as `connection_error`: it may or may not have
    reached the database."""
    clients = [Client(urls[i % len(urls)]) for i in range(slots)]

    def send(i: int, path: str, granted: int) -> Answer:
        try:
            status, body = clients[i].post(path)
        except (OSError, http.client.HTTPException):
            time.sleep(0.05)  # as a client would before it tries again
            return Answer("0 connection_error")
        refusal = body.get("error", {}).get("code", "")
        return Answer(
            f"{status} {refusal}".rstrip(),
            ok=status == granted or (granted == 201 and status == 200),
            refusal=refusal,
            code=body.get("code", ""),
        )

    return rush(
        item_ids,
        slots=slots,
        user_limit=user_limit,
        abandon=abandon,
        deadline=deadline,
        checkout=lambda i, user, item: send(i, f"/checkout?user_id={user}&id={item}", 201),
        purchase=lambda i, code: send(i, f"/purchase?code={code}", 200),
        during=during,
        limit_pause=0.2,
    )


def sale_item_ids(url: str, sale_id: int) -> list[int]:
    client, path = Client(url), f"/sales/{sale_id}/items?page_size=1000"
    item_ids: list[int] = []
    while path:
        page = client.request("GET", path)[1]
        item_ids += [row["id"] for row in page["results"]]
        path = page["next"] and page["next"].split(urlsplit(page["next"]).netloc, 1)[1]
    return item_ids
