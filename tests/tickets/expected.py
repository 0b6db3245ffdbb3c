"""The parser's result as plain JSON data, the form the fixture files hold."""

from dataclasses import asdict

from tickets.parsing import ParsedTicket, ParseError


def as_data(result: ParsedTicket | ParseError) -> dict:
    if isinstance(result, ParseError):
        return {"rejected": {"line": result.line, "reason": result.reason}}
    return {
        "order": result.order,
        "vat": str(result.vat),
        "total": str(result.total),
        "lines": [{**asdict(line), "price": str(line.price)} for line in result.lines],
        "unknown_headers": result.unknown_headers,
        "anomalies": [asdict(anomaly) for anomaly in result.anomalies],
    }
