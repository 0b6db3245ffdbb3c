"""The floor's three views and their URLs."""

import hashlib
import os
import secrets
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import redis
from django.http import HttpRequest, JsonResponse
from django.urls import path

from loadtests.floor.groupcommit import GroupCommit

# The project's script, read from where the project keeps it, with the keys and arguments the
# project gives it (sales/stock/_redis.py): one sale, a hold lasting the default TTL.
CHECKOUT_LUA = Path(__file__).resolve().parents[2] / "sales" / "stock" / "checkout.lua"
SALE = 1
TAG = f"{{sale:{SALE}}}"
READY = f"{TAG}:ready"
TTL_MS = 120_000
USER_LIMIT = 10
KEY_LIFETIME_SECONDS = 2 * 24 * 3600

TABLES = (
    "CREATE TABLE IF NOT EXISTS attempt (id bigserial PRIMARY KEY, sale_id bigint,"
    " item_id bigint, user_id varchar(64) NOT NULL, requested_id varchar(32) NOT NULL,"
    " outcome varchar(24) NOT NULL, code varchar(32) NOT NULL, expires_at timestamptz,"
    " via_redis boolean NOT NULL, created_at timestamptz NOT NULL)",
    "CREATE TABLE IF NOT EXISTS ticket (id uuid PRIMARY KEY, raw bytea NOT NULL,"
    " sha256 varchar(64) NOT NULL, received_at timestamptz NOT NULL)",
)

_redis = redis.Redis.from_url(os.environ["REDIS_URL"])
_decide = _redis.register_script(CHECKOUT_LUA.read_text())
_attempts = GroupCommit(
    os.environ["DATABASE_URL"],
    "attempt",
    {
        "sale_id": "bigint",
        "item_id": "bigint",
        "user_id": "varchar",
        "requested_id": "varchar",
        "outcome": "varchar",
        "code": "varchar",
        "expires_at": "timestamptz",
        "via_redis": "boolean",
        "created_at": "timestamptz",
    },
    returning="id",
)
_tickets = GroupCommit(
    os.environ["DATABASE_URL"],
    "ticket",
    {"id": "uuid", "raw": "bytea", "sha256": "varchar", "received_at": "timestamptz"},
)


def ping(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def checkout(request: HttpRequest) -> JsonResponse:
    user, item = request.GET["user_id"], int(request.GET["id"])
    now = datetime.now(UTC)
    now_ms = int(now.timestamp() * 1000)
    keys = [READY, *(f"{TAG}:{k}" for k in ("sold", "holds", f"user:{user}", "bought", "fresh"))]
    args: list[str | int] = [item, user, secrets.token_urlsafe(16), now_ms, now_ms + TTL_MS]
    answer = _decide(keys=keys, args=[*args, USER_LIMIT, KEY_LIFETIME_SECONDS])
    outcome = answer[0].decode()
    code = answer[1].decode() if len(answer) > 1 else ""
    expires_at = datetime.fromtimestamp(int(answer[2]) / 1000, UTC) if code else None
    _attempts.write((SALE, item, user, str(item), outcome, code, expires_at, True, now))
    if expires_at is None:
        return JsonResponse({"error": {"code": outcome}}, status=409)
    body = {"code": code, "expires_at": expires_at, "item": {"id": item}, "sale_id": SALE}
    return JsonResponse(body, status=201 if outcome == "held" else 200)


def ticket(request: HttpRequest) -> JsonResponse:
    raw = request.body
    # Time-ordered, as the project's ticket ids are: new rows land together in the index.
    ticket_id = uuid.UUID(int=time.time_ns() // 1_000_000 << 80 | secrets.randbits(80))
    received_at = datetime.now(UTC)
    _tickets.write((ticket_id, raw, hashlib.sha256(raw).hexdigest(), received_at))
    body = {"id": ticket_id, "status": "received", "received_at": received_at}
    return JsonResponse(body, status=202)


urlpatterns = [path("ping", ping), path("checkout", checkout), path("ticket", ticket)]
