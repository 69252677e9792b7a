"""REST viewsets: thin adapters over the models (reads) and inventory.services (writes).

Service errors become HTTP answers here, in one place (`service_errors`): ValidationError -> 400
with the field names, PermissionDenied -> 403 with its message, Conflict -> 409 naming the holder,
a missing row -> 404.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from django.conf import settings
from django.core.exceptions import ObjectDoesNotExist
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from knox.auth import TokenAuthentication
from knox.models import AuthToken
from rest_framework import filters, mixins, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.exceptions import APIException, NotFound, PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from inventory.api import serializers as s
from inventory.api.auth import ThrottledBasicAuthentication
from inventory.api.fields import field_names, fields_pattern, selected_fields
from inventory.api.pagination import BoundedLimitOffsetPagination, InterfacePagination
from inventory.api.query import InterfaceSortFilter, StrictDjangoFilterBackend, requested_sort
from inventory.api.schema import ApiAutoSchema
from inventory.clients.cluster import ClusterError
from inventory.models import (
    Cluster,
    HistoryEntry,
    Interface,
    NetworkAttachment,
    Node,
    PodAttachment,
    Reservation,
    TeamNamespace,
)
from inventory.read import exports, filtersets, pages
from inventory.services import diagnosis, nads, reservations, teams, tokens
from inventory.services.errors import Conflict


class ConflictError(APIException):
    status_code = status.HTTP_409_CONFLICT
    default_detail = "Conflict."
    default_code = "conflict"

    def __init__(self, conflict: Conflict) -> None:
        super().__init__()
        # A dict detail becomes the body as is: {"detail": ..., "holder": ...}.
        self.detail = {"detail": conflict.message, "holder": conflict.holder}


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


def field_selection_parameters(serializer_class: type) -> list[OpenApiParameter]:
    names = list(serializer_class().fields)
    return [
        OpenApiParameter(
            "fields",
            OpenApiTypes.STR,
            description="Comma-separated fields to return: " + ", ".join(names),
            pattern=fields_pattern(names),
        ),
        OpenApiParameter(
            "brief",
            OpenApiTypes.BOOL,
            description="Only " + ", ".join(serializer_class.brief_fields),
        ),
    ]


class ApiViewSetMixin:
    schema = ApiAutoSchema()
    pagination_class = BoundedLimitOffsetPagination
    filter_backends = [StrictDjangoFilterBackend, filters.OrderingFilter]
    # Any id-shaped segment reaches the view, so `/interfaces/abc/` is a JSON 404 like
    # `/interfaces/999/`, not Django's HTML page. Control characters excepted: they are a 400
    # before routing (nicportal.middleware), and the schema's pattern says so.
    lookup_value_regex = "[^/\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]+"

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)
        serializer_class = getattr(self, "serializer_class", None)
        if request.method == "GET" and getattr(serializer_class, "selectable_fields", False):
            # Checked here, not only when rows are serialized: an empty page must 400 too.
            selected_fields(
                request.query_params,
                list(field_names(serializer_class)),
                serializer_class.brief_fields,
            )


class ClusterViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Cluster.objects.order_by("name")
    serializer_class = s.ClusterSerializer
    filterset_fields = ["name", "enabled"]
    ordering_fields = ["name", "last_sweep_at"]


@extend_schema(parameters=field_selection_parameters(s.NodeSerializer))
class NodeViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = Node.objects.select_related("cluster").order_by("cluster__name", "name")
    serializer_class = s.NodeSerializer
    filterset_class = filtersets.NodeFilterSet
    ordering_fields = ["name", "last_contact_at", "collected_at", "id"]


@extend_schema(parameters=field_selection_parameters(s.InterfaceSerializer))
class InterfaceViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """Interfaces. A list page is chosen on the interface table alone (filters, the sort's
    index, an offset over ids or a keyset cursor: read/pages.py), then only that page's rows are
    read with their node, cluster and active reservation."""

    serializer_class = s.InterfaceSerializer
    filterset_class = filtersets.InterfaceFilterSet
    filter_backends = [StrictDjangoFilterBackend, InterfaceSortFilter]
    pagination_class = InterfacePagination

    @extend_schema(
        filters=True,
        responses={(200, "text/csv"): OpenApiTypes.STR},
        description="Every interface matching the filters (not one page) as CSV: the columns "
        "of the fleet page's export, for spreadsheets. Works with a token.",
    )
    @action(detail=False, methods=["get"])
    def export(self, request: Request) -> StreamingHttpResponse:
        queryset = self.filter_queryset(Interface.objects.order_by("node__name", "name", "id"))
        return exports.interfaces_csv_response(exports.for_export(queryset))

    def perform_content_negotiation(self, request: Request, force: bool = False) -> tuple:
        # The export answers CSV itself, whatever the Accept header (a spreadsheet tool may ask
        # for text/csv); its errors (a bad filter) are JSON like every other 400 here.
        if self.action == "export":
            return JSONRenderer(), JSONRenderer.media_type
        return super().perform_content_negotiation(request, force)

    def get_queryset(self) -> QuerySet[Interface]:
        if self.action == "list":
            return Interface.objects.all()
        return pages.with_active_reservation(Interface.objects.all())

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        queryset = self.filter_queryset(self.get_queryset())
        ids = self.paginator.page_ids(queryset, request, requested_sort(request))
        rows = pages.rows_in_order(ids, pages.with_active_reservation(Interface.objects.all()))
        serializer = self.get_serializer(rows, many=True)
        return self.paginator.get_paginated_response(serializer.data)


@extend_schema_view(
    list=extend_schema(parameters=field_selection_parameters(s.ReservationSerializer)),
    retrieve=extend_schema(parameters=field_selection_parameters(s.ReservationSerializer)),
)
@extend_schema(
    parameters=[
        OpenApiParameter(
            "active",
            OpenApiTypes.STR,
            enum=["true", "false", "all"],
            description="Which reservations: active (unreleased, the default), released "
            "(`false`) or `all`.",
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
    # "all" reaches the FilterSet's boolean filter as "no value": no filtering.
    filter_extra_values = {"active": {"all"}}

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
            team = teams.acting_team(request.user, data.get("team"), required=True)
            reservation = reservations.reserve(
                interface_id=data["interface"],
                team=team,
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


def _as_json(result: Any) -> Any:
    if dataclasses.is_dataclass(result) and not isinstance(result, type):
        return dataclasses.asdict(result)
    if hasattr(result, "as_dict"):
        return result.as_dict()
    return result


def _build_result(result: Any) -> dict[str, Any]:
    return {
        "ok": result.ok,
        "nads": [dataclasses.asdict(rendered) for rendered in result.nads],
        "pod_snippet": result.pod_snippet,
        "findings": [finding.as_dict() for finding in result.findings],
    }


class NadRefusedError(APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "nad_refused"

    def __init__(self, refused: Any) -> None:
        super().__init__()
        # Per-field messages (as every 400 here) plus the findings with their stable codes.
        self.detail = {
            **refused.message_dict,
            "findings": [finding.as_dict() for finding in refused.findings],
        }


class ClusterUnavailable(APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_code = "cluster_unavailable"


@contextmanager
def _interfaces_field() -> Iterator[None]:
    """The services name the NAD request's interfaces `interface_ids`; this API's field is
    `interfaces`: a 400 names the field the caller sent."""
    try:
        yield
    except DjangoValidationError as exc:
        if not hasattr(exc, "error_dict") or "interface_ids" not in exc.error_dict:
            raise
        messages = exc.message_dict
        messages["interfaces"] = messages.pop("interface_ids") + messages.get("interfaces", [])
        raise DjangoValidationError(messages) from None


@extend_schema_view(
    list=extend_schema(parameters=field_selection_parameters(s.NetworkAttachmentSerializer)),
    retrieve=extend_schema(parameters=field_selection_parameters(s.NetworkAttachmentSerializer)),
)
class NetworkAttachmentViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    """NADs seen in the cluster or applied by the portal, with their stored lint findings;
    `render` and `validate` build a NAD without side effects, `apply` creates it."""

    queryset = NetworkAttachment.objects.select_related("cluster", "applied_by").order_by(
        "namespace", "name", "id"
    )
    serializer_class = s.NetworkAttachmentSerializer
    filterset_class = filtersets.NetworkAttachmentFilterSet
    ordering_fields = ["namespace", "name", "updated_at", "id"]

    def _build(self, request: Request, workflow: Callable[..., Any]) -> Any:
        """Run nads.render or nads.apply for the request body: the serializer's `interfaces`
        are the service's `interface_ids` ("node/name" looked up in its `cluster`), its `team`
        the acting-team rule's name."""
        serializer = s.NadRequestSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        name = data.pop("team", None)
        with service_errors(), _interfaces_field():
            data["interface_ids"] = nads.interface_ids(
                data.pop("interfaces"), cluster=data.get("cluster", "")
            )
            team = teams.acting_team(request.user, name, required=False)
            try:
                return workflow(user=request.user, team=team, **data)
            # Before service_errors sees it: NadRefused is a ValidationError carrying findings.
            except nads.NadRefused as refused:
                raise NadRefusedError(refused) from None
            except ClusterError as exc:
                raise ClusterUnavailable(f"The cluster did not accept the NAD: {exc}") from None

    @extend_schema(request=s.NadRequestSerializer, responses={200: s.BuildResultSerializer})
    @action(detail=False, methods=["post"])
    def render(self, request: Request) -> Response:
        """Render the NAD(s), YAML and pod snippet for a request; nothing is created. A request
        with blocking findings still answers 200, with `ok: false`."""
        return Response(_build_result(self._build(request, nads.render)))

    @extend_schema(request=s.NadRequestSerializer, responses={200: s.ValidationResultSerializer})
    @action(detail=False, methods=["post"])
    def validate(self, request: Request) -> Response:
        """The findings of a request only (the same dry run as render)."""
        result = self._build(request, nads.render)
        return Response(
            {"ok": result.ok, "findings": [finding.as_dict() for finding in result.findings]}
        )

    @extend_schema(
        request=s.NadRequestSerializer,
        responses={
            201: s.NetworkAttachmentSerializer(many=True),
            409: s.ConflictSerializer,
            503: s.ErrorSerializer,
        },
    )
    @action(detail=False, methods=["post"])
    def apply(self, request: Request) -> Response:
        """Create the NAD(s) in the cluster and store them. Blocking findings answer 400 with
        the per-field messages and `findings`; a NAD of that name already there answers 409."""
        created = self._build(request, nads.apply)
        body = s.NetworkAttachmentSerializer(created, many=True).data
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema_view(
    list=extend_schema(parameters=field_selection_parameters(s.PodAttachmentSerializer)),
    retrieve=extend_schema(parameters=field_selection_parameters(s.PodAttachmentSerializer)),
)
class PodAttachmentViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = PodAttachment.objects.select_related("cluster", "node").order_by(
        "namespace", "pod_name", "pod_interface", "id"
    )
    serializer_class = s.PodAttachmentSerializer
    filterset_class = filtersets.PodAttachmentFilterSet
    ordering_fields = ["namespace", "pod_name", "updated_at", "id"]


