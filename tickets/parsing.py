"""Till tickets, from raw bytes to a parsed ticket or a precise rejection.

Pure code: no ORM, no I/O, so it can be fuzzed in isolation. `parse_ticket` never raises; every
input yields either a `ParsedTicket` or a `ParseError` naming the (1-based) line at fault.

Decisions where the format description is silent:
- leading blank lines are skipped, and any number of blank lines may separate header and table;
  a table header row right after the header block, with no blank line, is accepted and flagged;
- money is a plain decimal number with at most 2 decimal places (`2`, `2.5`, `14.90`); a decimal
  comma (`"2,50"` quoted in the table, or `2,50` in the header) is accepted and flagged; signs
  other than a leading `-`, thousands separators, currency symbols and exponents are rejected;
- a line price may be zero (a free item) but not negative, like `VAT` and `Total`;
- a header key given twice is ambiguous and rejects the ticket;
- extra table columns are ignored; the same product twice in one ticket is accepted and flagged;
- NUL characters reject the ticket (no database text column can hold them).
"""

import csv
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal

REQUIRED_HEADERS = {"order": "Order", "vat": "VAT", "total": "Total"}
REQUIRED_COLUMNS = ("product", "product_id", "price")
MAX_ORDER_LENGTH = 100
MAX_PRODUCT_ID_LENGTH = 100
MAX_INTEGER_DIGITS = 10  # the stored amounts have 12 digits, 2 of them after the point

_MONEY = re.compile(r"(-?)([0-9]+)(?:([.,])([0-9]+))?")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class Anomaly:
    code: str
    message: str
    line: int


@dataclass(frozen=True)
class Line:
    line: int
    product_id: str
    name: str
    price: Decimal


@dataclass(frozen=True)
class ParsedTicket:
    order: str
    vat: Decimal
    total: Decimal
    lines: tuple[Line, ...]
    unknown_headers: dict[str, str] = field(default_factory=dict)
    anomalies: tuple[Anomaly, ...] = ()

    def fingerprint(self) -> str:
        """Identical for two tickets with the same order and content, however they are laid out."""
        content = {
            "order": self.order,
            "vat": _canonical(self.vat),
            "total": _canonical(self.total),
            "lines": [[ln.product_id, ln.name, _canonical(ln.price)] for ln in self.lines],
            "headers": sorted(
                (key.casefold(), value) for key, value in self.unknown_headers.items()
            ),
        }
        return hashlib.sha256(json.dumps(content, ensure_ascii=False).encode()).hexdigest()


@dataclass(frozen=True)
class ParseError:
    line: int
    reason: str


class _Reject(Exception):
    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


def _canonical(amount: Decimal) -> str:
    return format(amount.quantize(Decimal("0.01")), "f")


def parse_ticket(raw: bytes) -> ParsedTicket | ParseError:
    try:
        return _parse(raw)
    except _Reject as rejection:
        return ParseError(line=rejection.line, reason=rejection.reason)


def _decode(raw: bytes) -> str:
    if raw.startswith(_BOM):
        raw = raw[len(_BOM) :]
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise _Reject(
            line, f"byte 0x{raw[exc.start]:02x} at column {column} is not valid UTF-8"
        ) from None
    if "\x00" in text:
        raise _Reject(text.count("\n", 0, text.index("\x00")) + 1, "contains a NUL character")
    return text


def _money(text: str, *, what: str, line: int, anomalies: list[Anomaly]) -> Decimal:
    if not text:
        raise _Reject(line, f"{what} is empty")
    match = _MONEY.fullmatch(text)
    if not match:
        raise _Reject(line, f"{what} {text!r} is not a number")
    sign, integer, separator, fraction = match.groups()
    if separator == ",":
        anomalies.append(Anomaly("decimal_comma", f"{what} {text!r} uses a decimal comma", line))
    fraction = (fraction or "").rstrip("0")
    if len(fraction) > 2:
        raise _Reject(line, f"{what} {text!r} has more than 2 decimal places")
    if len(integer.lstrip("0")) > MAX_INTEGER_DIGITS:
        raise _Reject(line, f"{what} {text!r} is too large")
    amount = Decimal(f"{sign}{integer}.{fraction or '0'}").quantize(Decimal("0.01"))
    if amount < 0:
        raise _Reject(line, f"{what} {text!r} is negative")
    return amount


