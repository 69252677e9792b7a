"""`manage.py createtoken USERNAME [--expires-in-days N]`: print a new API token once. knox keeps
only its hash, so a lost token cannot be shown again: create another one."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from knox.models import AuthToken


class Command(BaseCommand):
    help = "Create an API token for a user and print it (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            default=None,
            help="Lifetime in days (default: no expiry).",
        )

    def handle(self, *args: Any, username: str, expires_in_days: int | None, **opts: Any) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        if expires_in_days is not None and expires_in_days < 1:
            raise CommandError("--expires-in-days must be at least 1")
        expiry = timedelta(days=expires_in_days) if expires_in_days else None
        _instance, token = AuthToken.objects.create(user=user, expiry=expiry)
        # Only the token on stdout, so that `TOKEN=$(manage.py createtoken alice)` works.
        self.stdout.write(token)
