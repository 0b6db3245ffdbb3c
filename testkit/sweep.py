"""Malformed requests over every path and every method, sent byte for byte over a socket, and
the judge of their answers: no 5xx except a 503 with Retry-After while a backing service is
down, and every error in the one JSON shape. The few requests that the HTTP server itself
refuses before the application sees them are listed apart: their answer is the server's, not
the application's. Used by the fault tests and by `loadtests/sweep.py`."""

import collections
import contextlib
import json
import socket
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from urllib.parse import urlsplit

PATHS = [
    "/checkout", "/purchase", "/sales/current", "/sales/1", "/sales/1/items", "/ticket",
    "/tickets", "/tickets/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b",
    "/tickets/0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b/reprocess", "/products", "/products/abc",
    "/health", "/ping", "/metrics", "/admin/", "/admin/login/",
    "/static/admin/css/base.css", "/api/schema/", "/api/docs/", "/no/such/path",
]  # fmt: skip
METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "FOO"]
TICKET = b"Order: 1\nVAT: 0.20\nTotal: 2.00\n\nproduct_id,name,price\n1,Tea,2.00\n"
JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Probe:
    """One malformation. `query` and `path_suffix` are raw (already percent-encoded) text;
    `headers` are raw bytes, sent as they are; `body` None sends no body at all."""

    name: str
    query: str = ""
    path_suffix: str = ""
    headers: tuple[bytes, ...] = ()
    body: bytes | None = None
    content_type: str | None = None
    chunked: bool = False
    # The HTTP server refuses these itself, before the application is called.
    server_level: bool = False


def _chunked(body: bytes, size: int = 7) -> bytes:
    parts = [body[i : i + size] for i in range(0, len(body), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


PROBES = [
    Probe("plain"),
    Probe("valid-looking fields", query="user_id=u1&id=1&code=abc&search=tea&status=received"),
    Probe("deep JSON array", body=b"[" * 20_000 + b"]" * 20_000, content_type=JSON),
    Probe("deep JSON object", body=b'{"a":' * 5_000 + b"1" + b"}" * 5_000, content_type=JSON),
    Probe("form field flood", body=b"&".join([b"f=1"] * 10_000), content_type=FORM),
    Probe("query field flood", query="&".join(["f=1"] * 2_000)),
    Probe("NUL in path", path_suffix="%00x"),
    Probe("lone surrogate in path", path_suffix="%ED%A0%80"),
    Probe("NUL in query", query="user_id=%00&id=1&code=%00&search=a%00b&status=%00"),
    Probe(
        "lone surrogate in query", query="user_id=%ED%A0%80&id=1&code=%ED%A0%80&search=%ED%A0%80"
    ),
    Probe("non-ASCII digits as id", query="user_id=u1&id=%EF%BC%91%EF%BC%92"),
    Probe(
        "NUL and lone surrogate in JSON",
        body=b'{"user_id":"a\\u0000","id":"\\ud800","code":"\\ud800x"}',
        content_type=JSON,
    ),
    Probe("invalid UTF-8 JSON", body=b'{"user_id":"\xff\xfe"}', content_type=JSON),
    Probe("broken JSON", body=b'{"user_id":', content_type=JSON),
    Probe("multipart without boundary", body=b"--x\r\n", content_type="multipart/form-data"),
    Probe(
        "multipart garbage",
        body=b"--x\r\nnonsense\r\n--x--\r\n",
        content_type="multipart/form-data; boundary=x",
    ),
    Probe(
        "lone surrogate in header parameters",
        headers=(
            b"Idempotency-Key: \xed\xa0\x80",
            b"X-Signature-Timestamp: \xed\xa0\x80",
            b"X-Signature: \xed\xa0\x80",
        ),
        body=TICKET,
        content_type="text/plain",
    ),
    Probe(
        "empty header parameters",
        headers=(b"Idempotency-Key: ", b"X-Signature-Timestamp: ", b"X-Signature: "),
        body=TICKET,
        content_type="text/plain",
    ),
    Probe("unknown host", headers=(b"Host: evil.example",)),
    Probe("query string of 10 KB", query="search=" + "a" * 10_000),
    Probe("chunked ticket", body=TICKET, content_type="text/plain", chunked=True),
    Probe("chunked form", body=b"user_id=u1&id=1&code=x", content_type=FORM, chunked=True),
    Probe("Content-Length: abc", headers=(b"Content-Length: abc",), server_level=True),
    Probe("Content-Length: -1", headers=(b"Content-Length: -1",), server_level=True),
    Probe("control character in a header", headers=(b"X-Test: a\x01b",), server_level=True),
    Probe("NUL in a header", headers=(b"Idempotency-Key: a\x00b",), server_level=True),
    Probe("query string of 100 KB", query="search=" + "a" * 100_000, server_level=True),
    Probe("header of 100 KB", headers=(b"X-Big: " + b"a" * 100_000,), server_level=True),
    Probe(
        "malformed chunk",
        body=b"zz\r\nabc\r\n0\r\n\r\n",
        content_type="text/plain",
        chunked=True,
        server_level=True,
    ),
]


@dataclass
class Answer:
    probe: str
    method: str
    path: str
    status: int
    content_type: str
    retry_after: str
    shaped: bool
    server_level: bool


def raw_request(host: str, port: int, method: str, target: str, probe: Probe) -> bytes:
    lines = [f"{method} {target} HTTP/1.1".encode()]
    if not any(h.lower().startswith(b"host:") for h in probe.headers):
        lines.append(f"Host: {host}".encode())
    lines.append(b"Connection: close")
    lines.extend(probe.headers)
    body = b""
    if probe.body is not None:
        if probe.content_type:
            lines.append(f"Content-Type: {probe.content_type}".encode())
        if probe.chunked:
            lines.append(b"Transfer-Encoding: chunked")
            body = probe.body if probe.server_level else _chunked(probe.body)
        else:
            lines.append(b"Content-Length: %d" % len(probe.body))
            body = probe.body
    received = bytearray()
    with socket.create_connection((host, port), timeout=30) as sock:
        # A server may answer and close before it has read a large body: what it sent counts.
        with contextlib.suppress(ConnectionResetError, BrokenPipeError):
            sock.sendall(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        with contextlib.suppress(ConnectionResetError):
            while data := sock.recv(65536):
                received += data
    return bytes(received)


def parse(raw: bytes, method: str) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and body of a response read to the connection's end (0 if none)."""
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    if not lines[0].startswith("HTTP/"):
        return 0, {}, b""
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "") and method != "HEAD":
        decoded, rest = bytearray(), body
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0] or b"0", 16)
            if size == 0:
                break
            decoded += rest[:size]
            rest = rest[size + 2 :]
        body = bytes(decoded)
    return status, headers, body


