"""OpenAPI schema: the error responses each operation documents, its tags, and adjustments."""

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse

from core.errors import DomainError, ErrorSerializer, PayloadTooLarge, error_body

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
    requirement of public ones, and mark each body required (drf-spectacular leaves raw
    bodies, such as the ticket's text, optional)."""
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
            if "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return result
