import base64

from drf_spectacular.utils import OpenApiExample, extend_schema_serializer
from rest_framework import serializers

from tickets.models import Order, OrderLine, Product, ProductPrice, Ticket

# States in the schema what CharField enforces anyway: text filters hold no NUL character. The
# empty string is allowed apart (allow_blank), and the schema lists it as its own alternative
# ("oneOf"), so the pattern must not match it too.
NO_NUL = r"^[^\x00]+$"

# The ticket of the specification: the webhook's example body, and what it becomes.
SAMPLE_TICKET = (
    "Order: 123456\nVAT: 3.10\nTotal: 16.90\n\n"
    "product,product_id,price\nFormule(s) midi,aZde,14.90\nCafé,IZ8z,2\n"
)
_TICKET_ID = "019ad6a2-5c3e-7b1f-9a41-3f2d8c6e0b17"
RECEIPT_EXAMPLE = {
    "id": _TICKET_ID,
    "status": "received",
    "received_at": "2026-11-30T21:05:12.402Z",
}
_SUMMARY = {
    "id": _TICKET_ID,
    "status": "parsed",
    "received_at": "2026-11-30T21:05:12.402Z",
    "parsed_at": "2026-11-30T21:05:12.950Z",
    "order_number": "123456",
    "rejection_line": None,
    "rejection_reason": "",
    "duplicate_of": None,
}
_PRODUCT = {
    "product_id": "IZ8z",
    "name": "Café",
    "price": "2.00",
    "first_seen_at": "2026-11-30T21:05:12.402Z",
    "last_seen_at": "2026-11-30T21:05:12.402Z",
    "times_seen": 1,
}


def _example(name: str, value: dict) -> list[OpenApiExample]:
    return [OpenApiExample(name, value=value, response_only=True)]


class ReceiptSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    status = serializers.CharField()
    received_at = serializers.DateTimeField()


class TicketFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=Ticket.Status.choices, required=False, allow_blank=True
    )
    order = serializers.RegexField(NO_NUL, required=False, allow_blank=True, max_length=100)


class ProductFilterSerializer(serializers.Serializer):
    search = serializers.RegexField(NO_NUL, required=False, allow_blank=True, max_length=100)


@extend_schema_serializer(examples=_example("a parsed ticket", _SUMMARY))
class TicketSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Ticket
        fields = [
            "id",
            "status",
            "received_at",
            "parsed_at",
            "order_number",
            "rejection_line",
            "rejection_reason",
            "duplicate_of",
        ]


class OrderLineSerializer(serializers.ModelSerializer):
    product_id = serializers.CharField()

    class Meta:
        model = OrderLine
        fields = ["line", "product_id", "name", "price"]


class OrderSerializer(serializers.ModelSerializer):
    lines = OrderLineSerializer(many=True)

    class Meta:
        model = Order
        fields = ["number", "vat", "total", "lines"]


@extend_schema_serializer(
    examples=_example(
        "a parsed ticket",
        {
            **_SUMMARY,
            "sha256": "5d0c1b0f8e2f4a8e3c0e7c6b1d9e2a4f6b8c0d2e4f6a8b0c2d4e6f8a0b2c4d6e",
            "raw_text": SAMPLE_TICKET,
            "raw_base64": base64.b64encode(SAMPLE_TICKET.encode()).decode(),
            "anomalies": [],
            "unknown_headers": {},
            "order": {
                "number": "123456",
                "vat": "3.10",
                "total": "16.90",
                "lines": [
                    {"line": 6, "product_id": "aZde", "name": "Formule(s) midi", "price": "14.90"},
                    {"line": 7, "product_id": "IZ8z", "name": "Café", "price": "2.00"},
                ],
            },
        },
    )
)
class TicketSerializer(TicketSummarySerializer):
    raw_text = serializers.SerializerMethodField(
        help_text="The body as UTF-8, undecodable bytes replaced; exact bytes in raw_base64."
    )
    raw_base64 = serializers.SerializerMethodField()
    order = OrderSerializer(read_only=True, allow_null=True, help_text="null unless parsed")

    class Meta(TicketSummarySerializer.Meta):
        fields = [
            *TicketSummarySerializer.Meta.fields,
            "sha256",
            "raw_text",
            "raw_base64",
            "anomalies",
            "unknown_headers",
            "order",
        ]

    def get_raw_text(self, ticket: Ticket) -> str:
        return bytes(ticket.raw).decode("utf-8", errors="replace")

    def get_raw_base64(self, ticket: Ticket) -> str:
        return base64.b64encode(bytes(ticket.raw)).decode()


@extend_schema_serializer(examples=_example("a product", _PRODUCT))
class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["product_id", "name", "price", "first_seen_at", "last_seen_at", "times_seen"]


class ProductPriceSerializer(serializers.ModelSerializer):
    ticket = serializers.UUIDField(source="ticket_id")

    class Meta:
        model = ProductPrice
        fields = ["price", "effective_at", "ticket"]


@extend_schema_serializer(
    examples=_example(
        "a product and its prices",
        {
            **_PRODUCT,
            "price_history": [
                {"price": "2.00", "effective_at": "2026-11-30T21:05:12.402Z", "ticket": _TICKET_ID}
            ],
        },
    )
)
class ProductDetailSerializer(ProductSerializer):
    price_history = ProductPriceSerializer(source="prices", many=True)

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "price_history"]
