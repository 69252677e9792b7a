"""`manage.py createteam NAME [--member USER ...]`: a team is a Django group; members are added
(never removed) so that the command can be re-run safely."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.management.base import BaseCommand, CommandError, CommandParser


class Command(BaseCommand):
    help = "Create a team (Django group) if missing and add members to it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Team name, e.g. 'network-lab'.")
        parser.add_argument(
            "--member", action="append", default=[], metavar="USERNAME", help="Repeatable."
        )

    def handle(self, *args: Any, name: str, member: list[str], **options: Any) -> None:
        name = name.strip()
        if not name or len(name) > Group._meta.get_field("name").max_length:
            raise CommandError("the team name must be 1 to 150 characters")
        users = get_user_model().objects.filter(username__in=member)
        missing = sorted(set(member) - {u.get_username() for u in users})
        if missing:
            raise CommandError(f"no such user(s): {', '.join(missing)}")
        team, created = Group.objects.get_or_create(name=name)
        for user in users:
            user.groups.add(team)
        verb = "created" if created else "exists"
        members = ", ".join(sorted(u.get_username() for u in team.user_set.all())) or "none"
        self.stdout.write(f"team {team.name} {verb}; members: {members}")
