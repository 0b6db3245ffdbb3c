"""The precompiled input checks take what the serializers take, as they take it, and leave
everything else to the serializers (which word every error)."""

from hypothesis import given
from hypothesis import strategies as st
from rest_framework.exceptions import ValidationError

from sales.serializers import CheckoutInput, PurchaseInput, checkout_input, purchase_input

values = st.one_of(
    st.text(max_size=70),
    st.text(alphabet="0123456789", min_size=1, max_size=25),
    st.from_regex(r"\A[A-Za-z0-9_\-.:@]{1,70}\Z"),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.booleans(),
    st.none(),
    st.floats(),
)


def validated(serializer, fields):
    form = serializer(data=fields)
    return dict(form.validated_data) if form.is_valid() else form.errors


def checked(check, fields):
    try:
        return dict(check(fields))
    except ValidationError as refusal:
        return refusal.detail


@given(st.fixed_dictionaries({}, optional={"user_id": values, "id": values}))
def test_checkout_input_is_the_serializers(fields):
    assert checked(checkout_input, fields) == validated(CheckoutInput, fields)


@given(st.fixed_dictionaries({}, optional={"code": values}))
def test_purchase_input_is_the_serializers(fields):
    assert checked(purchase_input, fields) == validated(PurchaseInput, fields)
