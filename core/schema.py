"""OpenAPI schema: the error responses each operation documents, its tags, and adjustments."""

from typing import Any

from django.apps import apps
from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from core.admission import BUSY_CODE, BUSY_MESSAGE, TOKEN_HEADER
from core.errors import DomainError, PayloadTooLarge, error_body

# Refusals that DRF or the platform raise for any endpoint, as (code, an example message).
MALFORMED_JSON = ("invalid_request", "The body is not valid JSON.")
RATE_LIMITED = ("rate_limited", "Request was throttled. Expected available in 7 seconds.")
METHOD_NOT_ALLOWED = ("method_not_allowed", 'Method "GET" not allowed.')
NOT_STAFF = ("permission_denied", "You do not have permission to perform this action.")
NO_PAGE = ("not_found", "Invalid page.")
TOO_LARGE = PayloadTooLarge


def invalid(message: str) -> tuple[str, str]:
    """A field refused by validation, the message naming a field of the operation itself."""
    return ("invalid_request", message)


class _ErrorDetail(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer):
    """The one error shape, for the OpenAPI schema."""

    error = _ErrorDetail()


def refusal(description: str, *errors: type[DomainError] | tuple[str, str]) -> OpenApiResponse:
    """A response in the one error shape, described with the codes it can carry, one example
    per code (taken from the error classes themselves where the error is a domain one)."""
    pairs = [(error.code, error.message) if isinstance(error, type) else error for error in errors]
    codes = ", ".join(dict.fromkeys(f"`{code}`" for code, _ in pairs))
    examples = [
        OpenApiExample(
            code if n == 0 else f"{code} ({n + 1})",
            summary=message,
            value=error_body(code, message),
        )
        for code, message in pairs
        for n in [[c for c, _ in pairs[: pairs.index((code, message))]].count(code)]
    ]
    return OpenApiResponse(
        ErrorSerializer, description=f"{description} Codes: {codes}.", examples=examples
    )


class AutoSchema(openapi.AutoSchema):
    """Operations are listed under the app that serves them, unless a view's `extend_schema`
    names its tags itself."""

    def get_tags(self) -> list[str]:
        app = apps.get_containing_app_config(type(self.view).__module__)
        return [app.label] if app else super().get_tags()


def require_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Drop the security requirement of public operations, and mark each body required
    (drf-spectacular leaves raw bodies, such as the ticket's text, optional)."""
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("security") == [{}]:  # anonymous only: no padlock to show
                del operation["security"]
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return result


_TOKEN_EXAMPLE = "eyJiIjoiYWxpY2UiLCJpIjoxNzY0ODM4MDAwLjAsInIiOjE3NjQ4MzgwMDMuMH0:1tS8dq:x9Jb0Ww"  # noqa: S105

# The waiting room's contract (core/admission.py): a busy answer, and the header to come back with.
ADMISSION_PARAMETERS = [
    OpenApiParameter(
        TOKEN_HEADER,
        str,
        OpenApiParameter.HEADER,
        description="The token of an earlier `503 busy` answer, sent back from its "
        "`Retry-After`: admitted ahead of new arrivals, once, for the buyer it names. Its "
        "return time may lie past the longest `Retry-After`; sent back before it, the request "
        "is a new arrival's and, if turned away, keeps the buyer's place.",
        examples=[OpenApiExample("token", value=_TOKEN_EXAMPLE)],
    ),
    OpenApiParameter(
        "Retry-After",
        int,
        OpenApiParameter.HEADER,
        response=[503],
        description="Seconds to wait before coming back (with the Admission-Token if busy).",
    ),
]
BUSY = OpenApiResponse(
    ErrorSerializer,
    description="Busy: the request was not run (and not recorded). Come back after "
    "`Retry-After` seconds with the `Admission-Token` header set to `error.token`; "
    "`service_unavailable`: a backing service is down. Codes: `busy`, `service_unavailable`.",
    examples=[
        OpenApiExample(
            BUSY_CODE,
            value=error_body(BUSY_CODE, BUSY_MESSAGE, token=_TOKEN_EXAMPLE, retry_after=3),
        )
    ],
)
