import json
from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from sales.selectors import sale_figures
from sales.services import sale_open, sale_open_hourly


class Command(BaseCommand):
    help = "Open a sale now (or this hour's sale with --hourly) and print its figures as JSON."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--items", type=int, help="number of items (APP_ITEM_NUMBER)")
        parser.add_argument("--user-limit", type=int, help="items per buyer (APP_USER_LIMIT)")
        parser.add_argument("--ttl", type=int, help="hold seconds (CHECKOUT_TTL_SECONDS)")
        parser.add_argument("--starts-in", type=int, default=0, help="seconds until it opens")
        parser.add_argument(
            "--hourly", action="store_true", help="open this hour's sale, unless it is open"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        for name in ("items", "user_limit", "ttl"):
            if options[name] is not None and options[name] < 1:
                self.stderr.write(f"--{name.replace('_', '-')} must be a positive integer")
                raise SystemExit(2)
        if options["hourly"]:
            sale = sale_open_hourly()
        else:
            sale = sale_open(
                starts_at=timezone.now() + timedelta(seconds=options["starts_in"]),
                item_count=options["items"],
                user_limit=options["user_limit"],
                ttl_seconds=options["ttl"],
            )
        self.stdout.write(json.dumps(sale_figures(sale=sale), default=str))
