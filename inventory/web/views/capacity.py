"""Reservation requests in the dashboard: the form with a live "N match" count, the result page
(the NICs, the NADs and the pod placement, or why nothing matched) and the list of requests.
Thin adapters over inventory.services.capacity."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View
from django.views.generic import DetailView, FormView, ListView

from inventory.models import Cluster, ReservationRequest
from inventory.services import capacity
from inventory.services.errors import Conflict
from inventory.web.forms import ConstraintsForm, ReservationRequestForm
from inventory.web.views.common import PageMixin, PortalLoginRequiredMixin, active_team
from inventory.web.views.team import redirect_after_post

PAGE_SIZE = 50


def _add_service_errors(form: ConstraintsForm, exc: ValidationError) -> None:
    items = exc.message_dict.items() if hasattr(exc, "error_dict") else ((None, exc.messages),)
    for field, errors in items:
        form.add_error(field if field in form.fields else None, errors)


class RequestNewView(PageMixin, FormView):
    """GET the form; POST submits it and goes to the request's page, granted or refused."""

    template_name = "inventory/request_new.html"
    form_class = ReservationRequestForm
    fragment_name = "form"

    def form_valid(self, form: ReservationRequestForm) -> HttpResponse:
        team = active_team(self.request)
        try:
            if team is None:
                raise PermissionDenied("You are not in any team: ask an admin to add you to one.")
            made = capacity.submit(
                user=self.request.user,
                team=team,
                constraints=form.constraints(),
                purpose=form.cleaned_data["purpose"],
                expires_at=form.cleaned_data["expires_at"],
                namespace=form.cleaned_data["namespace"],
                nad_name=form.cleaned_data["nad_name"],
                cluster=form.cluster_name(),
            )
        except ValidationError as exc:
            _add_service_errors(form, exc)
            return self.form_invalid(form)
        except (Conflict, PermissionDenied) as exc:
            form.add_error(None, str(exc) or "You may not do that.")
            return self.form_invalid(form)
        return redirect_after_post(self.request, reverse("inventory:request", args=[made.pk]))


class RequestPreviewView(PageMixin, FormView):
    """The live count: POSTed by the form on every change, answers the `count` fragment."""

    template_name = "inventory/request_new.html"
    form_class = ConstraintsForm
    fragment_name = "count"

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        return self.post(request, *args, **kwargs)

    def get_form_kwargs(self) -> dict[str, Any]:
        kwargs = super().get_form_kwargs()
        kwargs["data"] = self.request.POST if self.request.method == "POST" else self.request.GET
        return kwargs

    def form_valid(self, form: ConstraintsForm) -> HttpResponse:
        try:
            match = capacity.preview(form.constraints(), form.cluster_name())
        except ValidationError as exc:
            _add_service_errors(form, exc)
            return self.form_invalid(form)
        return self.render_to_response(self.get_context_data(form=form, match=match))

    def form_invalid(self, form: ConstraintsForm) -> HttpResponse:
        problems = [
            f"{form[name].label}: {' '.join(errors)}" if name in form.fields else " ".join(errors)
            for name, errors in form.errors.items()
        ]
        return self.render_to_response(self.get_context_data(form=form, problems=problems))


class RequestDetailView(PageMixin, DetailView):
    template_name = "inventory/request_detail.html"
    context_object_name = "req"

    def get_object(self, queryset: Any = None) -> ReservationRequest:
        return get_object_or_404(
            ReservationRequest.objects.select_related("team", "created_by"), pk=self.kwargs["pk"]
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["nics"] = list(
            # A PF's VFs together, by number, after the node's other NICs.
            self.object.reservations.select_related("interface__node__cluster").order_by(
                "interface__node_name",
                "interface__pf_pci_address",
                "interface__vf_index",
                "interface__name",
            )
        )
        context["nad_yaml"] = "---\n".join(n.get("yaml", "") for n in self.object.nads)
        context["active_count"] = sum(1 for r in context["nics"] if r.active)
        context["request_cluster"] = capacity.request_cluster(self.object)
        context["several_clusters"] = Cluster.objects.count() > 1
        return context


class RequestListView(PageMixin, ListView):
    template_name = "inventory/request_list.html"
    context_object_name = "requests"
    paginate_by = PAGE_SIZE

    def get_queryset(self):
        return ReservationRequest.objects.select_related("team", "created_by").order_by(
            "-created_at", "-id"
        )

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["several_clusters"] = Cluster.objects.count() > 1
        if context["several_clusters"]:
            for row in context["requests"]:
                row.cluster_name = capacity.request_cluster(row)
        return context


class RequestReleaseView(PortalLoginRequiredMixin, View):
    """Release every NIC the request still holds (the request page's button, confirmed)."""

    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        made = get_object_or_404(ReservationRequest, pk=pk)
        try:
            capacity.release(request_id=made.pk, user=request.user)
        except (Conflict, PermissionDenied) as exc:
            messages.error(request, str(exc) or "You may not do that.")
        else:
            messages.success(request, f"Every NIC of request {made.pk} is released.")
        return redirect_after_post(request, reverse("inventory:request", args=[made.pk]))
