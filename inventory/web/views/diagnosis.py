"""Diagnosis pages: the pod picker (failing pods first), one pod's diagnosis, stranded NICs.
Thin adapters over inventory.services.diagnosis; every page requires a login (PageMixin)."""

from __future__ import annotations

from typing import Any

from django.views.generic import TemplateView

from inventory.services import diagnosis
from inventory.web.views.common import PageMixin

QUERY_MAX = 200


class PodDiagnosisListView(PageMixin, TemplateView):
    template_name = "inventory/diagnosis_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()[:QUERY_MAX]
        pods = diagnosis.pods_to_diagnose(query=query)
        context.update(
            query=query,
            pods=pods,
            failing=sum(1 for pod in pods if pod.failing),
        )
        return context


class PodDiagnosisView(PageMixin, TemplateView):
    template_name = "inventory/diagnosis.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # Live: the pod, its Events and its NADs are read from the API on every request.
        context["result"] = diagnosis.diagnose(
            namespace=self.kwargs["namespace"], name=self.kwargs["name"], user=self.request.user
        )
        return context


class StrandedView(PageMixin, TemplateView):
    template_name = "inventory/stranded.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["nics"] = diagnosis.stranded()
        return context
