"""Input validation and output shapes of the sales API."""

from rest_framework import serializers

USER_ID_PATTERN = r"^[A-Za-z0-9_\-.:@]{1,64}$"
CODE_PATTERN = r"^[A-Za-z0-9_\-]{1,64}$"
MAX_ID = 2**63 - 1


class CheckoutInput(serializers.Serializer):
    user_id = serializers.RegexField(
        USER_ID_PATTERN,
        error_messages={"invalid": "1 to 64 letters, digits or _ - . : @ characters."},
    )
    id = serializers.IntegerField(
        min_value=1, max_value=MAX_ID, help_text="Item id (alias item_id)"
    )


class PurchaseInput(serializers.Serializer):
    code = serializers.RegexField(CODE_PATTERN, error_messages={"invalid": "Not a checkout code."})


class ItemOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    image_url = serializers.URLField()


class CheckoutOutput(serializers.Serializer):
    code = serializers.CharField()
    expires_at = serializers.DateTimeField()
    item = ItemOutput()
    sale_id = serializers.IntegerField()


class PurchaseOutput(serializers.Serializer):
    purchase_id = serializers.IntegerField()
    item = ItemOutput()
    user_id = serializers.CharField()
    sale_id = serializers.IntegerField()
    purchased_at = serializers.DateTimeField()


class SaleOutput(serializers.Serializer):
    id = serializers.IntegerField()
    starts_at = serializers.DateTimeField()
    item_count = serializers.IntegerField()
    user_limit = serializers.IntegerField()
    ttl_seconds = serializers.IntegerField()
    sold = serializers.IntegerField()
    reserved = serializers.IntegerField()
    available = serializers.IntegerField()


class SaleItemOutput(ItemOutput):
    status = serializers.ChoiceField(["available", "reserved", "sold"])


class SaleItemsQuery(serializers.Serializer):
    status = serializers.ChoiceField(["available", "reserved", "sold"], required=False)