def _parse(raw: bytes) -> ParsedTicket:
    lines = [line.removesuffix("\r") for line in _decode(raw).split("\n")]
    anomalies: list[Anomaly] = []
    number = _next_filled(lines, 0)
    if number == len(lines):
        raise _Reject(1, "the ticket is empty")
    headers, unknown, number = _headers(lines, number, anomalies)
    header_end = min(number + 1, len(lines))  # the line after the headers, if there is one
    for name, label in REQUIRED_HEADERS.items():
        if name not in headers:
            raise _Reject(header_end, f"header {label!r} is missing")
    order = _order(*headers["order"])
    vat = _money(headers["vat"][0], what="VAT", line=headers["vat"][1], anomalies=anomalies)
    total = _money(headers["total"][0], what="Total", line=headers["total"][1], anomalies=anomalies)
    number = _next_filled(lines, number)
    if number == len(lines):
        raise _Reject(header_end, "no product table after the header")
    items = _table(lines, number, anomalies)
    anomalies += _disagreements(items, total=total, total_line=headers["total"][1])
    return ParsedTicket(
        order=order,
        vat=vat,
        total=total,
        lines=tuple(items),
        unknown_headers=unknown,
        anomalies=tuple(anomalies),
    )


def _next_filled(lines: list[str], number: int) -> int:
    """The index of the first line from `number` on that is not blank (len(lines) if none)."""
    while number < len(lines) and not lines[number].strip():
        number += 1
    return number


def _headers(
    lines: list[str], number: int, anomalies: list[Anomaly]
) -> tuple[dict[str, tuple[str, int]], dict[str, str], int]:
    """The header block starting at `lines[number]`: each key (casefolded) with its value and
    line, the keys beyond the required ones as written, and the index where the block ends."""
    headers: dict[str, tuple[str, int]] = {}
    unknown: dict[str, str] = {}
    while number < len(lines) and lines[number].strip():
        text, line = lines[number], number + 1
        key, colon, value = text.partition(":")
        if not colon:
            if _looks_like_table_header(text):
                anomalies.append(
                    Anomaly("missing_blank_line", "no blank line before the product table", line)
                )
                break
            raise _Reject(line, f"expected a 'Key: value' header line, got {text.strip()!r}")
        name = key.strip().casefold()
        if not name:
            raise _Reject(line, "header line without a key")
        if name in headers:
            raise _Reject(line, f"header {key.strip()!r} repeats line {headers[name][1]}")
        headers[name] = (value.strip(), line)
        if name not in REQUIRED_HEADERS:
            unknown[key.strip()] = value.strip()
        number += 1
    return headers, unknown, number


def _order(order: str, line: int) -> str:
    if not order:
        raise _Reject(line, "header 'Order' is empty")
    if len(order) > MAX_ORDER_LENGTH:
        raise _Reject(line, f"header 'Order' is longer than {MAX_ORDER_LENGTH} characters")
    return order


def _disagreements(items: list[Line], *, total: Decimal, total_line: int) -> list[Anomaly]:
    """What only the whole ticket shows: a total that is not the sum of its lines, a product
    listed twice."""
    found = []
    line_sum = sum((item.price for item in items), Decimal("0.00"))
    if line_sum != total:
        found.append(
            Anomaly(
                "total_mismatch",
                f"Total {total} differs from the sum of the line prices {line_sum}",
                total_line,
            )
        )
    seen: set[str] = set()
    for item in items:
        if item.product_id in seen:
            found.append(
                Anomaly("repeated_product", f"product {item.product_id!r} appears again", item.line)
            )
        seen.add(item.product_id)
    return found


def _looks_like_table_header(text: str) -> bool:
    names = {cell.strip().casefold() for cell in text.split(",")}
    return set(REQUIRED_COLUMNS) <= names


def _table(lines: list[str], start: int, anomalies: list[Anomaly]) -> list[Line]:
    """Rows of the CSV table whose header row is `lines[start]`; line numbers are the ticket's."""
    reader = csv.reader(iter(lines[start:]), strict=True)
    table_line = line = start + 1
    try:
        columns = [cell.strip().casefold() for cell in next(reader)]
        for name in REQUIRED_COLUMNS:
            if name not in columns:
                raise _Reject(table_line, f"the table header row has no {name!r} column")
        repeated = sorted({name for name in columns if name and columns.count(name) > 1})
        if repeated:
            raise _Reject(table_line, f"the table header row repeats {repeated[0]!r}")
        position = {name: columns.index(name) for name in REQUIRED_COLUMNS}
        items: list[Line] = []
        while True:
            line = start + reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            cells = [cell.strip() for cell in row]
            if not any(cells):
                continue
            if len(cells) != len(columns):
                raise _Reject(
                    line, f"{len(cells)} fields where the table header row has {len(columns)}"
                )
            product_id = cells[position["product_id"]]
            if not product_id:
                raise _Reject(line, "product_id is empty")
            if len(product_id) > MAX_PRODUCT_ID_LENGTH:
                raise _Reject(line, f"product_id is longer than {MAX_PRODUCT_ID_LENGTH} characters")
            price = _money(cells[position["price"]], what="price", line=line, anomalies=anomalies)
            items.append(Line(line, product_id, cells[position["product"]], price))
    except csv.Error as exc:
        raise _Reject(line, f"unreadable table row: {exc}") from None
    if not items:
        raise _Reject(table_line, "the product table has no rows")
    return items
