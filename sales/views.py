"""The sales API: one view per operation; input validated here, decisions in services."""

from typing import Any

from django.conf import settings
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from core.admission import Gate
from core.errors import refusal_for
from core.inputs import request_fields, request_fields_as_sent
from core.middleware import body_within_limit
from core.ratelimit import RateLimit, request_value
from core.schema import (
    ADMISSION_PARAMETERS,
    BUSY,
    MALFORMED_JSON,
    METHOD_NOT_ALLOWED,
    NO_PAGE,
    RATE_LIMITED,
    TOO_LARGE,
    invalid,
    refusal,
)
from sales import selectors, services
from sales.exceptions import (
    CodeExpired,
    CodeNotFound,
    ItemNotFound,
    ItemReserved,
    ItemSold,
    NoSaleYet,
    SaleNotFound,
    SaleNotStarted,
    UserLimitReached,
)
from sales.models import Item, Outcome
from sales.serializers import (
    CODE_PATTERN,
    MAX_ID,
    USER_ID_PATTERN,
    CheckoutOutput,
    PurchaseOutput,
    SaleItemOutput,
    SaleItemsQuery,
    SaleOutput,
    checkout_input,
    purchase_input,
)


class CheckoutRateLimit(RateLimit):
    scope = "user"

    def identities(self, request: Request) -> list[str]:
        user_id = request_value(request, "user_id")
        return [user_id] if user_id else []


class PurchaseRateLimit(RateLimit):
    scope = "code"

    def identities(self, request: Request) -> list[str]:
        code = request_value(request, "code")
        return [code] if code else []


def item_body(result: services.Checkout | services.Sold) -> dict[str, Any]:
    return {"id": result.item.id, "name": result.item.name, "image_url": result.item.image_url}


class CheckoutView(APIView):
    """Every checkout request is one recorded attempt. The service records every attempt it is
    given; a request refused before it (an oversized or unreadable body, the rate limit,
    invalid fields, a failure of this code) is recorded in `handle_exception`, through the same
    service. Only a backing service that is down leaves a request unrecorded (it is answered
    503, the database being unable to take the row). A request with another method is no
    checkout."""

    throttle_classes = (CheckoutRateLimit,)
    body_limit = None  # checked in `initial`, so that an oversized body is a recorded attempt
    admission = Gate("checkout", buyer="user_id")

    @extend_schema(
        summary="Reserve an item",
        description="Reserves the item for this buyer for the sale's `ttl_seconds` and answers "
        "with the code to buy it with. Every attempt is recorded, refusals included. The same "
        "fields are also taken from a JSON or form body.",
        parameters=[
            OpenApiParameter(
                "user_id",
                {"type": "string", "pattern": USER_ID_PATTERN},
                required=True,
                description="The buyer, any name of yours: 1 to 64 letters, digits or `_ - . : @`.",
                examples=[OpenApiExample("a buyer", value="alice")],
            ),
            OpenApiParameter(
                "id",
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                required=True,
                description="The item to reserve (`item_id` is accepted as an alias). Pick an "
                "available one: `GET /sales/current` gives the sale's id, then "
                "`GET /sales/{sale_id}/items?status=available` its free items.",
            ),
            *ADMISSION_PARAMETERS,
        ],
        request=None,
        responses={
            201: OpenApiResponse(CheckoutOutput, description="Reserved now: a new code."),
            200: OpenApiResponse(
                CheckoutOutput, description="The buyer already holds this item: the same code."
            ),
            400: refusal(
                "The fields are missing or malformed.",
                invalid("id: A valid integer is required."),
                MALFORMED_JSON,
            ),
            404: refusal("No item has this id.", ItemNotFound),
            405: refusal("Checkout is POST only.", METHOD_NOT_ALLOWED),
            409: refusal(
                "The item cannot be reserved by this buyer now.",
                ItemSold,
                ItemReserved,
                UserLimitReached,
                SaleNotStarted,
            ),
            413: refusal("The body is larger than API_MAX_BODY_BYTES.", TOO_LARGE),
            429: refusal(
                "Too many requests for this buyer or address; see Retry-After.", RATE_LIMITED
            ),
            503: BUSY,
        },
    )
    def post(self, request: Request) -> Response:
        fields = checkout_input(request_fields(request, aliases={"item_id": "id"}))
        self.given_to_service = True
        checkout = services.checkout_create(user_id=fields["user_id"], item_id=fields["id"])
        body = {
            "code": checkout.attempt.code,
            "expires_at": checkout.attempt.expires_at,
            "item": item_body(checkout),
            "sale_id": checkout.item.sale_id,
        }
        return Response(body, status=201 if checkout.created else 200)

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        # Before the rate limit reads the body: its size is known from the declared length.
        body_within_limit(request, settings.API_MAX_BODY_BYTES)
        super().initial(request, *args, **kwargs)

    def handle_exception(self, exc: Exception) -> Response:
        refusal = refusal_for(exc)
        recordable = refusal is None or refusal.status_code not in (405, 503)
        if recordable and not getattr(self, "given_to_service", False):
            fields = request_fields_as_sent(self.request)
            services.checkout_refuse(
                user_id=str(fields.get("user_id", "")),
                requested_id=str(fields.get("id", fields.get("item_id", ""))),
                outcome=(
                    Outcome.ERROR
                    if refusal is None
                    else Outcome.RATE_LIMITED
                    if isinstance(exc, exceptions.Throttled)
                    else Outcome.INVALID_REQUEST
                ),
            )
        return super().handle_exception(exc)


