import os
import subprocess
import sys
import time
import uuid

import pytest
from django.test import Client
from django_redis import get_redis_connection

pytestmark = pytest.mark.django_db


@pytest.fixture
def limits(settings):
    def set_(**rates):
        settings.RATE_LIMITS = {"user": None, "code": None, "address": None, **rates}

    return set_


@pytest.mark.smoke
def test_checkout_is_limited_per_user_with_retry_after(api, limits):
    limits(user=(3, 10))
    statuses = [api.post("/checkout?user_id=ratelimited&id=1").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    refused = api.post("/checkout?user_id=ratelimited&id=1")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 1 <= int(refused["Retry-After"]) <= 11
    # another buyer is not held back by the first one's limit
    assert api.post("/checkout?user_id=someone-else&id=1").status_code == 404


def test_limits_are_counted_on_a_redis_cluster(api, limits, on_redis_cluster):
    limits(user=(3, 10), address=(1000, 10))
    statuses = [api.post("/checkout?user_id=clustered&id=1").status_code for _ in range(4)]
    assert statuses == [404, 404, 404, 429]
    # the buyer's counter and the address's, each in a slot of its own, all on the cluster
    counters = set(get_redis_connection("default").scan_iter(match="ratelimit:*"))
    assert len(counters) == 2, counters


@pytest.mark.smoke
def test_checkouts_refused_before_the_stock_is_asked_are_recorded_too(api, limits, settings):
    from sales.models import CheckoutAttempt

    limits(user=(1, 60))
    settings.API_MAX_BODY_BYTES = 100
    assert api.post("/checkout?user_id=flood&id=7").status_code == 404
    assert api.post("/checkout?user_id=flood&id=7").status_code == 429
    big = api.post("/checkout?user_id=big&id=7", "x" * 101, content_type="application/json")
    assert big.status_code == 413
    assert api.get("/checkout?user_id=browser&id=7").status_code == 405  # no checkout
    recorded = CheckoutAttempt.objects.order_by("id").values_list("user_id", "outcome")
    assert list(recorded) == [
        ("flood", "item_not_found"),
        ("flood", "rate_limited"),
        ("big", "invalid_request"),
    ]


@pytest.mark.smoke
def test_the_limit_counts_the_user_id_the_checkout_uses(api, limits):
    """A body's user_id is the one checked out: rotating the query's must not dodge the limit."""
    limits(user=(2, 60))
    statuses = [
        api.post(
            f"/checkout?user_id=decoy{n}", {"user_id": "me", "id": 1}, format="json"
        ).status_code
        for n in range(3)
    ]
    assert statuses == [404, 404, 429]


@pytest.mark.smoke
def test_checkout_and_purchase_are_limited_per_client_address(api, limits):
    limits(address=(2, 60))
    api.post("/checkout?user_id=a&id=1", REMOTE_ADDR="10.9.9.9")
    api.post("/purchase?code=abc", REMOTE_ADDR="10.9.9.9")
    assert api.post("/checkout?user_id=b&id=1", REMOTE_ADDR="10.9.9.9").status_code == 429
    assert api.post("/checkout?user_id=b&id=1", REMOTE_ADDR="10.9.9.8").status_code == 404


def test_limits_are_shared_through_redis(api, limits, settings):
    """Two processes see one counter: here, a counter set in Redis by someone else."""
    assert settings.REDIS_URL
    limits(code=(5, 3600))
    bucket = int(time.time() // 3600)
    get_redis_connection("default").set(f"ratelimit:code:shared-code:3600:{bucket}", 5)
    assert api.post("/purchase?code=shared-code").status_code == 429


@pytest.mark.smoke
def test_a_body_over_the_limit_is_refused_before_it_is_read(api, settings):
    settings.API_MAX_BODY_BYTES = 100
    response = api.post("/checkout", "x" * 101, content_type="application/json")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"
    odd_length = api.post("/checkout", "{}", content_type="application/json", CONTENT_LENGTH="²")
    assert odd_length.status_code == 413


def deploy_check(**variables: str) -> subprocess.CompletedProcess[str]:
    environ = {
        k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE", "DB_"))
    }
    environ.update(variables)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        env=environ,
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_settings_pass_the_deploy_check():
    result = deploy_check(
        DATABASE_URL="postgres://postgres@127.0.0.1:5432/test",
        DJANGO_SECRET_KEY="a-long-random-secret-" + "x" * 40,
        DJANGO_ALLOWED_HOSTS="shop.example.com",
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


@pytest.mark.smoke
def test_security_headers(api):
    response = api.get("/ping")
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert response["Referrer-Policy"] == "same-origin"


@pytest.mark.smoke
def test_no_code_in_the_logs(api, caplog):
    from sales.services import sale_open

    caplog.set_level("DEBUG", logger="requests")
    item = sale_open(item_count=1).items.get()
    code = api.post(f"/checkout?user_id=logcheck&id={item.pk}").json()["code"]
    api.post(f"/purchase?code={code}")
    assert "POST /purchase 200" in caplog.text
    assert code not in caplog.text


@pytest.mark.smoke
def test_only_failed_or_slow_requests_are_logged_below_debug(api, caplog, settings):
    caplog.set_level("INFO", logger="requests")
    api.get("/ping")
    assert "GET /ping" not in caplog.text
    settings.SLOW_REQUEST_SECONDS = 0
    api.get("/ping")
    assert "GET /ping 200" in caplog.text


@pytest.mark.smoke
@pytest.mark.parametrize("path", ["/checkout", "/purchase"])
def test_a_malformed_json_body_is_answered_as_such(api, limits, path):
    """With the rate limits on, as in production: the limiter reads the body first."""
    limits(user=(100, 60), code=(100, 60), address=(1000, 60))
    response = api.post(
        f"{path}?user_id=ann&id=1&code=abc", "{bad", content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json()["error"] == {
        "code": "invalid_request",
        "message": "The body is not valid JSON.",
    }


@pytest.mark.smoke
def test_pages_get_sessions_and_csrf_and_the_buyers_api_none(api, client, django_user_model):
    # The admin's login form: a CSRF cookie, and a post without the token refused.
    form = client.get("/admin/login/")
    assert form.status_code == 200
    assert "csrftoken" in form.cookies
    refused = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x"})
    assert refused.status_code == 403
    # The staff API authenticates the session, so it runs the pages' middleware too.
    client.force_login(django_user_model.objects.create_user("staff", is_staff=True))
    assert client.post(f"/tickets/{uuid.uuid4()}/reprocess").status_code == 404
    # A checkout, a ticket and a probe: no cookie, no session, the same protections in headers.
    for response in (
        api.post("/checkout?user_id=pages&id=1"),
        api.post("/ticket", "x", content_type="text/plain"),
        api.get("/ping"),
    ):
        assert not response.cookies
        assert "Cookie" not in response.get("Vary", "")
        assert response["X-Frame-Options"] == "DENY"
        assert response["X-Content-Type-Options"] == "nosniff"


def test_a_page_protection_left_out_of_the_pages_middleware_stops_the_checks(settings):
    from django.core import checks

    settings.PAGE_MIDDLEWARE = [
        m for m in settings.PAGE_MIDDLEWARE if m != "django.middleware.csrf.CsrfViewMiddleware"
    ]
    errors = [e for e in checks.run_checks() if e.id == "operations.E001"]
    assert [e.msg for e in errors] == [
        "django.middleware.csrf.CsrfViewMiddleware must be in PAGE_MIDDLEWARE"
    ]
