from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create the demo operator account (embedded default only) and print its login."

    def handle(self, *args: Any, **options: Any) -> None:
        if not settings.EMBEDDED:
            self.stdout.write("Not the embedded default: create operators with createsuperuser.")
            return
        user, created = get_user_model().objects.get_or_create(
            username="admin", defaults={"is_staff": True, "is_superuser": True}
        )
        if created:
            user.set_password("admin")
            user.save()
        self.stdout.write(
            self.style.SUCCESS(f"Demo admin: {settings.APP_URL}/admin/  login admin / admin")
        )
