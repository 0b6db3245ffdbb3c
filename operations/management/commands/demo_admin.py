from typing import Any

from axes.models import AccessAttempt
from axes.utils import reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.urls import reverse


class Command(BaseCommand):
    help = (
        "Create the demo operator account (embedded default only), lift any login lockout on "
        "this machine's admin, and print its login."
    )

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
        # A newcomer who mistyped the password a few times is locked out (by username and by
        # address); on the embedded default, `make run` again lets them in.
        if AccessAttempt.objects.exists():
            unlocked = reset()
            self.stdout.write(f"Lifted the login lockout ({unlocked} failed-login records).")
        self.stdout.write(
            self.style.SUCCESS(f"Demo admin: {settings.APP_URL}%s  login admin / admin")
            % reverse("admin:index")
        )
