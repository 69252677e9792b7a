"""Diagnosis pages, included by inventory/urls.py (app namespace "inventory")."""

from django.urls import path

from inventory.web.views.diagnosis import PodDiagnosisListView, PodDiagnosisView, StrandedView

urlpatterns = [
    path("pods/", PodDiagnosisListView.as_view(), name="pod-diagnosis-list"),
    path(
        "pods/<str:namespace>/<str:name>/diagnosis/",
        PodDiagnosisView.as_view(),
        name="pod-diagnosis",
    ),
    path("stranded/", StrandedView.as_view(), name="stranded"),
]
