"""A sale's public page is served from this process's copy of its figures for
SALE_PAGE_SECONDS, then read again."""

import pytest

from sales.services import checkout_create

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]


def test_the_figures_are_kept_for_a_moment_then_read_again(api, open_sale, settings, monkeypatch):
    settings.SALE_PAGE_SECONDS = 60
    sale = open_sale(items=2)
    assert api.get(f"/sales/{sale.pk}").json()["reserved"] == 0
    checkout_create(user_id="ann", item_id=sale.items.first().pk)
    assert api.get(f"/sales/{sale.pk}").json()["reserved"] == 0, "kept"
    later = 10**9.0  # a minute and much more from now
    monkeypatch.setattr("sales.selectors.time.monotonic", lambda: later)
    assert api.get(f"/sales/{sale.pk}").json()["reserved"] == 1, "read again once stale"


def test_zero_keeps_nothing(api, open_sale, settings):
    settings.SALE_PAGE_SECONDS = 0
    sale = open_sale(items=2)
    assert api.get("/sales/current").json()["reserved"] == 0
    checkout_create(user_id="ann", item_id=sale.items.first().pk)
    assert api.get("/sales/current").json()["reserved"] == 1
