import hashlib
import io
import time
import uuid

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from testkit.tickets import SAMPLE
from tickets import services
from tickets.exceptions import TicketTooLarge
from tickets.models import Ticket
from tickets.serializers import ReceiptSerializer
from tickets.signatures import signature_for
from tickets.views import read_body

pytestmark = pytest.mark.django_db


def post(api, body: bytes, content_type: str = "text/plain", **headers):
    return api.generic("POST", "/ticket", body, content_type=content_type, headers=headers)


@pytest.mark.smoke
def test_a_ticket_is_acknowledged_with_its_receipt_and_stored_byte_for_byte(api):
    response = post(api, SAMPLE)
    assert response.status_code == 202
    receipt = response.json()
    assert receipt["status"] == "received"
    ticket = Ticket.objects.get(id=receipt["id"])
    documented = ReceiptSerializer(ticket).data  # parsed since, in-process: its status moved on
    assert receipt == {**documented, "status": "received"}, "the shape the schema documents"
    assert bytes(ticket.raw) == SAMPLE
    assert ticket.sha256 == hashlib.sha256(SAMPLE).hexdigest()


@pytest.mark.smoke
def test_the_ticket_is_parsed_once_the_write_commits(api, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        receipt = post(api, SAMPLE).json()
    ticket = Ticket.objects.get(id=receipt["id"])
    assert ticket.status == Ticket.Status.PARSED
    assert ticket.order.number == "123456"


@pytest.mark.smoke
@pytest.mark.parametrize("content_type", ["application/json", "application/x-www-form-urlencoded"])
def test_any_content_type_is_taken_as_raw_bytes(api, content_type):
    body = b"a=1&b=2 not json {"
    response = post(api, body, content_type=content_type)
    assert response.status_code == 202
    assert bytes(Ticket.objects.get(id=response.json()["id"]).raw) == body


@pytest.mark.smoke
def test_an_empty_body_is_a_400(api):
    response = post(api, b"")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"
    assert not Ticket.objects.exists()


@pytest.mark.smoke
def test_a_body_over_the_limit_is_a_413_and_one_at_the_limit_is_taken(api, settings):
    settings.TICKET_MAX_BYTES = len(SAMPLE)
    assert post(api, SAMPLE).status_code == 202
    response = post(api, SAMPLE + b"\n")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert Ticket.objects.count() == 1


@pytest.mark.smoke
def test_the_limit_is_checked_from_content_length_before_reading(api, settings):
    settings.TICKET_MAX_BYTES = 10
    response = api.generic(
        "POST", "/ticket", b"x" * 10, content_type="text/plain", CONTENT_LENGTH="11"
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    assert not Ticket.objects.exists()


def test_the_limit_is_checked_again_while_reading():
    stream = io.BytesIO(b"x" * 11)
    with pytest.raises(TicketTooLarge):
        read_body(stream, limit=10)
    assert stream.tell() == 11
    assert read_body(io.BytesIO(b"x" * 10), limit=10) == b"x" * 10


@pytest.mark.smoke
def test_only_post_is_allowed(api):
    response = api.get("/ticket")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"


@pytest.mark.smoke
def test_with_a_secret_the_signature_is_required_and_checked(api, settings):
    settings.TICKET_WEBHOOK_SECRET = "s3cret"
    now = str(int(time.time()))
    good = signature_for(secret="s3cret", body=SAMPLE, timestamp=now)
    wrong = signature_for(secret="other", body=SAMPLE, timestamp=now)
    other_time = signature_for(secret="s3cret", body=SAMPLE, timestamp=str(int(now) - 1))
    for headers in (
        {},
        {"X-Signature": good},
        {"X-Signature": wrong, "X-Signature-Timestamp": now},
        {"X-Signature": good[:-1], "X-Signature-Timestamp": now},
        {"X-Signature": other_time, "X-Signature-Timestamp": now},
        {"X-Signature": good, "X-Signature-Timestamp": "soon"},
    ):
        response = post(api, SAMPLE, **headers)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "bad_signature"
    assert not Ticket.objects.exists()
    signed = {"X-Signature": good, "X-Signature-Timestamp": now}
    assert post(api, SAMPLE, **signed).status_code == 202


@pytest.mark.smoke
def test_a_captured_signed_request_cannot_be_replayed_later(api, settings):
    settings.TICKET_WEBHOOK_SECRET = "s3cret"
    settings.TICKET_SIGNATURE_TOLERANCE_SECONDS = 300
    for age in (301, -301):
        then = str(int(time.time()) - age)
        signed = {
            "X-Signature": signature_for(secret="s3cret", body=SAMPLE, timestamp=then),
            "X-Signature-Timestamp": then,
        }
        response = post(api, SAMPLE, **signed)
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "stale_signature"
    assert not Ticket.objects.exists()


def test_without_a_secret_no_signature_is_needed(api, settings):
    settings.TICKET_WEBHOOK_SECRET = ""
    assert post(api, SAMPLE, **{"X-Signature": "sha256=nonsense"}).status_code == 202


@pytest.mark.smoke
def test_a_repeated_idempotency_key_replays_the_first_answer(api):
    first = post(api, SAMPLE, **{"Idempotency-Key": "till-7-0001"})
    again = post(api, SAMPLE, **{"Idempotency-Key": "till-7-0001"})
    other = post(api, SAMPLE, **{"Idempotency-Key": "till-7-0002"})
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    assert other.json()["id"] != first.json()["id"]
    assert Ticket.objects.count() == 2


@pytest.mark.smoke
def test_an_idempotency_key_reused_with_another_body_is_refused_and_stores_nothing(api):
    first = post(api, SAMPLE, **{"Idempotency-Key": "till-7-0001"})
    reused = post(api, SAMPLE + b"changed", **{"Idempotency-Key": "till-7-0001"})
    assert reused.status_code == 422
    assert reused.json()["error"]["code"] == "idempotency_key_reused"
    stored = Ticket.objects.get()
    assert (str(stored.id), bytes(stored.raw)) == (first.json()["id"], SAMPLE)


@pytest.mark.parametrize("key", ["", "x" * 256, "has space", "caf\u00e9"])
def test_a_malformed_idempotency_key_is_a_400(api, key):
    response = post(api, SAMPLE, **{"Idempotency-Key": key})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_request"


def test_the_same_ticket_sent_twice_is_stored_twice(api):
    ids = {post(api, SAMPLE).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert all(uuid.UUID(i).version == 7 for i in ids)


@pytest.mark.smoke
@hypothesis_settings(
    max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None
)
@given(body=st.one_of(st.binary(min_size=1, max_size=3000), st.sampled_from([SAMPLE, b"\x00"])))
def test_any_bytes_are_kept_exactly_and_end_parsed_or_rejected(api, body):
    response = post(api, body)
    assert response.status_code == 202
    ticket = Ticket.objects.get(id=response.json()["id"])
    assert bytes(ticket.raw) == body
    services.tickets_parse(ticket_ids=[ticket.id])
    ticket.refresh_from_db()
    assert ticket.status in {Ticket.Status.PARSED, Ticket.Status.REJECTED, Ticket.Status.DUPLICATE}
    assert ticket.status != Ticket.Status.REJECTED or ticket.rejection_line
