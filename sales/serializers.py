"""Input validation and output shapes of the sales API."""

import re
from typing import Any

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from sales.selectors import ITEM_STATUSES

USER_ID_PATTERN = r"^[A-Za-z0-9_\-.:@]{1,64}$"
CODE_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
MAX_ID = 2**63 - 1


class AsciiIntegerField(serializers.IntegerField):
    """A whole number given as a JSON integer or as ASCII digits: `int()` also reads other
    scripts' digits (fullwidth "12"), signs, spaces and a trailing ".0", none of which is an id."""

    def to_internal_value(self, data: object) -> int:
        if isinstance(data, bool) or not (
            isinstance(data, int) or (isinstance(data, str) and data.isascii() and data.isdigit())
        ):
            self.fail("invalid")
        return super().to_internal_value(data)


def _example(name: str, value: dict) -> list[OpenApiExample]:
    return [OpenApiExample(name, value=value)]


_ITEM = {
    "id": 1,
    "name": "Brass Lantern 00001",
    "image_url": "https://picsum.photos/seed/sale1-1/400/400",
}


class CheckoutInput(serializers.Serializer):
    user_id = serializers.RegexField(
        USER_ID_PATTERN,
        error_messages={"invalid": "1 to 64 letters, digits or _ - . : @ characters."},
    )
    id = AsciiIntegerField(min_value=1, max_value=MAX_ID, help_text="Item id (alias item_id)")


class PurchaseInput(serializers.Serializer):
    code = serializers.RegexField(CODE_PATTERN, error_messages={"invalid": "Not a checkout code."})


_USER_ID = re.compile(USER_ID_PATTERN)
_CODE = re.compile(CODE_PATTERN)


def _ascii_id(value: object) -> int | None:
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 19:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= MAX_ID:
        return value
    return None


def checkout_input(fields: dict[str, Any]) -> dict[str, Any]:
    """`CheckoutInput`'s validated data. Fields that are plainly valid are taken at once: a
    serializer instance costs a deep copy of its fields and a compiled validator each, a fifth
    of a checkout's CPU. Anything else goes through the serializer, which alone words errors."""
    user_id, item_id = fields.get("user_id"), _ascii_id(fields.get("id"))
    if isinstance(user_id, str) and item_id is not None and _USER_ID.match(user_id):
        return {"user_id": user_id, "id": item_id}
    form = CheckoutInput(data=fields)
    form.is_valid(raise_exception=True)
    return form.validated_data


def purchase_input(fields: dict[str, Any]) -> dict[str, Any]:
    """`PurchaseInput`'s validated data, a plainly valid code taken at once (as above)."""
    code = fields.get("code")
    if isinstance(code, str) and _CODE.match(code):
        return {"code": code}
    form = PurchaseInput(data=fields)
    form.is_valid(raise_exception=True)
    return form.validated_data


class ItemOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    image_url = serializers.URLField()


@extend_schema_serializer(
    examples=_example(
        "reserved",
        {
            "code": "Vb0qX3mX3cXQk5c2Gk8Xyw",
            "expires_at": "2026-11-30T21:02:00Z",
            "item": _ITEM,
            "sale_id": 1,
        },
    )
)
class CheckoutOutput(serializers.Serializer):
    code = serializers.CharField()
    expires_at = serializers.DateTimeField()
    item = ItemOutput()
    sale_id = serializers.IntegerField()


@extend_schema_serializer(
    examples=_example(
        "bought",
        {
            "purchase_id": 1,
            "item": _ITEM,
            "user_id": "alice",
            "sale_id": 1,
            "purchased_at": "2026-11-30T21:00:40Z",
        },
    )
)
class PurchaseOutput(serializers.Serializer):
    purchase_id = serializers.IntegerField()
    item = ItemOutput()
    user_id = serializers.CharField()
    sale_id = serializers.IntegerField()
    purchased_at = serializers.DateTimeField()


@extend_schema_serializer(
    examples=_example(
        "a sale under way",
        {
            "id": 1,
            "starts_at": "2026-11-30T21:00:00Z",
            "item_count": 10000,
            "user_limit": 10,
            "ttl_seconds": 120,
            "sold": 7210,
            "reserved": 388,
            "available": 2402,
        },
    )
)
class SaleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    item_count = serializers.IntegerField()
    user_limit = serializers.IntegerField()
    ttl_seconds = serializers.IntegerField()
    sold = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()


@extend_schema_serializer(examples=_example("an item", {**_ITEM, "status": "available"}))
class SaleItemOutput(ItemOutput):
    status = serializers.ChoiceField(ITEM_STATUSES)


class SaleItemsQuery(serializers.Serializer):
    status = serializers.ChoiceField(ITEM_STATUSES, required=False)
