"""Chunked ticket bodies (no Content-Length) through the real servers: Django alone never reads
them, so this goes through gunicorn and granian as they run in production."""

import http.client
import json
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from testkit.stack import Stack
from testkit.tickets import SAMPLE

LIMIT = 4096


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with Stack("tickets_chunked", extra_env={"TICKET_MAX_BYTES": str(LIMIT)}) as stack:
        yield stack


@pytest.fixture(scope="module", params=["gunicorn", "granian"])
def server(request, stack: Stack) -> str:
    return stack.start_web(workers=1, threads=2, server=request.param)


def post_chunked(url: str, body: bytes, piece: int = 100) -> tuple[int, dict]:
    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.netloc, timeout=30)
    pieces = (body[i : i + piece] for i in range(0, len(body), piece))
    conn.request(
        "POST", "/ticket", body=pieces, headers={"Content-Type": "text/plain"}, encode_chunked=True
    )
    response = conn.getresponse()
    answer = json.loads(response.read())
    conn.close()
    return response.status, answer


def stored(stack: Stack, ticket_id: str) -> bytes | None:
    rows = stack.query("SELECT raw FROM tickets_ticket WHERE id = %s", [ticket_id])
    return bytes(rows[0][0]) if rows else None


def ticket_count(stack: Stack) -> int:
    return stack.query("SELECT count(*) FROM tickets_ticket")[0][0]


def test_a_chunked_ticket_is_stored_byte_for_byte(stack, server):
    body = SAMPLE + b"\r\n" + bytes(range(256)) + b"\n" * (LIMIT - len(SAMPLE) - 258)
    assert len(body) == LIMIT
    status, answer = post_chunked(server, body, piece=97)
    assert status == 202
    assert stored(stack, answer["id"]) == body


def test_a_chunked_ticket_over_the_limit_is_a_413_and_is_not_stored(stack, server):
    before = ticket_count(stack)
    status, answer = post_chunked(server, b"x" * (LIMIT + 1))
    assert status == 413
    assert answer["error"]["code"] == "payload_too_large"
    assert ticket_count(stack) == before


def test_a_malformed_chunked_body_is_a_400_and_is_not_stored(stack, server):
    before = ticket_count(stack)
    parts = urlsplit(server)
    with socket.create_connection((str(parts.hostname), parts.port or 80), timeout=30) as sock:
        sock.sendall(
            b"POST /ticket HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
            b"Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"zz\r\nnot a chunk size\r\n0\r\n\r\n"
        )
        answer = b""
        while data := sock.recv(65536):
            answer += data
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.split()[1] == b"400"
    assert json.loads(body)["error"]["code"] == "invalid_request"
    assert ticket_count(stack) == before
