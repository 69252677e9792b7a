"""Reserve, extend and release from the dashboard: thin adapters over
inventory.services.reservations, which holds the rules and writes the history. The service's
refusals (Conflict naming the holder, PermissionDenied, ValidationError) are shown on the form."""

from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django.urls import reverse
from django.views import View
from django.views.generic import FormView

from inventory.models import Interface, Reservation
from inventory.services import reservations as reservation_services
from inventory.services.errors import Conflict
from inventory.web.forms import ExtendForm, ReserveForm, extension_default
from inventory.web.views.common import PageMixin, PortalLoginRequiredMixin, active_team
from inventory.web.views.team import redirect_after_post


def refusal(exc: Exception) -> list[str]:
    if isinstance(exc, ValidationError):
        return list(exc.messages)
    return [str(exc) or "You may not do that."]


class ServiceFormView(PageMixin, FormView):
    """A form whose valid POST calls one service; on success go back to the interface."""

    fragment_name = "form"

    def form_valid(self, form) -> HttpResponse:
        try:
            message = self.perform(form.cleaned_data)
        except ValidationError as exc:
            # The service names fields ("expires_at"); show each next to its input when the
            # form has it.
            for field, errors in (
                exc.message_dict.items() if hasattr(exc, "error_dict") else ((None, exc.messages),)
            ):
                form.add_error(field if field in form.fields else None, errors)
            return self.form_invalid(form)
        except (Conflict, PermissionDenied) as exc:
            form.add_error(None, str(exc) or "You may not do that.")
            return self.form_invalid(form)
        messages.success(self.request, message)
        return redirect_after_post(self.request, self.get_success_url())

    def perform(self, data: dict[str, Any]) -> str:
        raise NotImplementedError


class ReserveView(ServiceFormView):
    template_name = "inventory/reserve.html"
    form_class = ReserveForm

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.interface = get_object_or_404(
            Interface.objects.select_related("node", "node__cluster"), pk=kwargs["pk"]
        )
        return super().dispatch(request, *args, **kwargs)

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(interface=self.interface, **kwargs)

    def perform(self, data: dict[str, Any]) -> str:
        team = active_team(self.request)
        if team is None:
            raise PermissionDenied("You are not in any team: ask an admin to add you to one.")
        reservation_services.reserve(
            interface_id=self.interface.pk,
            team=team,
            user=self.request.user,
            purpose=data["purpose"],
            expires_at=data["expires_at"],
        )
        return f"{self.interface.name} on {self.interface.node.name} is reserved for {team.name}."

    def get_success_url(self) -> str:
        return reverse("inventory:interface", args=[self.interface.pk])


class ExtendView(ServiceFormView):
    template_name = "inventory/extend.html"
    form_class = ExtendForm

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        self.reservation = get_object_or_404(
            Reservation.objects.select_related("interface", "interface__node", "team"),
            pk=kwargs["pk"],
        )
        return super().dispatch(request, *args, **kwargs)

    def get_initial(self) -> dict[str, Any]:
        return {"expires_at": extension_default(self.reservation.expires_at)}

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        return super().get_context_data(
            reservation=self.reservation, interface=self.reservation.interface, **kwargs
        )

    def perform(self, data: dict[str, Any]) -> str:
        reservation_services.extend(
            reservation_id=self.reservation.pk,
            user=self.request.user,
            expires_at=data["expires_at"],
        )
        return f"The reservation of {self.reservation.interface.name} is extended."

    def get_success_url(self) -> str:
        return reverse("inventory:interface", args=[self.reservation.interface_id])


class ReleaseView(PortalLoginRequiredMixin, View):
    def post(self, request: HttpRequest, pk: int) -> HttpResponse:
        reservation = get_object_or_404(Reservation.objects.select_related("interface"), pk=pk)
        back = reverse("inventory:interface", args=[reservation.interface_id])
        try:
            reservation_services.release(reservation_id=reservation.pk, user=request.user)
        except (Conflict, PermissionDenied, ValidationError) as exc:
            for text in refusal(exc):
                messages.error(request, text)
        else:
            messages.success(
                request, f"The reservation of {reservation.interface.name} is released."
            )
        return redirect_after_post(request, back)
