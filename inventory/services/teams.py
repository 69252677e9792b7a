"""Teams are Django groups. A user may belong to several and acts for one at a time. Staff can
act for any team.

The acting-team rule, the same for every door (`acting_team` resolves it, the workflow checks
membership once with `check_acting`):
- a named team is the team acted for; a name that is no team is refused like a team the user
  may not act for (PermissionDenied);
- no name: the user's only team; a user in several teams must name one (ValidationError on
  `team`); a user in no team acts for none (a NAD is then built without reserved NICs, and a
  reservation, which needs a team, is refused on `team`).

The web pages always name one: the team chosen in the switcher (kept in the session), which
starts as the first of the user's teams and is shown on every page. The API names one in its
`team` field or leaves it to the rule.

A team also owns Kubernetes namespaces (`add_namespaces`): the pods there are the team's, which
is how a reserved NIC in another team's pod is told apart from one in its own
(inventory/rules/teams.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet

from inventory.choices import AttachmentStatus
from inventory.models import PodAttachment, TeamNamespace
from inventory.sync.verdicts import refresh_ownership

User = AbstractBaseUser | AnonymousUser


def teams_for(user: User) -> QuerySet[Group]:
    """The teams the user may act for (staff: every team)."""
    if not user.is_authenticated:
        return Group.objects.none()
    if user.is_staff:
        return Group.objects.order_by("name")
    return user.groups.order_by("name")


def can_act_for(user: User, team: Group) -> bool:
    if not user.is_authenticated:
        return False
    return bool(user.is_staff) or user.groups.filter(pk=team.pk).exists()


def check_acting(user: User, team: Group | None) -> None:
    """PermissionDenied unless the user may act for `team` (None: acting for no team)."""
    if team is not None and not can_act_for(user, team):
        raise PermissionDenied(f"You are not a member of team {team.name}.")


def acting_team(user: User, name: str | None, *, required: bool) -> Group | None:
    """The team `user` acts for when a door names `name` (or none): the rule in the module
    docstring. `required`: acting for no team is refused on `team`. Membership of a named team
    is the workflow's check (`check_acting`), made once."""
    if name:
        team = Group.objects.filter(name=name).first()
        if team is None:
            raise PermissionDenied(
                f"You cannot act for team {name!r}: there is no such team, or you are not in it."
            )
        return team
    own = list(user.groups.order_by("name")[:2]) if user.is_authenticated else []
    if len(own) > 1:
        raise ValidationError({"team": ["You are in several teams: say which team acts."]})
    if not own and required:
        raise ValidationError({"team": ["You are in no team: say which team acts."]})
    return own[0] if own else None


# A namespace name (DNS-1123 label) or a shell pattern of one: '*', '?' and '[...]' allowed.
NAMESPACE_PATTERN = re.compile(r"^[a-z0-9*?\[\]-]{1,63}$")


def add_namespaces(*, team: Group, patterns: Iterable[str]) -> list[str]:
    """Give `team` these namespaces (names or shell patterns such as `ml-*`; added, never
    removed, so it can be repeated). Then judge again every node with attached pods: a pod that
    now belongs to the team stops being a breach, one that no longer does becomes one. Returns
    the team's patterns. ValidationError on `namespace` for a pattern that is not one."""
    patterns = [p.strip() for p in patterns]
    bad = [p for p in patterns if not NAMESPACE_PATTERN.match(p)]
    if bad:
        raise ValidationError(
            {
                "namespace": [
                    f"Not a namespace name or pattern: {', '.join(bad)} (a DNS-1123 label: "
                    "lower-case letters, digits and '-', at most 63 characters; the shell "
                    "wildcards * ? [] are allowed)."
                ]
            }
        )
    with transaction.atomic():
        for pattern in patterns:
            TeamNamespace.objects.get_or_create(team=team, pattern=pattern)
    if patterns:
        nodes = PodAttachment.objects.filter(
            status=AttachmentStatus.ATTACHED, node__isnull=False
        ).values_list("node_id", flat=True)
        refresh_ownership(node_ids=set(nodes))
    return list(team.namespaces.values_list("pattern", flat=True))
