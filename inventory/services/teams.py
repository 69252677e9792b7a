"""Teams are Django groups. A user may belong to several and acts for one at a time (kept in the
session for the UI; the API takes the team explicitly or uses the user's only team). Staff can
act for any team."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.db.models import QuerySet
from django.http import HttpRequest

SESSION_KEY = "nicportal_team_id"


def teams_for(user: AbstractBaseUser | AnonymousUser) -> QuerySet[Group]:
    if not user.is_authenticated:
        return Group.objects.none()
    if user.is_staff:
        return Group.objects.order_by("name")
    return user.groups.order_by("name")


def can_act_for(user: AbstractBaseUser | AnonymousUser, team: Group) -> bool:
    if not user.is_authenticated:
        return False
    return bool(user.is_staff) or user.groups.filter(pk=team.pk).exists()


def active_team(request: HttpRequest) -> Group | None:
    """The team the user acts for: the one chosen in this session if still allowed, else the
    user's first team."""
    user = request.user
    if not user.is_authenticated:
        return None
    teams = teams_for(user)
    team_id = request.session.get(SESSION_KEY)
    if team_id is not None:
        team = teams.filter(pk=team_id).first()
        if team is not None:
            return team
    return teams.first() if not user.is_staff else user.groups.order_by("name").first()


def set_active_team(request: HttpRequest, team: Group) -> None:
    if not can_act_for(request.user, team):
        raise PermissionError(f"you are not a member of team {team.name}")
    request.session[SESSION_KEY] = team.pk
