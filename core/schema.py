"""OpenAPI schema: the error responses each operation documents, its tags, and adjustments."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse

from core.admission import BUSY_CODE, BUSY_MESSAGE, TOKEN_HEADER
from core.errors import DomainError, ErrorSerializer, PayloadTooLarge, error_body

# Refusals that DRF or the platform raise for any endpoint, as (code, an example message).
INVALID_REQUEST = ("invalid_request", "id: A valid integer is required.")
MALFORMED_JSON = ("invalid_request", "The body is not valid JSON.")
RATE_LIMITED = ("rate_limited", "Request was throttled. Expected available in 7 seconds.")
METHOD_NOT_ALLOWED = ("method_not_allowed", 'Method "GET" not allowed.')
NOT_STAFF = ("permission_denied", "You do not have permission to perform this action.")
NO_PAGE = ("not_found", "Invalid page.")
TOO_LARGE = PayloadTooLarge


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


# Paths by their first segment, to the tag they are listed under.
TAGS = {
    "checkout": "sales",
    "purchase": "sales",
    "sales": "sales",
    "ticket": "tickets",
    "tickets": "tickets",
    "products": "tickets",
    "health": "operations",
    "ping": "operations",
}


def tag_and_require_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Tag each operation by what it serves (sales, tickets, operations), drop the security
    requirement of public ones, and mark each body required unless the same fields may come in
    the query string instead (drf-spectacular leaves raw bodies, such as the ticket's text,
    optional)."""
    result["tags"] = [
        {"name": "sales", "description": "The hourly flash sale: reserve, buy, follow a sale."},
        {"name": "tickets", "description": "The till webhook, its tickets and the catalogue."},
        {"name": "operations", "description": "Probes for load balancers and supervisors."},
    ]
    for path, operations in result.get("paths", {}).items():
        tag = TAGS[path.strip("/").split("/")[0]]
        for operation in operations.values():
            operation["tags"] = [tag]
            if operation.get("security") == [{}]:  # anonymous only: no padlock to show
                del operation["security"]
            in_query = any(p.get("in") == "query" for p in operation.get("parameters", []))
            if "requestBody" in operation:
                operation["requestBody"]["required"] = not in_query
    return result


_TOKEN_EXAMPLE = "eyJiIjoiYWxpY2UiLCJpIjoxNzY0ODM4MDAwLjAsInIiOjE3NjQ4MzgwMDMuMH0:1tS8dq:x9Jb0Ww"  # noqa: S105

# The waiting room's contract (core/admission.py): a busy answer, and the header to come back with.
ADMISSION_PARAMETERS = [
    OpenApiParameter(
        TOKEN_HEADER,
        str,
        OpenApiParameter.HEADER,
        description="The token of an earlier `503 busy` answer, sent back from its "
        "`Retry-After`: admitted ahead of new arrivals, once, for the buyer it names.",
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
