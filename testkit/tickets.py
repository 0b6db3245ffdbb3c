"""Till tickets in the webhook's format: the sample from the spec, one ticket built to order, and
the one generator every test and load run draws from (distinct orders over a shop's catalogue,
a share of them malformed by design).

Pure code: it needs neither Django nor a server.
"""

import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal

SAMPLE = (
    b"Order: 123456\nVAT: 3.10\nTotal: 16.90\n\n"
    b"product,product_id,price\nFormule(s) midi,aZde,14.90\nCaf\xc3\xa9,IZ8z,2\n"
)


def ticket_bytes(
    order: str,
    lines: Sequence[tuple[str, str, str]],
    *,
    total: str | None = None,
    vat: str = "0",
    headers: Sequence[str] = (),
) -> bytes:
    """A ticket; `lines` are (name, product_id, price), `total` defaults to their sum and
    `headers` are extra "Key: value" lines."""
    total = total or str(sum(Decimal(price) for _, _, price in lines))
    head = "".join(f"{header}\n" for header in (f"Order: {order}", f"VAT: {vat}", *headers))
    rows = "".join(f'"{name}",{product_id},{price}\n' for name, product_id, price in lines)
    return f"{head}Total: {total}\n\nproduct,product_id,price\n{rows}".encode()


_DISHES = [
    "Café", "Café allongé", "Cappuccino", "Thé vert", "Chocolat chaud", "Jus d'orange pressé",
    "Eau minérale 50cl", "Limonade artisanale", "Croissant", "Pain au chocolat",
    "Baguette tradition", "Pain aux céréales", "Quiche lorraine", "Salade César",
    "Sandwich jambon-beurre", "Panini tomate, mozzarella", "Croque-monsieur", "Soupe du jour",
    "Formule(s) midi", "Plat du jour", "Tarte aux pommes", "Éclair au café",
    "Cookie pépites de chocolat", "Muffin myrtille", "Yaourt nature", "Fromage blanc, coulis",
]  # fmt: skip
_SIZES = ["", " (petit)", " (grand)", " x2", " à emporter"]
_ID_CHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
MALFORMATIONS = (
    "missing_total",
    "unreadable_price",
    "missing_product_id",
    "no_products",
    "not_utf8",
    "negative_vat",
)


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    price: Decimal


@dataclass(frozen=True)
class GeneratedTicket:
    body: bytes
    malformed: str | None  # which malformation, None for a well-formed ticket


class TicketFactory:
    """Tickets of one shop; `malformed_rate` of them are rejected by the parser by design.

    Order numbers never repeat within a factory, so no two of its tickets are duplicates.
    Prices drift now and then, so the catalogue records price changes.
    """

    def __init__(self, seed: int | None = None, malformed_rate: float = 0.05) -> None:
        self.rng = random.Random(seed)
        self.malformed_rate = malformed_rate
        self.products = self._catalogue()
        self.till = self.rng.randint(1, 40)
        self.orders = itertools.count(self.rng.randrange(10**8, 9 * 10**8, 10**4))

    def _catalogue(self) -> list[Product]:
        ids: set[str] = set()
        products = []
        for dish, size in itertools.product(_DISHES, _SIZES):
            product_id = "".join(self.rng.choices(_ID_CHARS, k=4))
            while product_id in ids:
                product_id = "".join(self.rng.choices(_ID_CHARS, k=4))
            ids.add(product_id)
            cents = self.rng.randint(80, 2500)
            products.append(Product(product_id, dish + size, Decimal(cents) / 100))
        return products

    def bodies(self, count: int) -> list[bytes]:
        return [self.make().body for _ in range(count)]

    def make(self) -> GeneratedTicket:
        rng = self.rng
        chosen = rng.sample(self.products, k=rng.randint(1, 8))
        prices = [
            max(Decimal("0.10"), p.price + Decimal(rng.randint(-20, 40)) / 100)
            if rng.random() < 0.1
            else p.price
            for p in chosen
        ]
        total = sum(prices, Decimal("0"))
        if rng.random() < 0.02:  # a till that rounds badly: kept, flagged as an anomaly
            total += Decimal("0.01")
        vat = str((total / 6).quantize(Decimal("0.01")))  # 20 % VAT included in the total
        lines = [
            (p.name, p.product_id, _price_text(price, rng))
            for p, price in zip(chosen, prices, strict=True)
        ]
        malformed = rng.choice(MALFORMATIONS) if rng.random() < self.malformed_rate else None
        if malformed == "unreadable_price":
            lines[0] = (*lines[0][:2], rng.choice(["1O.50", "12.5.0", "€3", "n/a"]))
        elif malformed == "missing_product_id":
            lines[0] = (lines[0][0], "", lines[0][2])
        elif malformed == "negative_vat":
            vat = f"-{vat}"
        body = ticket_bytes(
            str(next(self.orders)),
            [] if malformed == "no_products" else lines,
            total=str(total),
            vat=vat,
            headers=[f"Till: {self.till}"] if rng.random() < 0.3 else [],
        )
        if malformed == "missing_total":
            body = b"\n".join(row for row in body.split(b"\n") if not row.startswith(b"Total:"))
        elif malformed == "not_utf8":
            # A till with a Latin-1 code page: "é" as one byte, which is not UTF-8.
            body = body.decode().encode("latin-1", "replace") + "Merci, à bientôt\n".encode(
                "latin-1"
            )
        if rng.random() < 0.1:
            body = body.replace(b"\n", b"\r\n")
        return GeneratedTicket(body, malformed)


def _price_text(price: Decimal, rng: random.Random) -> str:
    """Tills write whole prices without decimals ("2") and others with two ("14.90")."""
    if price == price.to_integral_value() and rng.random() < 0.5:
        return str(int(price))
    return f"{price:.2f}"
