import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from sales.exceptions import SaleNotFound
from sales.selectors import INVARIANTS, sale_get, sale_report


class Command(BaseCommand):
    help = "Print a sale's figures and invariant checks as JSON; exit 1 if an invariant is broken."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("sale_id", type=int)

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            sale = sale_get(sale_id=options["sale_id"])
        except SaleNotFound as exc:
            raise CommandError(exc.message) from exc
        report = sale_report(sale=sale)
        self.stdout.write(json.dumps(report, default=str, indent=2))
        if not all(report[name] for name in INVARIANTS):
            raise SystemExit(1)
