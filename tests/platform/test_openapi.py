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
def test_every_operation_has_a_summary(schema):
    missing = [name for name, operation in operations(schema) if not operation.get("summary")]
    assert missing == []


@pytest.mark.smoke
def test_checkout_and_purchase_are_tried_with_query_parameters_alone(schema):
    """Swagger UI sends a body's example beside the typed parameters, and the body's fields
    win: so the one place the schema offers for their fields is the query string."""
    for path, fields in (("/checkout", {"user_id", "id"}), ("/purchase", {"code"})):
        operation = schema["paths"][path]["post"]
        assert "requestBody" not in operation
        queried = [p for p in operation["parameters"] if p["in"] == "query"]
        assert {p["name"] for p in queried} == fields
        assert all(p["required"] for p in queried)
        headers = [p["name"] for p in operation["parameters"] if p["in"] != "query"]
        assert headers == ["Admission-Token"]  # the waiting room's, core/admission.py
    assert schema["paths"]["/ticket"]["post"]["requestBody"]["required"] is True


@pytest.mark.smoke
def test_a_refusal_example_names_only_fields_its_operation_has(schema):
    for name, operation in operations(schema):
        fields = {p["name"] for p in operation.get("parameters", [])}
        examples = operation["responses"].get("400", {}).get("content", {})
        for content in examples.values():
            for example in content["examples"].values():
                message = example["value"]["error"]["message"]
                field = message.split(":")[0]
                assert " " in field or field in fields, (name, message)


def example(content: dict):
    return next(iter(content["examples"].values()))["value"]


@pytest.mark.smoke
def test_the_examples_work_as_sent(schema, api, settings, tmp_path):
    """What "Try it out" sends: the checkout example is a buyer, the item left for the user to
    pick among the available ones (item 1 sells once); the ticket example is parsed, not
    rejected."""
    settings.TICKET_SPOOL_DIR = tmp_path
    sale = sale_open(
        starts_at=timezone.now() - timedelta(seconds=1), item_count=3, user_limit=3, ttl_seconds=60
    )
    parameters = {p["name"]: p for p in schema["paths"]["/checkout"]["post"]["parameters"]}
    assert not {"example", "examples"} & parameters["id"].keys()
    assert "status=available" in parameters["id"]["description"]
    user_id = example(parameters["user_id"])
    reserved = api.post(f"/checkout?user_id={user_id}&id={sale.items.all()[0].pk}")
    assert reserved.status_code == 201, reserved.content
    (purchase,) = [
        p for p in schema["paths"]["/purchase"]["post"]["parameters"] if p["name"] == "code"
    ]
    assert not {"example", "examples"} & purchase.keys()  # no code works twice
    ticket = schema["paths"]["/ticket"]["post"]["requestBody"]["content"]["text/plain"]
    received = api.post("/ticket", example(ticket), content_type="text/plain")
    assert received.status_code == 202
    ticket_services.tickets_parse()
    assert Ticket.objects.get(id=received.json()["id"]).status == "parsed"
