"""The web dashboard (htmx). One view and one template per page; htmx requests get a named
fragment of the same template. See common.py for login and live updates."""

from inventory.views.fleet import FleetExportView, FleetView
from inventory.views.interfaces import InterfaceView
from inventory.views.nodes import NodeView
from inventory.views.reservations import ExtendView, ReleaseView, ReserveView
from inventory.views.team import TeamSwitchView, TeamView

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
