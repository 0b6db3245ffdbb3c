import re
from typing import Any

from django.conf import settings
from django.http import UnreadablePostError
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.authentication import SessionAuthentication
from rest_framework.generics import ListAPIView
from rest_framework.pagination import CursorPagination
from rest_framework.permissions import IsAdminUser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.schema import NO_PAGE, NOT_STAFF, TOO_LARGE, invalid, refusal
from tickets import selectors, services, tasks
from tickets.exceptions import (
    BadSignature,
    EmptyTicket,
    IdempotencyKeyReused,
    InvalidIdempotencyKey,
    ProductNotFound,
    StaleSignature,
    TicketNotFound,
    TicketNotReprocessable,
    TicketNotStored,
    TicketTooLarge,
)
from tickets.serializers import (
    RECEIPT_EXAMPLE,
    SAMPLE_TICKET,
    ProductDetailSerializer,
    ProductFilterSerializer,
    ProductSerializer,
    ReceiptSerializer,
    TicketFilterSerializer,
    TicketSerializer,
    TicketSummarySerializer,
)
from tickets.signatures import signature_verify

_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
_READ_CHUNK = 64 * 1024


def read_body(stream, *, limit: int) -> bytes:
    """The request body, refused as soon as reading it passes `limit` bytes. A declared
    Content-Length over the limit never gets here: BodyLimitMiddleware refuses it, by the
    view's `body_limit`; a chunked body declares none."""
    if stream is None:
        return b""
    chunks, size = [], 0
    while chunk := _read(stream, min(_READ_CHUNK, limit + 1 - size)):
        chunks.append(chunk)
        size += len(chunk)
        if size > limit:
            raise TicketTooLarge()
    return b"".join(chunks)


def _read(stream, size: int) -> bytes:
    try:
        return stream.read(size)
    except Exception as exc:
        # The client cut the body short or chunked it wrong. Each server says so with its own
        # exception (gunicorn's parse errors are not even OSErrors): all mean an unreadable body.
        raise UnreadablePostError(str(exc)) from exc


def body_stream(request: Request) -> Any:
    """Where the body is read from. Django reads at most Content-Length bytes, so none of a
    chunked body, which has no length: that one is read from the server's own input, which
    ends with the last chunk when the server says so (`wsgi.input_terminated`, as gunicorn and
    granian do)."""
    meta = request.META
    chunked = "chunked" in meta.get("HTTP_TRANSFER_ENCODING", "").lower()
    if chunked and not meta.get("CONTENT_LENGTH") and meta.get("wsgi.input_terminated"):
        return meta["wsgi.input"]
    return request.stream


class TicketIngestView(APIView):
    """The till webhook. One durable write, then `202`; parsing happens later."""

    authentication_classes = ()
    permission_classes = ()
    body_limit = "TICKET_MAX_BYTES"

    @extend_schema(
        operation_id="ticket_ingest",
        summary="Receive a till ticket",
        description="The till sends the ticket's text as the body. It is stored durably, then "
        "answered `202`; parsing happens afterwards (follow it with `GET /tickets/{id}`).",
        request={"text/plain": {"type": "string", "minLength": 1}},
        examples=[
            OpenApiExample(
                "a till ticket",
                value=SAMPLE_TICKET,
                request_only=True,
                media_type="text/plain",
            )
        ],
        parameters=[
            OpenApiParameter(
                "Idempotency-Key",
                {"type": "string", "pattern": _IDEMPOTENCY_KEY.pattern},
                OpenApiParameter.HEADER,
                description="A repeated key with the same body answers with the first "
                "ticket's receipt; with another body, 422 and nothing stored.",
            ),
            OpenApiParameter(
                "X-Signature",
                str,
                OpenApiParameter.HEADER,
                description="`sha256=<hex HMAC-SHA256 of the timestamp, a dot, then the body>`; "
                "required when the webhook has a shared secret.",
            ),
            OpenApiParameter(
                "X-Signature-Timestamp",
                str,
                OpenApiParameter.HEADER,
                # No pattern: without a secret the header is not read, so nothing is refused.
                description="Unix seconds (1 to 12 digits) when the request was signed; "
                "required with X-Signature, and refused when too far from the server's clock.",
            ),
        ],
        responses={
            202: OpenApiResponse(
                ReceiptSerializer,
                description="Stored durably (in PostgreSQL, or the spool while it is down).",
                examples=[OpenApiExample("acknowledged", value=RECEIPT_EXAMPLE)],
            ),
            400: refusal(
                "Empty body, or a malformed Idempotency-Key.", EmptyTicket, InvalidIdempotencyKey
            ),
            401: refusal(
                "With a webhook secret set: the signature is missing, wrong or too old.",
                BadSignature,
                StaleSignature,
            ),
            413: refusal("The body is larger than TICKET_MAX_BYTES.", TicketTooLarge, TOO_LARGE),
            422: refusal(
                "The Idempotency-Key was sent before with another body.", IdempotencyKeyReused
            ),
            503: refusal(
                "Neither the database nor the spool could store the ticket; retry.",
                TicketNotStored,
            ),
        },
    )
    def post(self, request: Request) -> Response:
        body = read_body(body_stream(request), limit=settings.TICKET_MAX_BYTES)
        if not body:
            raise EmptyTicket()
        if settings.TICKET_WEBHOOK_SECRET:
            signature_verify(
                secret=settings.TICKET_WEBHOOK_SECRET,
                body=body,
                header=request.headers.get("X-Signature"),
                timestamp=request.headers.get("X-Signature-Timestamp"),
                tolerance=settings.TICKET_SIGNATURE_TOLERANCE_SECONDS,
            )
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _IDEMPOTENCY_KEY.fullmatch(key):
            raise InvalidIdempotencyKey()
        receipt = services.ticket_ingest(body=body, idempotency_key=key)
        tasks.after_ingest(receipt)  # stored and committed (or spooled) by now
        # The receipt as ReceiptSerializer shapes it: the JSON encoder writes the UUID and the
        # UTC time the way its fields do, without a serializer instance per acknowledgement.
        answer = {"id": receipt.id, "status": receipt.status, "received_at": receipt.received_at}
        return Response(answer, status=status.HTTP_202_ACCEPTED)


