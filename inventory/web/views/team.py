"""The team pages: switching the team a user acts for, and "my team's NICs"."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Count, Q
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.utils.http import url_has_allowed_host_and_scheme
from django.views import View
from django.views.generic import TemplateView
from django_htmx.http import HttpResponseClientRedirect

from inventory.choices import HistoryKind
from inventory.models import HistoryEntry, Interface, ReservationRequest
from inventory.queries import active_reservations
from inventory.services import teams
from inventory.web.forms import TeamSwitchForm
from inventory.web.views.common import (
    LiveMixin,
    PageMixin,
    PortalLoginRequiredMixin,
    active_team,
    set_active_team,
)

RESERVATION_KINDS = (
    HistoryKind.RESERVE,
    HistoryKind.EXTEND,
    HistoryKind.RELEASE,
    HistoryKind.EXPIRE,
    HistoryKind.REQUEST,
)
TEAM_HISTORY_SHOWN = 100
TEAM_REQUESTS_SHOWN = 20


def redirect_after_post(request: HttpRequest, url: str) -> HttpResponse:
    """htmx follows HX-Redirect with a full page load; a plain form gets the usual 302."""
    if request.htmx:
        return HttpResponseClientRedirect(url)
    return HttpResponseRedirect(url)


class TeamSwitchView(PortalLoginRequiredMixin, View):
    def post(self, request: HttpRequest) -> HttpResponse:
        form = TeamSwitchForm(request.POST, teams=teams.teams_for(request.user))
        if form.is_valid():
            set_active_team(request, form.cleaned_data["team"])
            messages.success(request, f"You now act for {form.cleaned_data['team'].name}.")
        else:
            messages.error(request, "You are not a member of that team.")
        back = request.POST.get("next", "/")
        if not url_has_allowed_host_and_scheme(back, {request.get_host()}, request.is_secure()):
            back = "/"
        return redirect_after_post(request, back)


class TeamView(PageMixin, LiveMixin, TemplateView):
    """Interfaces with an active reservation of the active team, the namespaces it may apply
    NADs into, its latest reservation requests, and that team's reservation history."""

    template_name = "inventory/team.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        team = active_team(self.request)
        context["team"] = team
        if team is None:
            return context
        context["namespaces"] = teams.namespaces_of(team)
        context["interfaces"] = (
            Interface.objects.filter(
                reservations__released_at__isnull=True, reservations__team=team
            )
            .select_related("node", "node__cluster")
            .prefetch_related(active_reservations())
            .order_by("node__name", "name")
        )
        context["requests"] = (
            ReservationRequest.objects.filter(team=team)
            .select_related("created_by")
            .annotate(
                holding=Count("reservations", filter=Q(reservations__released_at__isnull=True))
            )
            .order_by("-created_at", "-id")[:TEAM_REQUESTS_SHOWN]
        )
        context["history"] = (
            HistoryEntry.objects.filter(team=team, kind__in=RESERVATION_KINDS)
            .select_related("actor", "interface", "interface__node")
            .order_by("-at", "-id")[:TEAM_HISTORY_SHOWN]
        )
        return context
