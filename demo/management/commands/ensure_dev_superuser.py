"""Create a development superuser once and print its credentials (DEBUG only)."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "In DEBUG, create the superuser 'admin' with a random password and print it once."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--username", default="admin")

    def handle(self, *args: Any, username: str, **options: Any) -> None:
        if not settings.DEBUG:
            raise CommandError("Refusing to create a development superuser with DEBUG off.")
        users = get_user_model()
        if users.objects.filter(username=username).exists():
            self.stdout.write(
                f"Development superuser '{username}' exists (password shown when it was created)."
            )
            return
        password = secrets.token_urlsafe(12)
        users.objects.create_superuser(username=username, email="", password=password)
        self.stdout.write(
            self.style.SUCCESS(
                f"Created development superuser: username '{username}', password '{password}'"
            )
        )
