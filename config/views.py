from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiResponse,
    extend_schema,
    inline_serializer,
)
from rest_framework import serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from config.health import broker_status, database_status, redis_status
from sales.exceptions import NoSaleYet
from sales.selectors import SaleFigures, sale_current, sale_figures

_HEALTH = inline_serializer(
    "Health",
    {
        "status": serializers.ChoiceField(["ok", "degraded", "down"]),
        "database": serializers.CharField(),
        "redis": serializers.CharField(),
        "broker": serializers.CharField(),
    },
)


def _health(description: str, **examples: dict[str, str]) -> OpenApiResponse:
    return OpenApiResponse(
        _HEALTH,
        description=description,
        examples=[OpenApiExample(name, value=value) for name, value in examples.items()],
    )


class HealthView(APIView):
    """Readiness: `ok`; `degraded` when only Redis or the broker is down; 503 without a database."""

    @extend_schema(
        summary="Readiness",
        responses={
            200: _health(
                "Ready; `degraded` when Redis or the broker is down (sales fall back to "
                "PostgreSQL, tickets to the spool).",
                ok={"status": "ok", "database": "ok", "redis": "ok", "broker": "ok"},
                degraded={"status": "degraded", "database": "ok", "redis": "down", "broker": "ok"},
            ),
            503: _health(
                "The database is unreachable.",
                down={"status": "down", "database": "down", "redis": "ok", "broker": "ok"},
            ),
        },
    )
    def get(self, request: Request) -> Response:
        checks = {"database": database_status(), "redis": redis_status(), "broker": broker_status()}
        if checks["database"] != "ok":
            overall, code = "down", 503
        elif "down" in checks.values():
            overall, code = "degraded", 200
        else:
            overall, code = "ok", 200
        return Response({"status": overall, **checks}, status=code)


class PingView(APIView):
    """Liveness: the process answers. Touches no backend."""

    @extend_schema(
        summary="Liveness",
        responses=OpenApiResponse(
            inline_serializer("Pong", {"status": serializers.CharField()}),
            examples=[OpenApiExample("alive", value={"status": "ok"})],
        ),
    )
    def get(self, request: Request) -> Response:
        return Response({"status": "ok"})


def landing(request: HttpRequest) -> HttpResponse:
    """`/`: where a newcomer finds the docs, the admin, the probes and the sale running now."""
    try:
        sale: SaleFigures | None = sale_figures(sale=sale_current(now=timezone.now()))
    except NoSaleYet:
        sale = None
    return render(request, "landing.html", {"sale": sale})
