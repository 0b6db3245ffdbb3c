import pytest
from django.test import Client

pytestmark = [pytest.mark.smoke, pytest.mark.urls("tests.platform.urls")]


def error_of(response) -> dict:
    body = response.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message"}
    assert body["error"]["message"]
    return body["error"]


def test_domain_error_carries_its_status_and_code(api):
    response = api.post("/t/domain")
    assert response.status_code == 410
    assert error_of(response) == {"code": "gone_for_good", "message": "It went."}


def test_validation_error_names_the_field(api):
    response = api.post("/t/validation", {"count": "zero"}, format="json")
    assert response.status_code == 400
    error = error_of(response)
    assert error["code"] == "invalid_request"
    assert error["message"].startswith("count:")


def test_malformed_json_is_a_400(api):
    response = api.post("/t/validation", "{not json", content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


def test_unknown_path_is_a_json_404(api):
    response = api.get("/no/such/thing")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"


def test_wrong_method_is_a_json_405_with_allow(api):
    response = api.delete("/t/domain")
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_unhandled_exception_is_a_json_500_without_detail(api, caplog):
    response = api.get("/t/crash")
    assert response.status_code == 500
    error = error_of(response)
    assert error["code"] == "internal_error"
    assert "secret detail" not in response.content.decode()
    assert "secret detail" in caplog.text


def test_json_nested_deeper_than_python_recurses_is_a_400(api):
    body = "[" * 20_000 + "]" * 20_000
    response = api.post("/t/validation", body, content_type="application/json")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize("where", ["body", "query"])
def test_a_flood_of_fields_is_a_400(api, where):
    fields = "&".join(["f=1"] * 5_000)
    if where == "body":
        response = api.post(
            "/t/validation", fields, content_type="application/x-www-form-urlencoded"
        )
    else:
        response = api.get(f"/products?{fields}")
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/products/a%00b", "/products?search=a%00b", "/sales/1%00"])
def test_a_nul_in_the_path_or_the_query_is_a_400(api, path):
    response = api.get(path)
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("put", "/metrics"),
        ("post", "/metrics"),
        ("options", "/api/docs/"),
        ("options", "/api/schema/"),
        ("post", "/api/docs/"),
        ("delete", "/api/schema/"),
        ("post", "/static/admin/css/base.css"),
    ],
)
def test_every_path_refuses_a_method_in_the_one_shape(api, method, path):
    response = getattr(api, method)(path)
    assert response.status_code == 405
    assert error_of(response)["code"] == "method_not_allowed"
    assert response["Allow"]


@pytest.mark.django_db
def test_a_csrf_refusal_is_in_the_one_shape():
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})
    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"


def test_an_unknown_host_is_a_400(api):
    response = api.get("/ping", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"
