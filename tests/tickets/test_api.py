import base64
import uuid
from unittest import mock

import pytest
from rest_framework.test import APIClient

from testkit.tickets import SAMPLE, ticket_bytes
from tickets import services
from tickets.models import Ticket
from tickets.views import TicketPagination

pytestmark = pytest.mark.django_db

REJECTED = b"Order: 9\nVAT: 0\nTotal: 1\n\nproduct,product_id,price\nx,X,one\n"


def stored(*bodies: bytes) -> list[str]:
    ids = [str(services.ticket_ingest(body=body).id) for body in bodies]
    services.tickets_parse()
    return ids


def error_code(response) -> str:
    assert set(response.json()) == {"error"}
    return response.json()["error"]["code"]


@pytest.mark.smoke
def test_tickets_are_listed_newest_first_and_filtered_by_status_and_order(api):
    parsed, rejected = stored(SAMPLE, REJECTED)
    body = api.get("/tickets").json()
    assert [t["id"] for t in body["results"]] == [rejected, parsed]
    assert {"next", "previous", "results"} <= set(body)
    assert [t["id"] for t in api.get("/tickets?status=rejected").json()["results"]] == [rejected]
    assert [t["id"] for t in api.get("/tickets?order=123456").json()["results"]] == [parsed]
    assert len(api.get("/tickets?status=&order=").json()["results"]) == 2
    assert api.get("/tickets?status=parsed&order=9").json()["results"] == []


def test_the_ticket_list_pages_with_a_cursor(api):
    stored(*(ticket_bytes(str(n), [("a", "A", "1")]) for n in range(5)))
    with mock.patch.object(TicketPagination, "page_size", 2):
        seen, url = [], "/tickets"
        while url:
            page = api.get(url).json()
            seen += [t["id"] for t in page["results"]]
            url = page["next"]
    assert len(seen) == len(set(seen)) == 5


@pytest.mark.smoke
def test_an_unknown_status_filter_is_a_400(api):
    response = api.get("/tickets?status=lost")
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


@pytest.mark.smoke
def test_a_parsed_ticket_shows_its_raw_body_and_order(api):
    (ticket_id,) = stored(SAMPLE)
    body = api.get(f"/tickets/{ticket_id}").json()
    assert body["status"] == "parsed"
    assert body["raw_text"] == SAMPLE.decode()
    assert base64.b64decode(body["raw_base64"]) == SAMPLE
    assert body["order"]["number"] == "123456"
    assert [line["product_id"] for line in body["order"]["lines"]] == ["aZde", "IZ8z"]
    assert body["order"]["lines"][0]["price"] == "14.90"


@pytest.mark.smoke
def test_a_rejected_ticket_shows_its_reason_and_line(api):
    latin1 = SAMPLE.replace("é".encode(), b"\xe9")
    (ticket_id,) = stored(latin1)
    body = api.get(f"/tickets/{ticket_id}").json()
    assert body["status"] == "rejected"
    assert body["rejection_line"] == 7
    assert "not valid UTF-8" in body["rejection_reason"]
    assert body["order"] is None
    assert base64.b64decode(body["raw_base64"]) == latin1


@pytest.mark.smoke
def test_an_unknown_ticket_is_a_404(api):
    response = api.get(f"/tickets/{uuid.uuid4()}")
    assert response.status_code == 404
    assert error_code(response) == "ticket_not_found"
    assert error_code(api.get("/tickets/not-a-uuid")) == "not_found"


@pytest.mark.smoke
def test_staff_reprocess_a_rejected_ticket(staff_api):
    (ticket_id,) = stored(REJECTED)
    response = staff_api.post(f"/tickets/{ticket_id}/reprocess")
    assert response.status_code == 200
    assert response.json()["status"] == "rejected"
    assert response.json()["rejection_line"] == 6


def test_reprocess_refuses_a_ticket_already_counted(staff_api):
    (ticket_id,) = stored(SAMPLE)
    response = staff_api.post(f"/tickets/{ticket_id}/reprocess")
    assert response.status_code == 409
    assert error_code(response) == "ticket_not_reprocessable"


def test_reprocess_of_an_unknown_ticket_is_a_404(staff_api):
    response = staff_api.post(f"/tickets/{uuid.uuid4()}/reprocess")
    assert response.status_code == 404
    assert error_code(response) == "ticket_not_found"


@pytest.mark.smoke
def test_reprocess_is_for_staff_only(api, django_user_model):
    (ticket_id,) = stored(REJECTED)
    assert api.post(f"/tickets/{ticket_id}/reprocess").status_code == 403
    clerk = APIClient()
    clerk.force_authenticate(django_user_model.objects.create_user("clerk", password="pw"))
    response = clerk.post(f"/tickets/{ticket_id}/reprocess")
    assert response.status_code == 403
    assert error_code(response) == "permission_denied"
    assert Ticket.objects.get(id=ticket_id).status == "rejected"


@pytest.mark.smoke
def test_products_are_listed_and_searched_by_id_or_name(api):
    stored(SAMPLE)
    body = api.get("/products").json()
    assert body["count"] == 2
    assert {p["product_id"] for p in body["results"]} == {"aZde", "IZ8z"}
    assert [p["product_id"] for p in api.get("/products?search=caf").json()["results"]] == ["IZ8z"]
    assert [p["product_id"] for p in api.get("/products?search=azd").json()["results"]] == ["aZde"]
    assert api.get("/products?search=nothing").json()["results"] == []


@pytest.mark.smoke
def test_a_product_shows_its_price_history(api):
    first, second = stored(
        ticket_bytes("1", [("Café", "IZ8z", "2")]), ticket_bytes("2", [("Café", "IZ8z", "2.2")])
    )
    body = api.get("/products/IZ8z").json()
    assert (body["name"], body["price"], body["times_seen"]) == ("Café", "2.20", 2)
    assert [(h["price"], h["ticket"]) for h in body["price_history"]] == [
        ("2.00", first),
        ("2.20", second),
    ]


@pytest.mark.smoke
def test_a_product_id_with_a_slash_is_reachable(api):
    stored(ticket_bytes("1", [("Kit", "A/B 1", "5")]))
    assert api.get("/products/A/B 1").json()["product_id"] == "A/B 1"


@pytest.mark.smoke
def test_an_unknown_product_is_a_404(api):
    response = api.get("/products/nope")
    assert response.status_code == 404
    assert error_code(response) == "product_not_found"


def test_the_endpoints_are_in_the_openapi_schema(api):
    schema = api.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    for path in [
        "/ticket",
        "/tickets",
        "/tickets/{ticket_id}",
        "/tickets/{ticket_id}/reprocess",
        "/products",
        "/products/{product_id}",
    ]:
        assert path in schema["paths"]
    responses = schema["paths"]["/ticket"]["post"]["responses"]
    assert {"202", "400", "401", "413", "503"} <= set(responses)
