"""The API contract as Swagger UI shows it: tags, examples that work as sent, the error codes
each status can carry, and a padlock only where a session is needed."""

from datetime import timedelta

import pytest
from django.utils import timezone

from sales.services import sale_open
from tickets import services as ticket_services
from tickets.models import Ticket

pytestmark = pytest.mark.django_db

METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema(api) -> dict:
    response = api.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


@pytest.mark.smoke
def test_every_operation_has_one_of_three_tags_and_a_padlock_only_when_staff_only(schema):
    assert [tag["name"] for tag in schema["tags"]] == ["sales", "tickets", "operations"]
    locked = set()
    for name, operation in operations(schema):
        assert operation["tags"] in (["sales"], ["tickets"], ["operations"]), name
        if operation.get("security"):
            locked.add(name)
    assert locked == {"POST /tickets/{ticket_id}/reprocess"}


@pytest.mark.smoke
def test_every_body_and_response_has_an_example(schema):
    for name, operation in operations(schema):
        for media_type, content in operation.get("requestBody", {}).get("content", {}).items():
            assert content.get("examples"), f"{name} request {media_type}"
        for status, response in operation["responses"].items():
            for media_type, content in response.get("content", {}).items():
                assert content.get("examples"), f"{name} {status} {media_type}"


@pytest.mark.smoke
def test_each_refusal_names_the_codes_it_carries(schema):
    refusals = schema["paths"]["/checkout"]["post"]["responses"]["409"]
    for code in ("item_sold", "item_reserved", "user_limit_reached", "sale_not_started"):
        assert f"`{code}`" in refusals["description"]
        examples = refusals["content"]["application/json"]["examples"].values()
        assert code in {example["value"]["error"]["code"] for example in examples}
    errors = [
        (name, status, response["description"])
        for name, operation in operations(schema)
        for status, response in operation["responses"].items()
        if response["content"]["application/json"]["schema"]
        == {"$ref": "#/components/schemas/Error"}
    ]
    assert len(errors) >= 30
    for name, status, description in errors:
        assert "Codes: `" in description, (name, status)


@pytest.mark.smoke
def test_checkout_and_purchase_take_json_and_form_bodies_or_the_query(schema):
    for path in ("/checkout", "/purchase"):
        operation = schema["paths"][path]["post"]
        body = operation["requestBody"]
        assert set(body["content"]) == {"application/json", "application/x-www-form-urlencoded"}
        assert body["required"] is False  # the query string may carry the fields instead
        headers = [p["name"] for p in operation["parameters"] if p["in"] != "query"]
        assert headers == ["Admission-Token"]  # the waiting room's, core/admission.py
    assert schema["paths"]["/ticket"]["post"]["requestBody"]["required"] is True


def example(content: dict):
    return next(iter(content["examples"].values()))["value"]


@pytest.mark.smoke
def test_the_examples_work_as_sent(schema, api, settings, tmp_path):
    """What "Try it out" sends: the checkout example reserves item 1 of the first sale (the
    one `make run` opens), the ticket example is parsed, not rejected."""
    settings.TICKET_SPOOL_DIR = tmp_path
    sale = sale_open(
        starts_at=timezone.now() - timedelta(seconds=1), item_count=3, user_limit=3, ttl_seconds=60
    )
    checkout = schema["paths"]["/checkout"]["post"]["requestBody"]["content"]
    body = {**example(checkout["application/json"]), "id": sale.items.all()[0].pk}
    reserved = api.post("/checkout", body, format="json")
    assert reserved.status_code == 201, reserved.content
    form = example(checkout["application/x-www-form-urlencoded"])
    assert api.post("/checkout", {**form, "id": body["id"]}).status_code == 200  # same holder
    ticket = schema["paths"]["/ticket"]["post"]["requestBody"]["content"]["text/plain"]
    received = api.post("/ticket", example(ticket), content_type="text/plain")
    assert received.status_code == 202
    ticket_services.tickets_parse()
    assert Ticket.objects.get(id=received.json()["id"]).status == "parsed"