def in_shape(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and set(error) == {"code", "message"} and bool(error["message"])


def sweep(
    url: str,
    probes: list[Probe] = PROBES,
    methods: list[str] = METHODS,
    concurrency: int = 8,
) -> list[Answer]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80

    def send(case: tuple[Probe, str, str]) -> Answer:
        probe, path, method = case
        target = path + probe.path_suffix + (f"?{probe.query}" if probe.query else "")
        status, headers, body = parse(raw_request(host, port, method, target, probe), method)
        content_type = headers.get("content-type", "")
        return Answer(
            probe=probe.name,
            method=method,
            path=path,
            status=status,
            content_type=content_type,
            retry_after=headers.get("retry-after", ""),
            # A HEAD answer has no body: its content type tells.
            shaped=content_type == JSON if method == "HEAD" else in_shape(body),
            server_level=probe.server_level,
        )

    cases = [(probe, path, method) for probe in probes for path in PATHS for method in methods]
    pool = ThreadPoolExecutor(concurrency)
    try:
        return list(pool.map(send, cases))
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, do not send the rest first


# Statuses only the HTTP server answers (its request line and header limits), never Django.
SERVER_STATUSES = (414, 431)


def violations(answers: list[Answer], *, backend_down: bool) -> list[Answer]:
    """Answers that break the promise: a 5xx (a 503 with Retry-After is allowed while a
    backing service is down; the readiness probe's 503 has a body of its own), or an error
    from the application outside the one shape."""
    bad = []
    for a in answers:
        if a.status == 0:
            if not a.server_level:  # the server may close a malformed request unanswered
                bad.append(a)
        elif a.status >= 500:
            if not (backend_down and a.status == 503 and a.retry_after):
                bad.append(a)
        elif a.status >= 400 and not (a.shaped or a.server_level or a.status in SERVER_STATUSES):
            bad.append(a)
    return bad


def summary(answers: list[Answer]) -> dict[str, dict[str, int]]:
    """Per probe, how many answers had each status (with `json` or `other` for the shape)."""
    table: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
    for a in answers:
        shape = "" if a.status < 400 else (" json" if a.shaped else " other")
        table[a.probe][f"{a.status}{shape}"] += 1
    return {probe: dict(sorted(counts.items())) for probe, counts in table.items()}


# With PostgreSQL down, each request that needs it holds a server thread for the connection
# pool's timeout (10 s) before its 503: the sweep sends fewer kinds of request then.
DOWN_PROBES = [p for p in PROBES if p.name in ("plain", "valid-looking fields", "chunked ticket")]
