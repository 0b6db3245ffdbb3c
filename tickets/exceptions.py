from rest_framework import status

from core.errors import DomainError, ServiceUnavailable


class TicketTooLarge(DomainError):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    code = "payload_too_large"
    message = "The ticket is larger than the webhook accepts."


class EmptyTicket(DomainError):
    code = "invalid_request"
    message = "The request body is empty; send the ticket as the body."


class InvalidIdempotencyKey(DomainError):
    code = "invalid_request"
    message = "Idempotency-Key must be 1 to 255 printable ASCII characters."


class BadSignature(DomainError):
    status_code = status.HTTP_401_UNAUTHORIZED
    code = "bad_signature"
    message = "X-Signature or X-Signature-Timestamp is missing, or they do not match the body."


class StaleSignature(BadSignature):
    code = "stale_signature"
    message = "X-Signature-Timestamp is outside the accepted window; sign the request anew."


class TicketNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "ticket_not_found"
    message = "No ticket has this id."


class TicketNotReprocessable(DomainError):
    status_code = status.HTTP_409_CONFLICT
    code = "ticket_not_reprocessable"
    message = "Only received or rejected tickets can be parsed again."


class ProductNotFound(DomainError):
    status_code = status.HTTP_404_NOT_FOUND
    code = "product_not_found"
    message = "No product has this id."


class TicketNotStored(ServiceUnavailable):
    message = "The ticket could be stored neither in the database nor in the spool; retry."
    headers = {"Retry-After": "5"}


class IdempotencyKeyReused(DomainError):
    status_code = status.HTTP_422_UNPROCESSABLE_ENTITY
    code = "idempotency_key_reused"
    message = "This Idempotency-Key was sent with another body; nothing was stored."
