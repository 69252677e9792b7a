"""The web dashboard (htmx). One view and one template per page; htmx requests get a named
fragment of the same template. See common.py for login and live updates."""

from inventory.web.views.fleet import FleetExportView, FleetView
from inventory.web.views.interfaces import InterfaceView
from inventory.web.views.nodes import NodeView
from inventory.web.views.reservations import ExtendView, ReleaseView, ReserveView
from inventory.web.views.team import TeamSwitchView, TeamView

__all__ = [
    "FleetExportView",
    "FleetView",
    "InterfaceView",
    "NodeView",
    "ExtendView",
    "ReleaseView",
    "ReserveView",
    "TeamSwitchView",
    "TeamView",
]
