"""Webhook signatures, when `TICKET_WEBHOOK_SECRET` is set.

The sender signs the moment it sends and the raw body:
`X-Signature-Timestamp: <unix seconds>` and
`X-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>." followed by the body>`.
A signature older or newer than `TICKET_SIGNATURE_TOLERANCE_SECONDS` is refused, so a captured
request cannot be replayed later; a replay inside the window is stored as received and, having
the same content, marked `duplicate` rather than counted again.
"""

import hashlib
import hmac
import time

from tickets.exceptions import BadSignature, StaleSignature

SCHEME = "sha256="


def _signed_message(timestamp: str, body: bytes) -> bytes:
    return timestamp.encode() + b"." + body


def signature_for(*, secret: str, body: bytes, timestamp: str) -> str:
    digest = hmac.new(secret.encode(), _signed_message(timestamp, body), hashlib.sha256)
    return f"{SCHEME}{digest.hexdigest()}"


def signature_verify(
    *,
    secret: str,
    body: bytes,
    header: str | None,
    timestamp: str | None,
    tolerance: int,
    now: float | None = None,
) -> None:
    """Raises BadSignature unless `header` signs `timestamp` and `body` (compared in constant
    time), and StaleSignature when the timestamp is outside the tolerance window."""
    if (
        header is None
        or timestamp is None
        or not (timestamp.isascii() and timestamp.isdigit())
        or len(timestamp) > 12
    ):
        raise BadSignature()
    expected = signature_for(secret=secret, body=body, timestamp=timestamp).encode()
    if not hmac.compare_digest(expected, header.strip().encode()):
        raise BadSignature()
    if abs((now or time.time()) - int(timestamp)) > tolerance:
        raise StaleSignature()
