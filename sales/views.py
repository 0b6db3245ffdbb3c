"""The sales API: one view per operation; input validated here, decisions in services."""

from typing import Any

from django.conf import settings
from django.db import DatabaseError
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.errors import DomainError, ErrorSerializer
from config.inputs import request_fields, request_fields_as_sent
from config.middleware import body_within_limit
from config.ratelimit import RateLimit, request_value
from sales import selectors, services
from sales.models import Item, Outcome
from sales.serializers import (
    CODE_PATTERN,
    MAX_ID,
    USER_ID_PATTERN,
    CheckoutInput,
    CheckoutOutput,
    PurchaseInput,
    PurchaseOutput,
    SaleItemOutput,
    SaleItemsQuery,
    SaleOutput,
)

ERRORS = {status: ErrorSerializer for status in (400, 404, 405, 409, 410, 413, 429)}


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
    service. Only a database that cannot take the row leaves a request unrecorded, and it is
    answered 503. A request with another method is no checkout."""

    throttle_classes = (CheckoutRateLimit,)

    @extend_schema(
        summary="Reserve an item",
        description="The same fields are also accepted in a JSON or form body, and `item_id` "
        "as an alias of `id`.",
        parameters=[
            OpenApiParameter(
                "user_id", {"type": "string", "pattern": USER_ID_PATTERN}, required=True
            ),
            OpenApiParameter(
                "id",
                {"type": "integer", "minimum": 1, "maximum": MAX_ID},
                required=True,
                description="Item id",
            ),
        ],
        request=None,
        responses={201: CheckoutOutput, 200: CheckoutOutput, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        form = CheckoutInput(data=request_fields(request, aliases={"item_id": "id"}))
        form.is_valid(raise_exception=True)
        self.given_to_service = True
        checkout = services.checkout_create(
            user_id=form.validated_data["user_id"], item_id=form.validated_data["id"]
        )
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
        unrecorded = not getattr(self, "given_to_service", False)
        if unrecorded and not isinstance(exc, exceptions.MethodNotAllowed | DatabaseError):
            fields = request_fields_as_sent(self.request)
            services.checkout_refuse(
                user_id=str(fields.get("user_id", "")),
                requested_id=str(fields.get("id", fields.get("item_id", ""))),
                outcome=(
                    Outcome.RATE_LIMITED
                    if isinstance(exc, exceptions.Throttled)
                    else Outcome.INVALID_REQUEST
                    if isinstance(exc, exceptions.APIException | DomainError)
                    else Outcome.ERROR
                ),
            )
        return super().handle_exception(exc)


class PurchaseView(APIView):
    throttle_classes = (PurchaseRateLimit,)

    @extend_schema(
        summary="Buy a reserved item",
        description="`code` is also accepted in a JSON or form body.",
        parameters=[
            OpenApiParameter("code", {"type": "string", "pattern": CODE_PATTERN}, required=True)
        ],
        request=None,
        responses={200: PurchaseOutput, **ERRORS},
    )
    def post(self, request: Request) -> Response:
        form = PurchaseInput(data=request_fields(request))
        form.is_valid(raise_exception=True)
        sold = services.purchase_complete(code=form.validated_data["code"])
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
        summary="The sale now running", responses={200: SaleOutput, 404: ErrorSerializer}
    )
    def get(self, request: Request) -> Response:
        # If beat missed the top of the hour, the first request of the hour opens its sale.
        services.sale_open_missed_hour()
        sale = selectors.sale_current(now=timezone.now())
        return Response(selectors.sale_figures(sale=sale))


class SaleDetailView(APIView):
    @extend_schema(
        summary="A sale and its figures", responses={200: SaleOutput, 404: ErrorSerializer}
    )
    def get(self, request: Request, sale_id: int) -> Response:
        return Response(selectors.sale_figures(sale=selectors.sale_get(sale_id=sale_id)))


class SaleItemsView(ListAPIView):
    """A sale's items, filtered by status: the ids a buyer can try."""

    serializer_class = SaleItemOutput

    @extend_schema(
        summary="A sale's items",
        parameters=[SaleItemsQuery],
        responses={200: SaleItemOutput(many=True), 400: ErrorSerializer, 404: ErrorSerializer},
    )
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self) -> Any:
        query = SaleItemsQuery(data=self.request.query_params.dict())
        query.is_valid(raise_exception=True)
        sale = selectors.sale_get(sale_id=self.kwargs["sale_id"])
        return selectors.sale_items(sale=sale, status=query.validated_data.get("status"))

    queryset = Item.objects.none()  # for the schema generator; get_queryset serves requests
