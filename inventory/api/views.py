"""REST viewsets: thin adapters over the models (reads) and inventory.services (writes).

Service errors become HTTP answers here, in one place (`service_errors`): ValidationError -> 400
with the field names, PermissionDenied -> 403 with its message, Conflict -> 409 naming the holder,
a missing row -> 404.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.contrib.auth.models import Group
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import OuterRef, QuerySet, Subquery
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from knox.models import AuthToken
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory import filtersets
from inventory.api import serializers as s
from inventory.api.pagination import BoundedLimitOffsetPagination
from inventory.models import (
    Cluster,
    HistoryEntry,
    Interface,
    NetworkAttachment,
    Node,
    PodAttachment,
    Reservation,
)
from inventory.services import reservations
from inventory.services.errors import Conflict


class ConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"

    def __init__(self, conflict: Conflict) -> None:
        super().__init__()
        # A dict detail becomes the body as is: {"detail": ..., "holder": ...}.
        self.detail = {"detail": conflict.message, "holder": conflict.holder}


class NotImplementedYet(APIException):
    status_code = status.HTTP_501_NOT_IMPLEMENTED
    default_code = "not_implemented"


@contextmanager
def service_errors() -> Iterator[None]:
    try:
        yield
    except DjangoValidationError as exc:
        if hasattr(exc, "error_dict"):
            raise ValidationError(exc.message_dict) from None
        raise ValidationError({"non_field_errors": exc.messages}) from None
    except DjangoPermissionDenied as exc:
        raise PermissionDenied(str(exc) or None) from None
    except Conflict as exc:
        raise ConflictError(exc) from None
    except ObjectDoesNotExist:
        raise NotFound() from None


class SelectableFieldsAutoSchema(AutoSchema):
    """With `?fields=`/`?brief=` any field may be absent, so the response components of
    serializers that support it list no required properties."""

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema = super()._map_basic_serializer(serializer, direction)
        if direction == "response" and getattr(serializer, "selectable_fields", False):
            schema.pop("required", None)
        return schema


def field_selection_parameters(serializer_class: type) -> list[OpenApiParameter]:
    names = list(serializer_class().fields)
    return [
        OpenApiParameter(
            "fields",
            OpenApiTypes.STR,
            description="Comma-separated fields to return: " + ", ".join(names),
            pattern=s.fields_pattern(names),
        ),
        OpenApiParameter(
            "brief",
            OpenApiTypes.BOOL,
            description="Only " + ", ".join(serializer_class.brief_fields),
        ),
    ]


class ApiViewSetMixin:
    schema = SelectableFieldsAutoSchema()
    pagination_class = BoundedLimitOffsetPagination


class ClusterViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Cluster.objects.order_by("name")
    serializer_class = s.ClusterSerializer
    filterset_fields = ["name"]
    ordering_fields = ["name", "last_sweep_at"]


@extend_schema(parameters=field_selection_parameters(s.NodeSerializer))
class NodeViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Node.objects.select_related("cluster").order_by("cluster__name", "name")
    serializer_class = s.NodeSerializer
    filterset_class = filtersets.NodeFilterSet
    ordering_fields = ["name", "last_contact_at", "collected_at", "id"]


@extend_schema(parameters=field_selection_parameters(s.InterfaceSerializer))
class InterfaceViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    serializer_class = s.InterfaceSerializer
    filterset_class = filtersets.InterfaceFilterSet
    ordering_fields = [
        "id",
        "name",
        "node__name",
        "state",
        "driver",
        "speed_mbps",
        "pci_address",
        "state_changed_at",
        "last_seen_at",
    ]

    def get_queryset(self) -> QuerySet[Interface]:
        # The active reservation through the partial unique index: one index probe per row.
        active = Reservation.objects.filter(interface=OuterRef("pk"), released_at__isnull=True)
        return (
            Interface.objects.select_related("node__cluster")
            .annotate(
                reserved_team=Subquery(active.values("team__name")[:1]),
                reservation_id=Subquery(active.values("pk")[:1]),
                reserved_until=Subquery(active.values("expires_at")[:1]),
            )
            .order_by("node__name", "name", "id")
        )


@extend_schema(
    parameters=[
        OpenApiParameter(
            "active",
            OpenApiTypes.BOOL,
            description="Active (unreleased) reservations only. Default true; "
            "`?active=false` for released ones, `?active=` for all.",
        )
    ]
)
class ReservationViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Team-wide reservations. Everyone may read them (knowing who holds a NIC is the point);
    reserving, extending and releasing need the team's membership (see services.reservations)."""

    serializer_class = s.ReservationSerializer
    filterset_class = filtersets.ReservationFilterSet
    ordering_fields = ["starts_at", "expires_at", "released_at", "id"]

    def get_queryset(self) -> QuerySet[Reservation]:
        queryset = Reservation.objects.select_related(
            "interface__node", "team", "created_by", "released_by"
        ).order_by("-starts_at", "-id")
        # Only the list defaults to active ones: a released reservation stays addressable by id.
        if self.action == "list" and "active" not in self.request.query_params:
            queryset = queryset.filter(released_at__isnull=True)
        return queryset

    @extend_schema(
        request=s.ReservationCreateSerializer,
        responses={
            201: s.ReservationSerializer,
            400: OpenApiResponse(description="Invalid fields (per-field messages)."),
            403: s.ErrorSerializer,
            409: s.ConflictSerializer,
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.ReservationCreateSerializer(data=request.data, context={"request": request})
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with service_errors():
            reservation = reservations.reserve(
                interface_id=data["interface"],
                team=data["team"],
                user=request.user,
                purpose=data["purpose"],
                expires_at=data["expires_at"],
            )
        body = s.ReservationSerializer(self._reload(reservation), context={"request": request})
        return Response(body.data, status=status.HTTP_201_CREATED)

    @extend_schema(
        parameters=[OpenApiParameter("reason", OpenApiTypes.STR, description="Why (history).")],
        responses={200: s.ReservationSerializer, 403: s.ErrorSerializer, 409: s.ConflictSerializer},
    )
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Release the reservation (it stays readable, released, for the record)."""
        reservation = self.get_object()
        reason = request.query_params.get("reason", "") or "released"
        with service_errors():
            reservations.release(reservation_id=reservation.pk, user=request.user, reason=reason)
        return Response(s.ReservationSerializer(self._reload(reservation)).data)

    @extend_schema(
        request=s.ReservationExtendSerializer,
        responses={
            200: s.ReservationSerializer,
            400: OpenApiResponse(description="Invalid fields (per-field messages)."),
            403: s.ErrorSerializer,
            409: s.ConflictSerializer,
        },
    )
    @action(detail=True, methods=["post"])
    def extend(self, request: Request, pk: str | None = None) -> Response:
        reservation = self.get_object()
        serializer = s.ReservationExtendSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            reservations.extend(
                reservation_id=reservation.pk,
                user=request.user,
                expires_at=serializer.validated_data["expires_at"],
            )
        return Response(s.ReservationSerializer(self._reload(reservation)).data)

    def _reload(self, reservation: Reservation) -> Reservation:
        return Reservation.objects.select_related(
            "interface__node", "team", "created_by", "released_by"
        ).get(pk=reservation.pk)


def _service_module(name: str) -> Any:
    """An optional workflow module (NAD building, diagnosis) or a 501 saying it is not there."""
    full_name = f"inventory.services.{name}"
    if importlib.util.find_spec(full_name) is None:
        raise NotImplementedYet(f"{full_name} is not available in this build yet.")
    return importlib.import_module(full_name)


def _as_json(result: Any) -> Any:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    if hasattr(result, "as_dict"):
        return result.as_dict()
    return result


def _team_for(request: Request, team_name: str | None) -> Group | None:
    if team_name:
        team = Group.objects.filter(name=team_name).first()
        if team is None:
            raise ValidationError({"team": [f"No team named {team_name!r}."]})
        return team
    return request.user.groups.order_by("name").first()


NAD_BUILD_RESPONSES = {
    200: OpenApiResponse(description="The rendered NAD (config, YAML, pod snippet) and findings."),
    400: OpenApiResponse(description="Invalid fields, or findings that block."),
    501: s.ErrorSerializer,
}


class NetworkAttachmentViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """NADs seen in the cluster or applied by the portal, with their stored lint findings;
    `render` and `validate` build a NAD without side effects, `apply` creates it."""

    queryset = NetworkAttachment.objects.select_related("cluster", "applied_by").order_by(
        "namespace", "name", "id"
    )
    serializer_class = s.NetworkAttachmentSerializer
    filterset_class = filtersets.NetworkAttachmentFilterSet
    ordering_fields = ["namespace", "name", "updated_at", "id"]

    def _build(self, request: Request, function: str) -> Any:
        serializer = s.NadRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        nads = _service_module("nads")
        data = dict(serializer.validated_data)
        team = _team_for(request, data.pop("team", None))
        with service_errors():
            return getattr(nads, function)(request_data=data, user=request.user, team=team)

    @extend_schema(request=s.NadRequestSerializer, responses=NAD_BUILD_RESPONSES)
    @action(detail=False, methods=["post"])
    def render(self, request: Request) -> Response:
        return Response(_as_json(self._build(request, "render")))

    @extend_schema(request=s.NadRequestSerializer, responses=NAD_BUILD_RESPONSES)
    @action(detail=False, methods=["post"])
    def validate(self, request: Request) -> Response:
        # Same build as render; the caller looks at `findings` only. No side effects either.
        return Response(_as_json(self._build(request, "render")))

    @extend_schema(
        request=s.NadRequestSerializer,
        responses={
            **NAD_BUILD_RESPONSES,
            201: OpenApiResponse(description="Applied."),
            409: s.ConflictSerializer,
        },
    )
    @action(detail=False, methods=["post"])
    def apply(self, request: Request) -> Response:
        return Response(_as_json(self._build(request, "apply")), status=status.HTTP_201_CREATED)


class PodAttachmentViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = PodAttachment.objects.select_related("cluster", "node").order_by(
        "namespace", "pod_name", "pod_interface", "id"
    )
    serializer_class = s.PodAttachmentSerializer
    filterset_class = filtersets.PodAttachmentFilterSet
    ordering_fields = ["namespace", "pod_name", "updated_at", "id"]


class HistoryViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = HistoryEntry.objects.select_related("node", "actor", "team").order_by("-at", "-id")
    serializer_class = s.HistoryEntrySerializer
    filterset_class = filtersets.HistoryFilterSet
    ordering_fields = ["at", "id"]


class PodDiagnosisView(APIView):
    """Why a pod's host-device attachment failed (or would fail), from the stored facts."""

    @extend_schema(
        responses={
            200: OpenApiResponse(description="The diagnosis."),
            404: s.ErrorSerializer,
            501: s.ErrorSerializer,
        }
    )
    def get(self, request: Request, namespace: str, name: str) -> Response:
        diagnosis = _service_module("diagnosis")
        with service_errors():
            result = diagnosis.diagnose(namespace=namespace, name=name, user=request.user)
        return Response(_as_json(result))


class TokenCreateView(APIView):
    """Create an API token for the logged-in user (session or token). The token is shown once;
    knox stores only its hash. `manage.py createtoken <username>` does the same from a shell."""

    @extend_schema(request=None, responses={201: s.TokenSerializer})
    def post(self, request: Request) -> Response:
        instance, token = AuthToken.objects.create(user=request.user, expiry=None)
        body = {
            "token": token,
            "token_key": instance.token_key,
            "user": request.user.get_username(),
            "expiry": instance.expiry,
        }
        return Response(s.TokenSerializer(body).data, status=status.HTTP_201_CREATED)
