"""REST API under /api/v1/ (filled in by the API work); the agent hint endpoint lives here too."""

from django.urls import path

from inventory import hints

urlpatterns = [
    path("v1/agent-hints/", hints.agent_hint, name="agent-hint"),
]
