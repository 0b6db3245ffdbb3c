from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from tickets.services import spool_drain
from tickets.tasks import parse_soon


class Command(BaseCommand):
    help = "Store the tickets waiting in the local spool into the database, each exactly once."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            handed = spool_drain()
        except DatabaseError as exc:
            raise CommandError(f"the database is unreachable; the spool is kept: {exc}") from exc
        if handed:
            parse_soon()
        if handed is None:
            self.stdout.write("Another drainer is at work; nothing done.")
        else:
            self.stdout.write(self.style.SUCCESS(f"Drained {handed} tickets from the spool."))