class PurchaseView(APIView):
    throttle_classes = (PurchaseRateLimit,)
    admission = Gate("purchase", buyer="code", priority=True)

    @extend_schema(
        summary="Buy a reserved item",
        description="Turns a live reservation into a sale. Repeating a purchase that succeeded "
        "answers the same body. The code is also taken from a JSON or form body.",
        parameters=[
            OpenApiParameter(
                "code",
                {"type": "string", "pattern": CODE_PATTERN},
                required=True,
                description="The `code` a checkout answered.",
            ),
            *ADMISSION_PARAMETERS,
        ],
        request=None,
        responses={
            200: OpenApiResponse(PurchaseOutput, description="Bought (or bought already)."),
            400: refusal(
                "The code is missing or malformed.",
                invalid("code: This field is required."),
                MALFORMED_JSON,
            ),
            404: refusal("No reservation has this code.", CodeNotFound),
            405: refusal("Purchase is POST only.", METHOD_NOT_ALLOWED),
            409: refusal(
                "The item went to someone else, or the buyer reached the limit.",
                ItemSold,
                UserLimitReached,
            ),
            410: refusal("The reservation expired; check out again.", CodeExpired),
            413: refusal("The body is larger than API_MAX_BODY_BYTES.", TOO_LARGE),
            429: refusal(
                "Too many requests for this code or address; see Retry-After.", RATE_LIMITED
            ),
            503: BUSY,
        },
    )
    def post(self, request: Request) -> Response:
        sold = services.purchase_complete(code=purchase_input(request_fields(request))["code"])
        return Response(
            {
                "purchase_id": sold.purchase.pk,
                "item": item_body(sold),
                "user_id": sold.purchase.user_id,
                "sale_id": sold.purchase.sale_id,
                "purchased_at": sold.purchase.purchased_at,
            }
        )


class SaleCurrentView(APIView):
    @extend_schema(
        summary="The sale now running",
        description="The most recently started sale and its figures. If beat missed the top of "
        "the hour, this request opens the hour's sale.",
        responses={200: SaleOutput, 404: refusal("No sale has started yet.", NoSaleYet)},
    )
    def get(self, request: Request) -> Response:
        # If beat missed the top of the hour, the first request of the hour opens its sale.
        services.sale_open_missed_hour()
        return Response(selectors.sale_page(sale_id=None))


class SaleDetailView(APIView):
    @extend_schema(
        summary="A sale and its figures",
        responses={200: SaleOutput, 404: refusal("No sale has this id.", SaleNotFound)},
    )
    def get(self, request: Request, sale_id: int) -> Response:
        return Response(selectors.sale_page(sale_id=sale_id))


class SaleItemsView(ListAPIView):
    """A sale's items, filtered by status: the ids a buyer can try."""

    serializer_class = SaleItemOutput

    @extend_schema(
        summary="A sale's items",
        parameters=[SaleItemsQuery],
        responses={
            200: SaleItemOutput(many=True),
            400: refusal(
                "A filter or the page size is malformed.",
                invalid('status: "sent" is not a valid choice.'),
            ),
            404: refusal("No sale has this id, or no such page.", SaleNotFound, NO_PAGE),
        },
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        query = SaleItemsQuery(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        sale = selectors.sale_get(sale_id=self.kwargs["sale_id"])
        return selectors.sale_items(sale=sale, status=query.validated_data.get("status"))

    queryset = Item.objects.none()  # for the schema generator; get_queryset serves requests
