"""`manage.py teamnamespaces [TEAM] [--add PATTERN ...] [--remove PATTERN ...]`: list, add or
remove the namespaces of a team (names or shell patterns such as `ml-*`): where its members may
apply NADs and its pods may take its reserved NICs. Without TEAM it lists every team. Adding a
namespace the team has, like the admin and the API, changes nothing; removing one it does not
have is an error and removes nothing. The verdicts of attached pods are judged again at once."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from inventory.services import teams


class Command(BaseCommand):
    help = "List, add or remove a team's namespaces (where it may apply NADs)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("team", nargs="?", help="Team name; without it, list every team.")
        parser.add_argument(
            "--add",
            action="append",
            default=[],
            metavar="PATTERN",
            help="A namespace, or a shell pattern such as 'ml-*' (repeatable).",
        )
        parser.add_argument(
            "--remove",
            action="append",
            default=[],
            metavar="PATTERN",
            help="A namespace or pattern exactly as the team has it (repeatable).",
        )

    def handle(
        self, *args: Any, team: str | None, add: list[str], remove: list[str], **options: Any
    ) -> None:
        if team is None:
            if add or remove:
                raise CommandError("name the team to --add or --remove namespaces")
            for group in Group.objects.order_by("name"):
                self._show(group)
            return
        group = Group.objects.filter(name=team.strip()).first()
        if group is None:
            raise CommandError(f"no such team: {team} (create it with manage.py createteam)")
        try:
            if remove:
                teams.remove_namespaces(team=group, patterns=remove, by=None)
            if add:
                teams.add_namespaces(team=group, patterns=add, by=None)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from None
        self._show(group)

    def _show(self, group: Group) -> None:
        shown = ", ".join(teams.namespaces_of(group)) or "none (may not apply NADs)"
        self.stdout.write(f"team {group.name}: {shown}")
