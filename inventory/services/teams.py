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

A team also owns Kubernetes namespaces (`add_namespaces`, `remove_namespaces`; staff manage them
in the admin, with `manage.py teamnamespaces` and through `/api/v1/team-namespaces/`): the pods
there are the team's, which is how a reserved NIC in another team's pod is told apart from one
in its own, and they are where the team may apply NADs (`check_apply`; staff anywhere; a team
with none builds and downloads but does not apply). The rules are inventory/rules/teams.py's.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import QuerySet

from inventory.choices import AttachmentStatus, HistoryKind
from inventory.models import PodAttachment, TeamNamespace
from inventory.rules import teams as team_rules
from inventory.services import audit
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


def namespaces_of(team: Group | None) -> list[str]:
    """The namespace names and patterns of `team`, sorted (none for no team)."""
    if team is None:
        return []
    return sorted(TeamNamespace.objects.filter(team=team).values_list("pattern", flat=True))


def apply_refusal(user: User, team: Group | None, namespace: str) -> str:
    """ "" when `user`, acting for `team`, may apply a NAD into `namespace`; otherwise why not
    (rules/teams.py `apply_refusal`: the team's namespaces, staff anywhere)."""
    if not user.is_authenticated:
        return "Log in to apply a NAD."
    return team_rules.apply_refusal(
        namespace=namespace,
        team=team.name if team is not None else "",
        patterns=namespaces_of(team),
        staff=bool(user.is_staff),
    )


def check_apply(user: User, team: Group | None, namespace: str) -> None:
    """PermissionDenied, with the reason, unless `user` acting for `team` may apply a NAD into
    `namespace`. The one check of every door (services.nads.apply calls it)."""
    reason = apply_refusal(user, team, namespace)
    if reason:
        raise PermissionDenied(reason)


def check_manage_namespaces(by: User | None) -> None:
    """PermissionDenied unless `by` may give teams namespaces or take them away: staff only
    (None: a management command run on the server)."""
    if by is not None and not (by.is_authenticated and by.is_staff):
        raise PermissionDenied(
            "Only staff manage a team's namespaces (where it may apply NADs); ask staff."
        )


def team_named(name: str) -> Group:
    """The team called `name`; ValidationError on `team` when there is none."""
    team = Group.objects.filter(name=name).first()
    if team is None:
        raise ValidationError({"team": [f"There is no team {name!r}."]})
    return team


def _checked_patterns(patterns: Iterable[str]) -> list[str]:
    patterns = [p.strip() for p in patterns]
    problems = [problem for p in patterns if (problem := team_rules.pattern_problem(p))]
    if problems:
        raise ValidationError({"pattern": problems})
    return patterns


def judge_attached_nodes() -> None:
    """Judge again every node with attached pods: whose a pod is may have changed."""
    nodes = PodAttachment.objects.filter(
        status=AttachmentStatus.ATTACHED, node__isnull=False
    ).values_list("node_id", flat=True)
    refresh_ownership(node_ids=set(nodes))


def add_namespaces(*, team: Group, patterns: Iterable[str], by: User | None) -> list[str]:
    """Give `team` these namespaces (names or shell patterns such as `ml-*`; added, never
    removed, so it can be repeated), as `by` (staff; None: a command on the server). Then judge
    again every node with attached pods: a pod that now belongs to the team stops being a
    breach, one that no longer does becomes one. Returns the team's patterns. PermissionDenied
    for anyone but staff; ValidationError on `pattern` for a pattern that is not one."""
    check_manage_namespaces(by)
    patterns = _checked_patterns(patterns)
    added: list[str] = []
    with transaction.atomic():
        for pattern in patterns:
            if TeamNamespace.objects.get_or_create(team=team, pattern=pattern)[1]:
                added.append(pattern)
        if added:
            record_namespace_change(team, added=added, by=by)
    if added:
        judge_attached_nodes()
    return namespaces_of(team)


def remove_namespaces(*, team: Group, patterns: Iterable[str], by: User | None) -> list[str]:
    """Take these namespaces (exactly as given to the team) from `team`, as `by` (as
    `add_namespaces`), then judge the attached pods again. ValidationError on `pattern` naming
    any the team does not have (nothing is removed then). Returns the team's patterns."""
    check_manage_namespaces(by)
    patterns = [p.strip() for p in patterns]
    with transaction.atomic():
        rows = TeamNamespace.objects.select_for_update().filter(team=team, pattern__in=patterns)
        missing = sorted(set(patterns) - {row.pattern for row in rows})
        if missing:
            raise ValidationError(
                {
                    "pattern": [
                        f"Team {team.name} has no namespace {', '.join(missing)}; it has: "
                        f"{', '.join(namespaces_of(team)) or 'none'}."
                    ]
                }
            )
        removed = TeamNamespace.objects.filter(pk__in=[row.pk for row in rows]).delete()[0]
        if removed:
            record_namespace_change(team, removed=sorted({row.pattern for row in rows}), by=by)
    if removed:
        judge_attached_nodes()
    return namespaces_of(team)


def record_namespace_change(
    team: Group, *, added: Iterable[str] = (), removed: Iterable[str] = (), by: Any = None
) -> None:
    """One history row for a change of the team's namespaces (who may apply its NADs and run
    pods on its NICs): what was given, what was taken, by whom (None: a command on the server).
    Inside the change's transaction."""
    added, removed = sorted(added), sorted(removed)
    if not added and not removed:
        return
    who = by.get_username() if getattr(by, "is_authenticated", False) else "the system"
    parts = []
    if added:
        parts.append(f"gave team {team.name} namespace(s) {', '.join(added)}")
    if removed:
        parts.append(f"took namespace(s) {', '.join(removed)} from team {team.name}")
    audit.record(
        HistoryKind.TEAM,
        message=f"{who} {' and '.join(parts)}",
        actor=by,
        team=team,
        data={"added": added, "removed": removed},
    )
