"""What either path decides for a checkout."""

import secrets
from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Decision:
    outcome: str
    code: str = ""
    expires_at: datetime | None = None


def new_code() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits, 22 URL-safe characters
