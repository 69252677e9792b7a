"""The interface view: facts, current owner and why, the pods that held it, its reservations and
its ownership timeline, with the reservation actions and the NAD builder one click away."""

from __future__ import annotations

from typing import Any

from django.http import HttpRequest, HttpResponse
from django.utils import timezone
from django.views.generic import DetailView

from inventory.models import Interface
from inventory.queries import cached_contacts
from inventory.services import teams
from inventory.web import diagrams
from inventory.web.views.common import (
    LiveMixin,
    PageMixin,
    digest,
    history_version,
    stop_polling,
)

HISTORY_SHOWN = 100


class InterfaceView(PageMixin, LiveMixin, DetailView):
    template_name = "inventory/interface.html"
    context_object_name = "interface"
    queryset = Interface.objects.select_related("node", "node__cluster")

    def live_version(self) -> str:
        changed = (
            Interface.objects.filter(pk=self.kwargs["pk"])
            .values_list("state_changed_at", "last_seen_at", "node_id")
            .first()
        )
        # The node's contact time (cache) moves with every poll, changed or not: "last seen".
        contact = cached_contacts([changed[2]]).get(changed[2]) if changed else None
        return f"{history_version()}-{digest(changed, contact)}"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.htmx and "since" in request.GET:
            if not Interface.objects.filter(pk=kwargs["pk"]).exists():
                return stop_polling()
        return super().get(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        interface = self.object
        reservations = list(
            interface.reservations.select_related("team", "created_by", "released_by").order_by(
                "-starts_at", "-id"
            )
        )
        active = next((r for r in reservations if r.active), None)
        user = self.request.user
        history = list(interface.history.select_related("actor", "team")[:HISTORY_SHOWN])
        now = timezone.now()
        # The timeline starts when the NIC was first seen, or at the oldest change shown.
        since = interface.first_seen_at
        if len(history) == HISTORY_SHOWN:
            since = max(since, history[-1].at)
        context.update(
            timeline=diagrams.state_timeline(
                [diagrams.Change(e.at, e.old_state, e.new_state) for e in history],
                since=since,
                now=now,
                current=interface.state,
            ),
            timeline_since=since,
            timeline_now=now,
            last_seen=interface.seen_at(interface.node.last_contact),
            attachments=interface.attachments.order_by("-first_seen_at", "-id"),
            reservations=reservations,
            active_reservation=active,
            can_manage_reservation=bool(active and teams.can_act_for(user, active.team)),
            history=history,
        )
        return context
