"""Diagnosis pages: the pod picker (failing pods first), one pod's diagnosis, stranded NICs.
Thin adapters over inventory.services.diagnosis; every page requires a login (PageMixin)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from django.conf import settings
from django.core.exceptions import BadRequest, ValidationError
from django.views.generic import TemplateView

from inventory.models import Cluster
from inventory.services import diagnosis
from inventory.web.views.common import PageMixin

QUERY_MAX = 200


class PodDiagnosisListView(PageMixin, TemplateView):
    template_name = "inventory/diagnosis_list.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        query = self.request.GET.get("q", "").strip()[:QUERY_MAX]
        cluster = self.request.GET.get("cluster", "").strip()[:QUERY_MAX]
        pods = diagnosis.pods_to_diagnose(query=query, cluster=cluster)
        names = list(Cluster.objects.order_by("name").values_list("name", flat=True))
        context.update(
            query=query,
            cluster=cluster,
            cluster_names=names,
            # The cluster filter and column appear once the inventory holds several clusters.
            several_clusters=len(names) > 1 or bool(cluster),
            pods=pods,
            failing=sum(1 for pod in pods if pod.failing),
        )
        return context


class PodDiagnosisView(PageMixin, TemplateView):
    template_name = "inventory/diagnosis.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        cluster = self.request.GET.get("cluster", "")
        # Live: the pod, its Events and its NADs are read from its cluster's API on every
        # request. A cluster nobody registered is a 400 naming it, not a diagnosis of another.
        try:
            context["result"] = diagnosis.diagnose(
                namespace=self.kwargs["namespace"],
                name=self.kwargs["name"],
                cluster=cluster,
                user=self.request.user,
            )
        except ValidationError as exc:
            raise BadRequest(" ".join(exc.messages)) from None
        context["cluster"] = cluster or settings.CLUSTER_NAME
        context["cluster_query"] = f"?cluster={quote(cluster)}" if cluster else ""
        return context


class StrandedView(PageMixin, TemplateView):
    template_name = "inventory/stranded.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["nics"] = diagnosis.stranded()
        return context
