"""OpenAPI schema adjustments."""

from typing import Any


def require_request_bodies(result: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """Every body this API documents is needed: mark it required (drf-spectacular leaves raw,
    non-serializer bodies such as the ticket's text optional)."""
    for path in result.get("paths", {}).values():
        for operation in path.values():
            if isinstance(operation, dict) and "requestBody" in operation:
                operation["requestBody"]["required"] = True
    return result
