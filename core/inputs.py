"""The one reader of an API request's fields, shared by the views and the rate limiter."""

from typing import Any

from rest_framework import exceptions
from rest_framework.request import Request


def request_fields(request: Request, aliases: dict[str, str] | None = None) -> dict[str, Any]:
    """The query parameters, overridden by the same fields in a JSON object or form body.
    `aliases` maps another accepted name to a field's name. Raises DRF's ParseError or
    ValidationError for a body that does not parse or is not an object."""
    if (unreadable := getattr(request, "unreadable_body", None)) is not None:
        raise unreadable
    fields: dict[str, Any] = request.query_params.dict()
    body = request.data
    if hasattr(body, "dict"):
        body = body.dict()
    if not isinstance(body, dict):
        raise exceptions.ValidationError("The body must be a JSON object or a form.")
    fields.update(body)
    for alias, name in (aliases or {}).items():
        if name not in fields and alias in fields:
            fields[name] = fields[alias]
    return fields


def request_fields_as_sent(request: Request) -> dict[str, Any]:
    """The fields as far as they can be read: the query parameters alone when the body is
    unreadable (the view reports that)."""
    try:
        return request_fields(request)
    except exceptions.APIException as exc:
        # DRF keeps no parse error: a second read of the body would find it empty. Keep the
        # error, so that the view's own read reports it.
        request.unreadable_body = exc  # type: ignore[attr-defined]
        return request.query_params.dict()
