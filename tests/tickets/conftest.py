from decimal import Decimal

import pytest

SAMPLE = (
    b"Order: 123456\nVAT: 3.10\nTotal: 16.90\n\n"
    b"product,product_id,price\nFormule(s) midi,aZde,14.90\nCaf\xc3\xa9,IZ8z,2\n"
)


def ticket_bytes(
    order: str, lines: list[tuple[str, str, str]], *, total: str | None = None
) -> bytes:
    """A well-formed ticket; `lines` are (name, product_id, price)."""
    total = total or str(sum(Decimal(price) for _, _, price in lines))
    rows = "".join(f'"{name}",{product_id},{price}\n' for name, product_id, price in lines)
    return f"Order: {order}\nVAT: 0\nTotal: {total}\n\nproduct,product_id,price\n{rows}".encode()


@pytest.fixture(autouse=True)
def spool_dir(settings, tmp_path):
    settings.TICKET_SPOOL_DIR = tmp_path / "spool"
    return settings.TICKET_SPOOL_DIR
