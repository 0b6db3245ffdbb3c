"""Admission control through the HTTP stack: a busy answer, its token, and what is counted.

The gate is set to a fixed limit of 4 with half of it reserved and no queue, and two slots are
taken by the test itself: a new checkout then finds no room, while a purchase or a buyer
returning with a valid token does. A refused token (forged, another buyer's, spent, early) is
ignored, so its request is a newcomer's and is turned away like one.
"""

import logging
from unittest import mock

import pytest
from django.db import OperationalError
from django.test import Client

from core import admission
from sales.models import AdmissionMinute, CheckoutAttempt
from sales.selectors import sale_report

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
