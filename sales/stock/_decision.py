"""What the stock decides: a checkout's proposal, a purchase's result."""

import secrets
from dataclasses import dataclass
from datetime import datetime

from sales.models import Purchase


@dataclass(frozen=True)
class Decision:
    outcome: str
    code: str = ""
    expires_at: datetime | None = None


def new_code() -> str:
    return secrets.token_urlsafe(16)  # 128 random bits, 22 URL-safe characters


PURCHASED, REPEATED = "purchased", "repeated"  # else a refusal's code


@dataclass(frozen=True)
class Purchased:
    """A purchase's outcome (bought now, bought by an earlier request, or the code of the
    refusal) and, when bought, the purchase."""

    outcome: str
    purchase: Purchase | None = None
