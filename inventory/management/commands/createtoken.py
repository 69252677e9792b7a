"""`manage.py createtoken USERNAME [--expires-in-days N] [--note TEXT]`: print a new API token
once. knox keeps only its hash, so a lost token cannot be shown again: create another one (or
use the token page, or `POST /api/v1/tokens/` with a password)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.services import tokens


class Command(BaseCommand):
    help = "Create an API token for a user and print it (shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username")
        parser.add_argument(
            "--expires-in-days",
            type=int,
            default=tokens.DEFAULT_DAYS,
            help=f"Lifetime in days, 1 to {tokens.MAX_DAYS} (default {tokens.DEFAULT_DAYS}).",
        )
        parser.add_argument("--note", default="", help="What the token is for (token page).")

    def handle(
        self, *args: Any, username: str, expires_in_days: int, note: str, **opts: Any
    ) -> None:
        user = get_user_model().objects.filter(username=username).first()
        if user is None:
            raise CommandError(f"no user named {username!r}")
        if not user.is_active:
            raise CommandError(f"user {username!r} is inactive")
        try:
            created = tokens.create(user=user, note=note, expires_in_days=expires_in_days)
        except ValidationError as exc:
            problems = [
                f"--{field.replace('_', '-')}: {' '.join(messages)}"
                for field, messages in exc.message_dict.items()
            ]
            raise CommandError("; ".join(problems)) from None
        # Only the token on stdout, so that `TOKEN=$(manage.py createtoken alice)` works.
        self.stdout.write(created.token)
