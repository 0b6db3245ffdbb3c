"""Webhook signatures: `X-Signature: sha256=<hex HMAC-SHA256 of the raw body>`.

The signed message is built in one place (`_signed_message`), so that adding a timestamp to it
(and a freshness window) touches this module only.
"""

import hashlib
import hmac

from tickets.exceptions import BadSignature

SCHEME = "sha256="


def _signed_message(body: bytes) -> bytes:
    return body


def signature_for(*, secret: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), _signed_message(body), hashlib.sha256).hexdigest()
    return f"{SCHEME}{digest}"


def signature_verify(*, secret: str, body: bytes, header: str | None) -> None:
    """Raises BadSignature unless `header` signs `body`; compares in constant time."""
    expected = signature_for(secret=secret, body=body).encode()
    if header is None or not hmac.compare_digest(expected, header.strip().encode()):
        raise BadSignature()
