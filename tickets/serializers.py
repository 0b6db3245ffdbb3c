import base64

from rest_framework import serializers

from tickets.models import Order, OrderLine, Product, ProductPrice, Ticket

# States in the schema what CharField enforces anyway: text filters hold no NUL character.
NO_NUL = r"^[^\x00]*$"


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


class ProductSerializer(serializers.ModelSerializer):
    class Meta:
        model = Product
        fields = ["product_id", "name", "price", "first_seen_at", "last_seen_at", "times_seen"]


class ProductPriceSerializer(serializers.ModelSerializer):
    ticket = serializers.UUIDField(source="ticket_id")

    class Meta:
        model = ProductPrice
        fields = ["price", "effective_at", "ticket"]


class ProductDetailSerializer(ProductSerializer):
    price_history = ProductPriceSerializer(source="prices", many=True)

    class Meta(ProductSerializer.Meta):
        fields = [*ProductSerializer.Meta.fields, "price_history"]
