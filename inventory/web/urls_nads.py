"""The NAD builder's pages; included by inventory/urls.py (namespace "inventory")."""

from django.urls import path

from inventory.web.views import nads

urlpatterns = [
    path("nads/", nads.NadListView.as_view(), name="nad-list"),
    path("nads/new/", nads.NadBuilderView.as_view(), name="nad-new"),
    path("nads/preview/", nads.NadPreviewView.as_view(), name="nad-preview"),
    path("nads/apply/", nads.NadApplyView.as_view(), name="nad-apply"),
    path("nads/lint/", nads.NadLintView.as_view(), name="nad-lint"),
    path("nads/<int:pk>/", nads.NadDetailView.as_view(), name="nad-detail"),
]