class TicketPagination(CursorPagination):
    ordering = ("-received_at", "-id")
    page_size = 100


class TicketListView(ListAPIView):
    serializer_class = TicketSummarySerializer
    pagination_class = TicketPagination

    @extend_schema(
        operation_id="ticket_list",
        summary="Tickets, newest first",
        parameters=[TicketFilterSerializer],
        responses={
            200: TicketSummarySerializer(many=True),
            400: refusal(
                "Unknown status, or a malformed filter.",
                invalid('status: "sent" is not a valid choice.'),
            ),
            404: refusal("No such page.", NO_PAGE),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        filters = TicketFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return selectors.ticket_list(**filters.validated_data)


class TicketDetailView(APIView):
    @extend_schema(
        operation_id="ticket_get",
        summary="A ticket and its parse result",
        responses={200: TicketSerializer, 404: refusal("No ticket has this id.", TicketNotFound)},
    )
    def get(self, request: Request, ticket_id) -> Response:
        return Response(TicketSerializer(selectors.ticket_get(ticket_id=ticket_id)).data)


class TicketReprocessView(APIView):
    authentication_classes = (SessionAuthentication,)
    permission_classes = (IsAdminUser,)

    @extend_schema(
        operation_id="ticket_reprocess",
        summary="Parse a ticket again (staff)",
        request=None,
        responses={
            200: TicketSerializer,
            403: refusal("Not signed in as staff (the admin's session).", NOT_STAFF),
            404: refusal("No ticket has this id.", TicketNotFound),
            409: refusal(
                "The ticket is parsed or a duplicate: its order is counted already.",
                TicketNotReprocessable,
            ),
        },
    )
    def post(self, request: Request, ticket_id) -> Response:
        services.ticket_reprocess(ticket_id=ticket_id)
        return Response(TicketSerializer(selectors.ticket_get(ticket_id=ticket_id)).data)


class ProductListView(ListAPIView):
    serializer_class = ProductSerializer

    @extend_schema(
        operation_id="product_list",
        summary="The product catalogue",
        parameters=[ProductFilterSerializer],
        responses={
            200: ProductSerializer(many=True),
            400: refusal(
                "A filter or the page size is malformed.",
                invalid("page_size: A whole number from 1 to 1000."),
            ),
            404: refusal("No such page.", NO_PAGE),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        filters = ProductFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return selectors.product_list(**filters.validated_data)


class ProductDetailView(APIView):
    @extend_schema(
        operation_id="product_get",
        summary="A product and its price history",
        responses={
            200: ProductDetailSerializer,
            404: refusal("No product has this id.", ProductNotFound),
        },
    )
    def get(self, request: Request, product_id: str) -> Response:
        return Response(ProductDetailSerializer(selectors.product_get(product_id=product_id)).data)
