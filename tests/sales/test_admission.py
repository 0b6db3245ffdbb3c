"""Admission control through the HTTP stack: a busy answer, its token, and what is counted.

The gate is set to a fixed limit of 4 with half of it reserved and no queue, and two slots are
taken by the test itself: a new checkout then finds no room, while a purchase or a buyer
returning with a valid token does. A refused token (forged, another buyer's, spent, early) is
ignored, so its request is a newcomer's and is turned away like one.
"""

import io
import json
import logging
from unittest import mock

import pytest
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import OperationalError, close_old_connections
from django.test import Client

from core import admission
from sales.models import AdmissionMinute, CheckoutAttempt
from sales.selectors import sale_report
from tests.metrics import sample

pytestmark = pytest.mark.django_db


def crowd(settings) -> admission.Admission:
    """A new gate for this process, with its newcomers' share taken."""
    admission._gate.reset()
    settings.ADMISSION = {
        **settings.ADMISSION,
        "max_limit": 4,
        "min_limit": 4,
        "queue": 0,
        "reserve": 0.5,
        "enabled": True,
    }
    gate = admission.gate()
    assert gate.enter(True)
    assert gate.enter(True)
    return gate


@pytest.fixture
def crowded(settings) -> admission.Admission:
    return crowd(settings)


def checkout(api, user, item_id, token=None):
    headers = {"HTTP_ADMISSION_TOKEN": token} if token else {}
    return api.post(f"/checkout?user_id={user}&id={item_id}", **headers)


def at_return_time(monkeypatch, token: str) -> None:
    """Move the tokens' clock to the return time the token names."""
    payload = admission.signing.loads(token, salt=admission._SALT)
    monkeypatch.setattr(admission, "wall_clock", lambda: payload["r"])


def test_a_busy_answer_is_fast_shaped_and_no_attempt(api, open_sale, crowded):
    item = open_sale().items.first()
    response = checkout(api, "alice", item.pk)
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "busy"
    assert int(response["Retry-After"]) >= 1
    assert error["retry_after"] == int(response["Retry-After"])
    assert error["token"] == response["Admission-Token"]
    assert not CheckoutAttempt.objects.exists()  # never reached the sale


def test_busy_answers_are_not_logged_unlike_other_5xx(api, open_sale, crowded, caplog):
    item = open_sale().items.first()
    with caplog.at_level(logging.INFO):
        assert checkout(api, "alice", item.pk).status_code == 503
    assert caplog.records == []  # shed load, thousands a second in a rush: counted instead
    crowded.inside = 0
    with (
        caplog.at_level(logging.INFO),
        mock.patch("sales.stock._attempts.record", side_effect=OperationalError("down")),
    ):
        assert checkout(api, "alice", item.pk).status_code == 503
    assert {record.name for record in caplog.records} >= {"requests", "django.request"}


def test_busy_answers_are_counted_per_minute_not_recorded(api, open_sale, crowded):
    item = open_sale().items.first()
    for user in ("alice", "bob", "carol"):
        assert checkout(api, user, item.pk).status_code == 503
    admission.tally().flush()
    assert checkout(api, "dave", item.pk).status_code == 503
    admission.tally().flush()
    (row,) = AdmissionMinute.objects.filter(operation="checkout")
    assert row.turned_away == 4
    assert not CheckoutAttempt.objects.exists()


def test_a_buyer_returning_with_the_token_is_admitted_ahead_of_newcomers(
    api, open_sale, crowded, monkeypatch
):
    item = open_sale().items.first()
    token = checkout(api, "alice", item.pk)["Admission-Token"]
    at_return_time(monkeypatch, token)
    assert checkout(api, "bob", item.pk).status_code == 503  # a newcomer, still
    assert checkout(api, "alice", item.pk, token).status_code == 201
    assert list(CheckoutAttempt.objects.values_list("user_id", flat=True)) == ["alice"]


def test_a_purchase_is_admitted_while_new_checkouts_are_turned_away(api, open_sale, settings):
    item = open_sale().items.first()
    code = checkout(api, "alice", item.pk).json()["code"]
    crowd(settings)
    assert checkout(api, "bob", item.pk).status_code == 503
    assert api.post(f"/purchase?code={code}").status_code == 200


def test_a_forged_token_is_ignored(api, open_sale, crowded, monkeypatch):
    item = open_sale().items.first()
    token = checkout(api, "alice", item.pk)["Admission-Token"]
    at_return_time(monkeypatch, token)
    payload, signature = token.rsplit(":", 1)
    forged = f"{payload}:{signature[::-1]}"
    assert checkout(api, "alice", item.pk, forged).status_code == 503


def test_another_buyers_token_is_ignored(api, open_sale, crowded, monkeypatch):
    item = open_sale().items.first()
    token = checkout(api, "alice", item.pk)["Admission-Token"]
    at_return_time(monkeypatch, token)
    assert checkout(api, "mallory", item.pk, token).status_code == 503


def test_a_token_admits_once(api, open_sale, crowded, monkeypatch):
    first, second = open_sale(items=2).items.all()
    token = checkout(api, "alice", first.pk)["Admission-Token"]
    at_return_time(monkeypatch, token)
    assert checkout(api, "alice", first.pk, token).status_code == 201
    assert checkout(api, "alice", second.pk, token).status_code == 503


def test_a_token_before_its_time_is_ignored(api, open_sale, crowded):
    item = open_sale().items.first()
    token = checkout(api, "alice", item.pk)["Admission-Token"]
    assert checkout(api, "alice", item.pk, token).status_code == 503


