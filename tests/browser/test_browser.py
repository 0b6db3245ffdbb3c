"""The service tried as people use it, in a real browser (headless Chromium): a newcomer on the
landing page, an operator signing in to the dashboard and a sale's page, an API user trying
checkout and purchase in Swagger UI. Any error in the browser's console fails the test."""

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from django.conf import settings
from django.utils import timezone

from sales.models import Sale
from sales.selectors import sale_report
from sales.services import checkout_create, purchase_complete, sale_open

CHROMIUM = "/usr/bin/chromium"
# Flags that work as root in a container; the profile is new and empty each run.
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
WAIT_MS = 15_000

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(
        transaction=True, reset_sequences=True
    ),  # item 1 exists, as after `make run`
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
        reason="Debian's chromium is not installed (CI installs it)",
    ),
]


@pytest.fixture
def console_errors() -> list[str]:
    """What the browser's console reported as errors, and uncaught page errors."""
    return []


@pytest.fixture
def page(live_server, monkeypatch, console_errors) -> Iterator[Any]:
    from playwright.sync_api import ConsoleMessage, Error, sync_playwright

    # Playwright's sync API keeps an event loop in this thread, which makes Django refuse ORM
    # calls here; the test's own queries (setting up, checking) are plain synchronous ones.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "1")

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(f"{message.text} ({message.location.get('url')})")

    def on_page_error(error: Error) -> None:
        console_errors.append(str(error))

    profile = tempfile.mkdtemp(prefix="chromium-")
    with sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, args=FLAGS, headless=True
        )
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.on("console", on_console)
        page.on("pageerror", on_page_error)
        yield page
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture
def sale(settings, tmp_path) -> Sale:
    """A sale whose item 1 is free, one item sold and one reserved."""
    settings.TICKET_SPOOL_DIR = tmp_path / "spool"
    if settings.REDIS_URL:  # sale ids start again at 1: no key of an earlier sale 1 may remain
        from django_redis import get_redis_connection

        get_redis_connection("stock").flushdb()
    sale = sale_open(
        starts_at=timezone.now() - timedelta(seconds=1),
        item_count=20,
        user_limit=3,
        ttl_seconds=120,
    )
    purchase_complete(code=checkout_create(user_id="ann", item_id=2).attempt.code)
    checkout_create(user_id="bob", item_id=3)
    return sale


def figures_shown(page, sale: Sale) -> dict[str, int]:
    row = page.locator(f'#dashboard tr[data-sale="{sale.pk}"]')
    return {
        name: int(row.locator(f'[data-figure="{name}"]').inner_text())
        for name in ("sold", "reserved", "available")
    }


def expected_figures(sale: Sale) -> dict[str, int]:
    report = sale_report(sale=sale)
    return {name: int(report[name]) for name in ("sold", "reserved", "available")}  # type: ignore[call-overload]


def try_it_out(page, operation_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """Swagger UI's "Try it out" on one operation with these fields typed in: the status and
    the body it shows."""
    operation = page.locator(f"#operations-sales-{operation_id}")
    operation.locator(".opblock-summary").click()
    operation.get_by_role("button", name="Try it out").click()
    for name, value in fields.items():
        operation.locator(f'tr[data-param-name="{name}"] input').fill(value)
    operation.get_by_role("button", name="Execute").click()
    answer = operation.locator(".live-responses-table tbody tr.response").first
    answer.wait_for()
    status = answer.locator(".response-col_status").inner_text()
    body = answer.locator(".response-col_description pre").first.inner_text()
    return {"status": int(status.strip()), "body": json.loads(body)}


def test_landing_dashboard_sale_page_and_swagger(
    page, console_errors, live_server, sale, django_user_model
):
    django_user_model.objects.create_superuser("boss", password="browser-test-password")

    # A newcomer: the landing page links to everything.
    page.goto(live_server.url + "/")
    assert f"Sale #{sale.pk}" in page.inner_text("#current-sale")
    for text in ("API documentation", "Operators' dashboard", "/health", "/metrics"):
        assert page.get_by_role("link", name=text).count() >= 1, text

    # An operator signs in and lands on the dashboard.
    page.get_by_role("link", name="Operators' dashboard").click()
    page.fill("#id_username", "boss")
    page.fill("#id_password", "browser-test-password")
    page.click("input[type=submit]")
    page.wait_for_selector("#dashboard")
    assert figures_shown(page, sale) == expected_figures(sale)
    lines = page.locator("#outcome-chart polyline.series")
    assert lines.count() >= 1
    box = lines.first.bounding_box()
    assert box is not None
    assert box["width"] > 100  # drawn across the chart, not a dot

    # It refreshes itself: a new hold shows without reloading the page.
    checkout_create(user_id="cid", item_id=4)
    expected = expected_figures(sale)
    page.wait_for_function(
        "([selector, want]) => document.querySelector(selector).textContent.trim() === want",
        arg=[
            f'#dashboard tr[data-sale="{sale.pk}"] [data-figure="reserved"]',
            str(expected["reserved"]),
        ],
        timeout=WAIT_MS,
    )
    assert figures_shown(page, sale) == expected

    # The sale's own page: its invariants hold, and its records are a click away.
    page.click(f'#dashboard tr[data-sale="{sale.pk}"] a')
    page.wait_for_selector(".field-report")
    assert page.locator(".field-report .badge", has_text="holds").count() == 4
    page.get_by_role("link", name="reserved items").click()
    assert "bob" in page.inner_text("#result_list") or "cid" in page.inner_text("#result_list")

    # An API user tries checkout then purchase in Swagger UI, with values of their own rather
    # than the examples: the answers are about what they typed.
    page.goto(live_server.url + "/api/docs/")
    item = sale.items.order_by("-id").first()
    reserved = try_it_out(page, "checkout_create", {"user_id": "zoe", "id": str(item.pk)})
    assert reserved["status"] == 201, reserved
    assert reserved["body"]["item"]["id"] == item.pk
    bought = try_it_out(page, "purchase_create", {"code": reserved["body"]["code"]})
    assert bought["status"] == 200, bought
    assert (bought["body"]["user_id"], bought["body"]["item"]["id"]) == ("zoe", item.pk)

    assert console_errors == []
    assert settings.EMBEDDED or sale_report(sale=sale)["sold"] == 2
