import pytest

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
