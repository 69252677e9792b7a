"""What every dashboard page shares: login, the team switcher's context, fragment rendering for
htmx requests, and the cheap "has anything changed?" check behind live updates.

Live updates: each page wraps its changing part in an element that polls the page's own URL
every 2 s with `since=<version>`. The version is a few aggregates over indexed columns (the
newest HistoryEntry id: sync/ and the reservation services write one for every ownership
change or user action). When nothing moved the answer is 204 (htmx swaps nothing); when it moved,
the fragment is rendered again with the new version. Dashboards keep polling for as long as they
are open (a NIC can move at any time); only when the polled object is gone do we answer 286, which
tells htmx to stop.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.conf import settings
from django.contrib.auth.mixins import LoginRequiredMixin
from django.contrib.auth.models import Group
from django.db.models import Max
from django.http import HttpRequest, HttpResponse
from django.shortcuts import resolve_url
from django_htmx.http import HttpResponseClientRedirect, HttpResponseStopPolling

from inventory.models import HistoryEntry
from inventory.services import teams

POLL_INTERVAL = "2s"
NAD_BUILDER_PATH = "/nads/new/"
TEAM_SESSION_KEY = "nicportal_team_id"


def active_team(request: HttpRequest) -> Group | None:
    """The team the switcher names: the one chosen in this session while the user may still act
    for it, else the first of the user's own teams. The pages always name their acting team
    this way (services.teams has the rule for the other doors)."""
    user = request.user
    if not user.is_authenticated:
        return None
    team_id = request.session.get(TEAM_SESSION_KEY)
    if team_id is not None:
        team = teams.teams_for(user).filter(pk=team_id).first()
        if team is not None:
            return team
    return user.groups.order_by("name").first()


def set_active_team(request: HttpRequest, team: Group) -> None:
    """Remember the switcher's choice; PermissionDenied for a team the user may not act for."""
    teams.check_acting(request.user, team)
    request.session[TEAM_SESSION_KEY] = team.pk


def digest(*values: Any) -> str:
    """A short stable fingerprint (hash() is salted per process, and gunicorn runs several)."""
    return hashlib.sha1(repr(values).encode(), usedforsecurity=False).hexdigest()[:12]


def history_version() -> int:
    """Newest history id: one index lookup on the primary key."""
    return HistoryEntry.objects.aggregate(newest=Max("id"))["newest"] or 0


class PortalLoginRequiredMixin(LoginRequiredMixin):
    """Login on every page. A background htmx request from an expired session must not swap the
    login form into a table cell: tell the browser to load the login page instead."""

    def handle_no_permission(self) -> HttpResponse:
        request: HttpRequest = self.request
        if getattr(request, "htmx", False) and not request.user.is_authenticated:
            login = f"{resolve_url(settings.LOGIN_URL)}?next={request.get_full_path()}"
            return HttpResponseClientRedirect(login)
        return super().handle_no_permission()


class PageMixin(PortalLoginRequiredMixin):
    """One template per page; an htmx request gets the page's `fragment_name` partial."""

    fragment_name: str = "live"

    def get_template_names(self) -> list[str]:
        names = super().get_template_names()
        if wants_fragment(self.request):
            return [f"{name}#{self.fragment_name}" for name in names]
        return names

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        request = self.request
        if not wants_fragment(request):
            context["teams"] = list(teams.teams_for(request.user))
            context["active_team"] = active_team(request)
        context["fragment"] = wants_fragment(request)
        context["poll_interval"] = POLL_INTERVAL
        context["nad_builder_path"] = NAD_BUILDER_PATH
        return context


class LiveMixin:
    """Answer a poll (`since=<version>` on an htmx request) with 204 while nothing changed."""

    def live_version(self) -> str:
        return str(history_version())

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        # Read the version before the data: a change landing in between is then shown by the
        # next poll instead of being hidden behind an already-new version.
        self.version = self.live_version()
        since = request.GET.get("since")
        if since is not None and wants_fragment(request) and since == self.version:
            return HttpResponse(status=204)
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["version"] = self.version
        return context


def wants_fragment(request: HttpRequest) -> bool:
    """htmx asked for part of a page. Boosted links and forms (hx-boost on <body>) navigate to a
    whole page and get the whole template."""
    htmx = getattr(request, "htmx", None)
    return bool(htmx) and not htmx.boosted


def stop_polling() -> HttpResponse:
    """The polled object is gone: nothing more will change, stop asking (HTTP 286)."""
    return HttpResponseStopPolling()
