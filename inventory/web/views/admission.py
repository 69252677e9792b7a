"""The admission page: what the webhook denied, or would have denied in warn mode, newest
first. A thin adapter over AdmissionRecord (written by inventory/services/admission.py)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.paginator import Paginator
from django.views.generic import TemplateView

from inventory.models import AdmissionRecord, Cluster
from inventory.web.views.common import PageMixin

PAGE_SIZE = 50
MODES = {"warn": False, "enforce": True}


class AdmissionView(PageMixin, TemplateView):
    template_name = "inventory/admission.html"

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        # Unknown values show everything rather than an error: this is a filter link, not input
        # anything is stored from.
        mode = self.request.GET.get("mode", "")
        records = AdmissionRecord.objects.all()
        if mode in MODES:
            records = records.filter(enforced=MODES[mode])
        else:
            mode = ""
        cluster = self.request.GET.get("cluster", "")
        if cluster:
            records = records.filter(cluster=cluster)
        page = Paginator(records, PAGE_SIZE).get_page(self.request.GET.get("page"))
        context.update(
            mode=mode,
            cluster=cluster,
            # Which cluster's API server sent each review, once there are several.
            several_clusters=bool(cluster) or Cluster.objects.count() > 1,
            page=page,
            records=page.object_list,
            webhook_mode=settings.WEBHOOK_MODE,
            failure_policy=settings.WEBHOOK_FAILURE_POLICY,
        )
        return context
