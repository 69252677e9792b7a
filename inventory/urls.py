from django.urls import include, path

from inventory import views
from inventory.views.admission import AdmissionView

app_name = "inventory"

urlpatterns = [
    path("", views.FleetView.as_view(), name="fleet"),
    path("export.csv", views.FleetExportView.as_view(), name="fleet-export"),
    path("nodes/<str:name>/", views.NodeView.as_view(), name="node"),
    path("interfaces/<int:pk>/", views.InterfaceView.as_view(), name="interface"),
    path("interfaces/<int:pk>/reserve/", views.ReserveView.as_view(), name="interface-reserve"),
    path("reservations/<int:pk>/extend/", views.ExtendView.as_view(), name="reservation-extend"),
    path("reservations/<int:pk>/release/", views.ReleaseView.as_view(), name="reservation-release"),
    path("team/", views.TeamView.as_view(), name="team"),
    path("admission/", AdmissionView.as_view(), name="admission"),
    path("team/switch/", views.TeamSwitchView.as_view(), name="team-switch"),
    path("", include("inventory.urls_nads")),  # the NAD builder: nads/...
    path("", include("inventory.urls_diagnosis")),  # pods/, pods/<ns>/<name>/diagnosis/, stranded/
]