def test_a_token_in_a_json_body_request_names_the_buyer_of_the_body(
    api, open_sale, crowded, monkeypatch
):
    item = open_sale().items.first()
    response = api.post("/checkout", {"user_id": "alice", "id": item.pk}, format="json")
    token = response["Admission-Token"]
    at_return_time(monkeypatch, token)
    response = api.post(
        "/checkout", {"user_id": "alice", "id": item.pk}, format="json", HTTP_ADMISSION_TOKEN=token
    )
    assert response.status_code == 201


def test_sale_report_and_the_dashboard_show_the_demand_turned_away(
    api, open_sale, crowded, django_user_model
):
    sale = open_sale()
    for user in ("alice", "bob"):
        assert checkout(api, user, sale.items.first().pk).status_code == 503
    admission.tally().flush()
    report = sale_report(sale=sale)
    assert report["admission"] == {"checkout": {"admitted": 0, "turned_away": 2}}
    operator = Client()
    operator.force_login(django_user_model.objects.create_superuser("boss", password="pw"))
    page = operator.get("/admin/").content.decode()
    assert 'data-figure="admission-checkout">0 / 2<' in page
    assert 'data-figure="admission-limit">4<' in page


def test_a_buyer_back_early_keeps_its_return_time(api, open_sale, crowded, settings):
    settings.ADMISSION = {**settings.ADMISSION, "max_retry_after": 5}
    crowded.next_return = admission.wall_clock() + 60  # a waiting room a minute long
    item = open_sale().items.first()
    first = checkout(api, "alice", item.pk)
    assert int(first["Retry-After"]) <= 5  # named at most the longest wait...
    token = first["Admission-Token"]
    slot = admission.signing.loads(token, salt=admission._SALT)
    assert slot["r"] >= admission.wall_clock() + 59  # ...while its place is a minute away
    next_return = crowded.next_return
    again = checkout(api, "alice", item.pk, token)  # back after Retry-After: early
    assert again.status_code == 503
    kept = admission.signing.loads(again["Admission-Token"], salt=admission._SALT)
    assert (kept["r"], kept["i"]) == (slot["r"], slot["i"])
    assert crowded.next_return == next_return  # no second place taken


# -- the door: busy answers before Django ----------------------------------------------------


class Counted:
    """Django's WSGI handler, counting the requests that reach it. As the test client does, it
    keeps the test's database connection open (its transaction is the test's)."""

    def __init__(self) -> None:
        self.handler = WSGIHandler()
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        signals = (request_started, request_finished)
        for signal in signals:
            signal.disconnect(close_old_connections)
        try:
            response = self.handler(environ, start_response)
            content = b"".join(response)
            response.close()
            return [content]
        finally:
            for signal in signals:
                signal.connect(close_old_connections)


def post(application, path: str, *, body: bytes = b"", **extra: str):
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path.split("?")[0],
        "QUERY_STRING": path.partition("?")[2],
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        **extra,
    }
    answer: dict[str, object] = {}

    def start_response(status, headers, exc_info=None):
        answer.update(status=int(status.split()[0]), headers=dict(headers))

    content = b"".join(application(environ, start_response))
    return answer["status"], answer["headers"], content


@pytest.fixture
def door():
    inner = Counted()
    return admission.AdmissionDoor(inner), inner


def test_the_door_answers_a_newcomer_busy_as_django_does_without_django(open_sale, crowded, door):
    application, django = door
    item = open_sale().items.first()
    views = sample(
        "django_http_responses_total_by_status_view_method_total",
        status="503",
        view="checkout",
        method="POST",
    )
    status, by_django, body = post(application, f"/checkout?user_id=alice&id={item.pk}")
    assert (status, django.calls) == (503, 1)  # the first busy answer is Django's
    status, by_door, door_body = post(application, f"/checkout?user_id=bob&id={item.pk}")
    assert (status, django.calls) == (503, 1)  # the next, the door's
    assert by_door.keys() == by_django.keys()
    assert {k: v for k, v in by_door.items() if k not in admission.AdmissionDoor._OWN} == {
        k: v for k, v in by_django.items() if k not in admission.AdmissionDoor._OWN
    }
    error = json.loads(door_body)["error"]
    assert error.keys() == json.loads(body)["error"].keys()
    assert error["code"] == "busy"
    assert error["token"] == by_door["Admission-Token"]
    assert error["retry_after"] == int(by_door["Retry-After"]) >= 1
    payload = admission.signing.loads(error["token"], salt=admission._SALT)
    assert payload["b"] == "bob"
    assert (
        sample(
            "django_http_responses_total_by_status_view_method_total",
            status="503",
            view="checkout",
            method="POST",
        )
        == views + 2
    )
    assert not CheckoutAttempt.objects.exists()


def test_the_door_leaves_tokens_bodies_purchases_and_room_to_django(
    open_sale, crowded, door, monkeypatch
):
    application, django = door
    item = open_sale().items.first()
    post(application, f"/checkout?user_id=alice&id={item.pk}")  # Django's: the door learns
    status, headers, _ = post(application, f"/checkout?user_id=bob&id={item.pk}")
    assert (status, django.calls) == (503, 1)
    token = headers["Admission-Token"]
    at_return_time(monkeypatch, token)
    status, _, _ = post(
        application, f"/checkout?user_id=bob&id={item.pk}", HTTP_ADMISSION_TOKEN=token
    )
    assert (status, django.calls) == (201, 2)  # a return, admitted
    status, _, _ = post(
        application,
        "/checkout",
        body=json.dumps({"user_id": "carol", "id": item.pk}).encode(),
        CONTENT_TYPE="application/json",
    )
    assert (status, django.calls) == (503, 3)  # a body: Django reads it
    crowded.inside = 0
    status, _, _ = post(application, f"/checkout?user_id=dave&id={item.pk}")
    assert (status, django.calls) == (409, 4)  # room: Django serves it (the item is held)
