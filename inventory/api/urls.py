"""REST API under /api/v1/, its OpenAPI schema at /api/schema/ and docs at /api/docs/; the agent
hint endpoint (its own agent credential, see inventory/hints.py) lives here too."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.routers import DefaultRouter

from inventory import hints
from inventory.api import capacity, views

router = DefaultRouter()
router.register("clusters", views.ClusterViewSet, basename="cluster")
router.register("nodes", views.NodeViewSet, basename="node")
router.register("interfaces", views.InterfaceViewSet, basename="interface")
router.register("reservations", views.ReservationViewSet, basename="reservation")
router.register(
    "reservation-requests", capacity.ReservationRequestViewSet, basename="reservationrequest"
)
router.register("nads", views.NetworkAttachmentViewSet, basename="nad")
router.register("pod-attachments", views.PodAttachmentViewSet, basename="podattachment")
router.register("history", views.HistoryViewSet, basename="history")
router.register("tokens", views.TokenViewSet, basename="token")
router.register("team-namespaces", views.TeamNamespaceViewSet, basename="teamnamespace")

urlpatterns = [
    path("v1/agent-hints/", hints.agent_hint, name="agent-hint"),
    path(
        "v1/pods/<str:namespace>/<str:name>/diagnosis/",
        views.PodDiagnosisView.as_view(),
        name="api-pod-diagnosis",
    ),
    path("v1/", include(router.urls)),
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="api-schema"), name="api-docs"),
]