@extend_schema_view(
    list=extend_schema(parameters=field_selection_parameters(s.HistoryEntrySerializer)),
    retrieve=extend_schema(parameters=field_selection_parameters(s.HistoryEntrySerializer)),
)
class HistoryViewSet(ApiViewSetMixin, viewsets.ReadOnlyModelViewSet):
    queryset = HistoryEntry.objects.select_related("node__cluster", "actor", "team").order_by(
        "-at", "-id"
    )
    serializer_class = s.HistoryEntrySerializer
    filterset_class = filtersets.HistoryFilterSet
    ordering_fields = ["at", "id"]


class PodDiagnosisView(APIView):
    """Why a pod's host-device attachment failed (or would fail): the pod, its events and NADs
    from its cluster's API (`?cluster=NAME`, the default cluster without it), the NICs from that
    cluster's inventory. A pod that does not exist, or a cluster that does not answer, is a
    diagnosis too, with its code: 404 POD_NOT_FOUND for a pod the cluster does not have, 200
    otherwise; a cluster nobody registered is a 400 on `cluster`."""

    schema = ApiAutoSchema()

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "cluster",
                OpenApiTypes.STR,
                description="The pod's cluster (its registry name); the default cluster if "
                "absent or empty.",
                pattern=r"^([a-z0-9]([a-z0-9.-]*[a-z0-9])?)?$",
            )
        ],
        responses={
            200: s.DiagnosisSerializer,
            400: OpenApiResponse(description="`cluster` names no registered cluster."),
            404: s.DiagnosisSerializer,
        },
    )
    def get(self, request: Request, namespace: str, name: str) -> Response:
        if len(request.query_params.getlist("cluster")) > 1:
            raise ValidationError({"cluster": ["Give this parameter once."]})
        cluster = request.query_params.get("cluster", "")
        with service_errors():
            result = diagnosis.diagnose(
                namespace=namespace, name=name, cluster=cluster, user=request.user
            )
            where = cluster or settings.CLUSTER_NAME
        body = {**_as_json(result), "cluster": where}
        if result.code == "POD_NOT_FOUND":
            return Response(body, status=status.HTTP_404_NOT_FOUND)
        return Response(body)


class TokenViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """Your own API tokens. Create one with your password (HTTP Basic), a session or another
    token; the answer is the only time the token is shown (knox stores its hash). Every token
    expires (`expires_in_days`, default 30). DELETE revokes it at once. The same as the token
    page and `manage.py createtoken`."""

    authentication_classes = [
        ThrottledBasicAuthentication,
        TokenAuthentication,
        SessionAuthentication,
    ]
    serializer_class = s.TokenListSerializer
    lookup_field = "token_key"
    filter_backends: list[type] = []
    ordering_fields: list[str] = []

    def get_queryset(self) -> QuerySet[AuthToken]:
        return tokens.valid_tokens(self.request.user)

    @extend_schema(request=s.TokenCreateSerializer, responses={201: s.TokenSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        serializer = s.TokenCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            created = tokens.create(user=request.user, **serializer.validated_data)
        body = s.TokenSerializer(dataclasses.asdict(created)).data
        return Response(body, status=status.HTTP_201_CREATED)

    @extend_schema(responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Revoke the token: it stops authenticating at once."""
        with service_errors():
            tokens.revoke(user=request.user, token_key=kwargs["token_key"])
        return Response(status=status.HTTP_204_NO_CONTENT)


class TeamNamespaceViewSet(
    ApiViewSetMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.DestroyModelMixin,
    viewsets.GenericViewSet,
):
    """The namespaces (names or shell patterns such as `ml-*`) of each team: where its pods may
    take its reserved NICs and where its members may apply NADs (staff apply anywhere). Members
    read their own teams' namespaces, staff every team's; only staff add or remove them (the
    same as the admin and `manage.py teamnamespaces`)."""

    serializer_class = s.TeamNamespaceSerializer
    filterset_class = filtersets.TeamNamespaceFilterSet
    ordering_fields = ["pattern", "id"]

    def get_queryset(self) -> QuerySet[TeamNamespace]:
        queryset = TeamNamespace.objects.select_related("team").order_by("team__name", "pattern")
        return queryset.filter(team__in=teams.teams_for(self.request.user))

    @extend_schema(
        request=s.TeamNamespaceCreateSerializer,
        responses={
            200: s.TeamNamespaceSerializer,
            201: s.TeamNamespaceSerializer,
            403: s.ErrorSerializer,
        },
    )
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Give a team a namespace (staff only). 201 when added, 200 when the team had it."""
        serializer = s.TeamNamespaceCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with service_errors():
            teams.check_manage_namespaces(request.user)
            team = teams.team_named(data["team"])
            had = TeamNamespace.objects.filter(team=team, pattern=data["pattern"]).exists()
            teams.add_namespaces(team=team, patterns=[data["pattern"]], by=request.user)
        row = self.get_queryset().get(team=team, pattern=data["pattern"])
        return Response(
            s.TeamNamespaceSerializer(row).data,
            status=status.HTTP_200_OK if had else status.HTTP_201_CREATED,
        )

    @extend_schema(responses={204: None, 403: s.ErrorSerializer})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """Take the namespace from its team (staff only)."""
        row = self.get_object()
        with service_errors():
            teams.remove_namespaces(team=row.team, patterns=[row.pattern], by=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
