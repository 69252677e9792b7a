"""The dashboard's pages (app namespace "inventory"), included at the root by nicportal/urls.py:
the fleet, nodes, interfaces and reservations, the team, the NAD builder, the diagnosis and the
API tokens and the admission webhook's records."""

from django.urls import path

from inventory.web import views
from inventory.web.views import admission, capacity, diagnosis, nads, status, tokens

app_name = "inventory"

urlpatterns = [
    path("", views.FleetView.as_view(), name="fleet"),
    path("export.csv", views.FleetExportView.as_view(), name="fleet-export"),
    path("nodes/<str:name>/", views.NodeView.as_view(), name="node"),
    path("interfaces/<int:pk>/", views.InterfaceView.as_view(), name="interface"),
    path("interfaces/<int:pk>/reserve/", views.ReserveView.as_view(), name="interface-reserve"),
    path("reservations/<int:pk>/extend/", views.ExtendView.as_view(), name="reservation-extend"),
    path("reservations/<int:pk>/release/", views.ReleaseView.as_view(), name="reservation-release"),
    # Reservation requests: NICs by count and constraints.
    path("requests/", capacity.RequestListView.as_view(), name="request-list"),
    path("requests/new/", capacity.RequestNewView.as_view(), name="request-new"),
    path("requests/preview/", capacity.RequestPreviewView.as_view(), name="request-preview"),
    path("requests/<int:pk>/", capacity.RequestDetailView.as_view(), name="request"),
    path(
        "requests/<int:pk>/release/",
        capacity.RequestReleaseView.as_view(),
        name="request-release",
    ),
    path("team/", views.TeamView.as_view(), name="team"),
    path("team/switch/", views.TeamSwitchView.as_view(), name="team-switch"),
    # The user's API tokens, and the header's sweep status (polled by every page).
    path("tokens/", tokens.TokenPageView.as_view(), name="tokens"),
    path("tokens/<str:token_key>/revoke/", tokens.TokenRevokeView.as_view(), name="token-revoke"),
    path("status/sweep/", status.SweepStatusView.as_view(), name="sweep-status"),
    # The NAD builder.
    path("nads/", nads.NadListView.as_view(), name="nad-list"),
    path("nads/new/", nads.NadBuilderView.as_view(), name="nad-new"),
    path("nads/preview/", nads.NadPreviewView.as_view(), name="nad-preview"),
    path("nads/apply/", nads.NadApplyView.as_view(), name="nad-apply"),
    path("nads/lint/", nads.NadLintView.as_view(), name="nad-lint"),
    path("nads/<int:pk>/", nads.NadDetailView.as_view(), name="nad-detail"),
    # Diagnosis and stranded NICs.
    path("pods/", diagnosis.PodDiagnosisListView.as_view(), name="pod-diagnosis-list"),
    path(
        "pods/<str:namespace>/<str:name>/diagnosis/",
        diagnosis.PodDiagnosisView.as_view(),
        name="pod-diagnosis",
    ),
    path("stranded/", diagnosis.StrandedView.as_view(), name="stranded"),
    # What the admission webhook denied, or would have (warn mode).
    path("admission/", admission.AdmissionView.as_view(), name="admission"),
]
