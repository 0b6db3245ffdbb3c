from urllib.parse import quote

import pytest
from django.test import Client
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

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
    response = Client(enforce_csrf_checks=True).post(
        "/admin/login/", {"username": "a", "password": "b"}
    )
    assert response.status_code == 403
    assert error_of(response)["code"] == "csrf_failed"


def test_an_unknown_host_is_a_400(api):
    response = api.get("/ping", headers={"host": "evil.example"})
    assert response.status_code == 400
    assert error_of(response)["code"] == "invalid_request"


FUZZ = hypothesis_settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# What has broken services like this one: NUL, lone surrogates, separators, non-ASCII digits.
tricky = st.text(alphabet=st.sampled_from("\x00\ud800\udfff/%?#&=;:\\'\" \n\u00e9\uff11\uff12a1"))


def assert_clean(response) -> None:
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        error_of(response)


@pytest.mark.django_db
@FUZZ
@given(segment=tricky, method=st.sampled_from(["get", "post", "put", "delete", "options"]))
def test_any_path_segment_on_any_method_is_answered_in_the_shape(api, segment, method):
    quoted = quote(segment, safe="", errors="surrogatepass")
    for path in ("/products/", "/tickets/", "/sales/", "/api/docs/", "/admin/"):
        assert_clean(getattr(api, method)(path + quoted))


@pytest.mark.django_db
@FUZZ
@given(
    depth=st.integers(min_value=1, max_value=20_000),
    fields=st.integers(min_value=0, max_value=3_000),
    query=tricky,
)
def test_any_nesting_and_any_number_of_fields_is_answered_in_the_shape(api, depth, fields, query):
    path = "/t/validation?q=" + quote(query, errors="surrogatepass")
    assert_clean(api.post(path, "[" * depth + "]" * depth, content_type="application/json"))
    form = "&".join(["f=1"] * fields)
    assert_clean(api.post(path, form, content_type="application/x-www-form-urlencoded"))


@pytest.mark.django_db
@FUZZ
@given(key=tricky, timestamp=tricky)
def test_any_header_parameter_is_answered_in_the_shape(api, key, timestamp):
    # A header travels as latin-1 bytes: a lone surrogate arrives as the bytes that encode it.
    def header(value: str) -> str:
        return value.encode("utf-8", "surrogatepass").decode("latin-1")

    response = api.generic(
        "POST",
        "/ticket",
        b"Order: 1\n",
        content_type="text/plain",
        headers={"Idempotency-Key": header(key), "X-Signature-Timestamp": header(timestamp)},
    )
    assert_clean(response)


@pytest.mark.django_db
@pytest.mark.parametrize("page", ["", "%EF%BC%92", "+2", "2.0"])
def test_a_page_number_is_ascii_digits(api, page):
    response = api.get(f"/products?page={page}")
    assert response.status_code == 404
    assert error_of(response)["code"] == "not_found"
