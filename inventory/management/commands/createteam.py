"""`manage.py createteam NAME [--member USER ...] [--namespace PATTERN ...]`: a team is a Django
group; members and namespaces are added (never removed) so that the command can be re-run
safely. A namespace (a name or a shell pattern such as `ml-*`) belongs to the team: its pods may
take the team's reserved NICs (the admission webhook checks it), a pod of another namespace
holding one is a reservation breach (the verdicts are judged again at once), and the team's
members may apply NADs there. `manage.py teamnamespaces` lists and removes them too."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.rules import teams as team_rules
from inventory.services import teams


class Command(BaseCommand):
    help = "Create a team (Django group) if missing and add members and namespaces to it."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="Team name, e.g. 'network-lab'.")
        parser.add_argument(
            "--member", action="append", default=[], metavar="USERNAME", help="Repeatable."
        )
        parser.add_argument(
            "--namespace",
            action="append",
            default=[],
            metavar="PATTERN",
            help="A namespace of the team, or a shell pattern such as 'ml-*' (repeatable).",
        )

    def handle(
        self, *args: Any, name: str, member: list[str], namespace: list[str], **options: Any
    ) -> None:
        name = name.strip()
        if not name or len(name) > Group._meta.get_field("name").max_length:
            raise CommandError("the team name must be 1 to 150 characters")
        users = get_user_model().objects.filter(username__in=member)
        missing = sorted(set(member) - {u.get_username() for u in users})
        if missing:
            raise CommandError(f"no such user(s): {', '.join(missing)}")
        bad = [p for p in namespace if team_rules.pattern_problem(p.strip())]
        if bad:
            raise CommandError(
                f"not a namespace name or pattern: {', '.join(bad)} (lower-case letters, digits, "
                "'-' and the wildcards * ? [], at most 63 characters)"
            )
        team, created = Group.objects.get_or_create(name=name)
        for user in users:
            user.groups.add(team)
        try:
            patterns = teams.add_namespaces(team=team, patterns=namespace, by=None)
        except ValidationError as exc:  # checked above; kept for a pattern changed meanwhile
            raise CommandError("; ".join(exc.messages)) from None
        verb = "created" if created else "exists"
        members = ", ".join(sorted(u.get_username() for u in team.user_set.all())) or "none"
        shown = ", ".join(patterns) or "none"
        self.stdout.write(f"team {team.name} {verb}; members: {members}; namespaces: {shown}")
