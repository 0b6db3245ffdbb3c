"""Whatever a client sends to checkout and purchase, the answer is a clear JSON error or a
success, never a 500, and every checkout request leaves exactly one attempt row."""

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sales.models import CheckoutAttempt

pytestmark = [pytest.mark.django_db, pytest.mark.smoke]

FUZZ = settings(
    max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
# Characters that have broken services like this one: NUL, quotes, separators, non-ASCII.
tricky = st.text(
    alphabet=st.sampled_from("\x00\ud800'\"\\&=?%;,: \n\u00e9\u00b2\u202e\U0001f600a1_-.@")
)
values = st.one_of(
    st.text(max_size=100),
    tricky,
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
)
fields = st.fixed_dictionaries(
    {}, optional={name: values for name in ("user_id", "id", "item_id", "code", "x")}
)


def assert_clean(response) -> None:
    assert response.status_code < 500, response.content
    if response.status_code >= 400:
        assert set(response.json()["error"]) == {"code", "message"}


def query(data: dict) -> dict:
    """The fields a query string can carry: a URL has no room for NUL or lone surrogates."""
    return {
        k: v
        for k, v in data.items()
        if isinstance(v, str | int)
        and "\x00" not in str(v)
        and not any(0xD800 <= ord(c) <= 0xDFFF for c in str(v))
    }


def checkout_leaves_one_attempt(post) -> None:
    before = CheckoutAttempt.objects.count()
    assert_clean(post())
    assert CheckoutAttempt.objects.count() == before + 1


@FUZZ
@given(body=fields)
def test_checkout_takes_any_json_body(api, body):
    payload = json.dumps(body, default=str)
    checkout_leaves_one_attempt(
        lambda: api.post("/checkout", payload, content_type="application/json")
    )


@FUZZ
@given(data=fields)
def test_checkout_takes_any_query(api, data):
    checkout_leaves_one_attempt(lambda: api.post("/checkout", query_params=query(data)))


@FUZZ
@given(
    raw=st.one_of(st.binary(max_size=60), tricky),
    content_type=st.sampled_from(
        [
            "application/json",
            "application/x-www-form-urlencoded",
            "text/plain",
            "multipart/form-data",
        ]
    ),
)
def test_checkout_takes_any_raw_body(api, raw, content_type):
    # As sent on the wire: a lone surrogate becomes the bytes a sloppy encoder would produce.
    body = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    checkout_leaves_one_attempt(
        lambda: api.post("/checkout?user_id=raw", body, content_type=content_type)
    )


@FUZZ
@given(data=fields, body=fields)
def test_purchase_takes_any_input(api, data, body):
    assert_clean(
        api.post(
            "/purchase",
            json.dumps(body, default=str),
            content_type="application/json",
            query_params=query(data),
        )
    )
