"""`/api/v1/reservation-requests/`: ask for capacity, not for a NIC (inventory.services.capacity).

POST creates a request: 201 when it was granted (its reservations, NADs and pod placement in the
body), 409 when it could not be met (the recorded request, whose `explanation` names the
constraint that emptied the set). A request asks one cluster: `cluster` (a registry name),
the default cluster when absent or empty; an unknown name is a 400 on `cluster` naming the known
ones. `preview/` answers what a request would get now and changes
nothing (the form's live count). List and detail are the history of requests."""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from inventory.api import fields as f
from inventory.api import serializers as s
from inventory.api.views import ApiViewSetMixin, service_errors
from inventory.choices import RequestOutcome
from inventory.models import ReservationRequest
from inventory.read import filtersets
from inventory.rules import capacity as rules
from inventory.rules.nad import names as nad_names
from inventory.services import capacity, teams

CONSTRAINT_FIELDS = (
    "count",
    "nodes",
    "label_selector",
    "min_speed_mbps",
    "driver",
    "vendor_id",
    "device_id",
    "sriov",
    "vf",
    "numa_node",
    "placement",
    "spread_nodes",
)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false only: DRF would read "yes", 1 and "on" as well."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class ConstraintsSerializer(f.StrictSerializer):
    count = f.StrictIntegerField(
        min_value=1, max_value=rules.COUNT_MAX, help_text="How many NICs (all or none)."
    )
    nodes = serializers.ListField(
        child=f.StrictCharField(min_length=1, max_length=253),
        required=False,
        max_length=1000,
        help_text="Only these nodes (names); absent or empty: any node.",
    )
    label_selector = f.StrictCharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        help_text='Node label selector, Kubernetes syntax: "rack=r12,gpu in (a100,h100),!spot".',
    )
    min_speed_mbps = f.StrictIntegerField(
        required=False, min_value=1, max_value=10_000_000, help_text="Link speed at least (Mb/s)."
    )
    driver = f.StrictCharField(required=False, allow_blank=True, max_length=64)
    vendor_id = f.StrictCharField(
        required=False, allow_blank=True, max_length=6, help_text="PCI vendor id, e.g. 0x15b3."
    )
    device_id = f.StrictCharField(
        required=False, allow_blank=True, max_length=6, help_text="PCI device id, e.g. 0x1017."
    )
    sriov = StrictBooleanField(
        required=False, help_text="true: SR-IOV capable NICs only; false: not capable only."
    )
    vf = StrictBooleanField(
        required=False,
        help_text="true: SR-IOV virtual functions only (each taken by pciBusID); false: no VFs.",
    )
    numa_node = f.StrictIntegerField(required=False, min_value=0, max_value=4096)
    placement = serializers.ChoiceField(
        choices=list(rules.PLACEMENTS),
        required=False,
        default="any",
        help_text=(
            "any; one_node: all on one node; one_numa: all on one NUMA node of one node; "
            "spread: over `spread_nodes` nodes."
        ),
    )
    spread_nodes = f.StrictIntegerField(required=False, min_value=1, max_value=rules.COUNT_MAX)
    cluster = f.StrictCharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="The cluster whose NICs are asked for (its registry name); the NADs handed "
        "back are for it. Empty or absent: the default cluster.",
    )

    def cluster_name(self) -> str:
        return (self.validated_data.get("cluster") or "").strip()

    def constraints(self) -> rules.Constraints:
        data = self.validated_data
        return rules.Constraints(
            count=data["count"],
            nodes=tuple(dict.fromkeys(data.get("nodes") or ())),
            label_selector=(data.get("label_selector") or "").strip(),
            min_speed_mbps=data.get("min_speed_mbps"),
            driver=(data.get("driver") or "").strip(),
            vendor_id=(data.get("vendor_id") or "").strip(),
            device_id=(data.get("device_id") or "").strip(),
            sriov=data.get("sriov"),
            vf=data.get("vf"),
            numa_node=data.get("numa_node"),
            placement=data.get("placement") or "any",
            spread_nodes=data.get("spread_nodes"),
        )


class RequestCreateSerializer(ConstraintsSerializer):
    team = f.StrictCharField(
        required=False,
        min_length=1,
        max_length=150,
        help_text="Team to reserve for; may be omitted when you are in one team.",
    )
    purpose = f.StrictCharField(min_length=1, max_length=500, help_text="What the NICs are for.")
    expires_at = serializers.DateTimeField(help_text="End of the reservations (in the future).")
    namespace = f.RuleField(
        s.DNS_LABEL,
        required=False,
        max_length=63,
        what="a DNS-1123 label",
        rule=nad_names.DNS1123_LABEL_RULE,
        problem=nad_names.dns1123_label_problem,
        help_text="Namespace of the NADs handed back (default: default).",
    )
    nad_name = f.RuleField(
        s.DNS_SUBDOMAIN,
        required=False,
        max_length=200,
        what="a DNS-1123 subdomain",
        rule=nad_names.DNS1123_SUBDOMAIN_RULE,
        problem=nad_names.dns1123_subdomain_problem,
        help_text="Name of the NAD handed back (default: request-<id>); -1, -2… per NIC slot.",
    )


class StepSerializer(serializers.Serializer):
    field = serializers.CharField(help_text="The request field the step comes from.")
    text = serializers.CharField()
    before = serializers.IntegerField(help_text="NICs before this step.")
    after = serializers.IntegerField(help_text="NICs left after it.")


class NearSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Interface id.")
    nic = serializers.CharField(help_text="node/interface")
    fails = serializers.ListField(child=serializers.CharField())


class PickedSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="Interface id.")
    nic = serializers.CharField(help_text="node/interface")


class PreviewSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="Whether the request would be granted now.")
    matching = serializers.IntegerField(help_text="NICs that pass every constraint.")
    picked = PickedSerializer(many=True)
    steps = StepSerializer(many=True)
    explanation = serializers.CharField(help_text="Why it cannot be met; empty when it can.")
    closest = NearSerializer(many=True)


class GrantedNicSerializer(serializers.Serializer):
    reservation = serializers.IntegerField(source="pk")
    interface = serializers.IntegerField(source="interface_id")
    node = serializers.CharField(source="interface.node_name")
    interface_name = serializers.CharField(source="interface.name")
    active = serializers.BooleanField()


class RenderedSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()
    nodes = serializers.ListField(child=serializers.CharField())
    yaml = serializers.CharField()


class ReservationRequestSerializer(f.SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "team", "cluster", "count", "outcome", "created_at")
    team = serializers.CharField(source="team.name", read_only=True)
    cluster = serializers.SerializerMethodField(help_text="The cluster the request asked.")
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    steps = StepSerializer(many=True, read_only=True)
    closest = NearSerializer(many=True, read_only=True)
    nics = GrantedNicSerializer(source="reservations", many=True, read_only=True)
    nads = RenderedSerializer(many=True, read_only=True)
    constraints = serializers.DictField(read_only=True)
    nad_findings = serializers.ListField(child=serializers.DictField(), read_only=True)

    class Meta:
        model = ReservationRequest
        fields = [
            "id",
            "team",
            "cluster",
            "created_by",
            "created_at",
            "purpose",
            "expires_at",
            "count",
            "constraints",
            "outcome",
            "explanation",
            "steps",
            "closest",
            "nics",
            "namespace",
            "nad_name",
            "nads",
            "pod_snippet",
            "nad_findings",
        ]
        read_only_fields = fields

    def get_cluster(self, obj: ReservationRequest) -> str:
        return capacity.request_cluster(obj)


def preview_body(match: rules.Match) -> dict[str, Any]:
    return {
        "ok": match.ok,
        "matching": match.matched,
        "picked": [{"id": n.id, "nic": n.label} for n in match.picked],
        "steps": [step.as_dict() for step in match.steps],
        "explanation": match.explanation,
        "closest": [near.as_dict() for near in match.closest],
    }


class ReservationRequestViewSet(
    ApiViewSetMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Reservation requests, granted and refused. Everyone may read them; making one needs the
    team's membership, as a single reservation does."""

    serializer_class = ReservationRequestSerializer
    filterset_class = filtersets.ReservationRequestFilterSet
    ordering_fields = ["created_at", "id"]

    def get_queryset(self) -> QuerySet[ReservationRequest]:
        return (
            ReservationRequest.objects.select_related("team", "created_by")
            .prefetch_related("reservations__interface")
            .order_by("-created_at", "-id")
        )

    @extend_schema(
        request=RequestCreateSerializer,
        responses={
            201: ReservationRequestSerializer,
            400: OpenApiResponse(description="Invalid fields (per-field messages)."),
            403: s.ErrorSerializer,
            409: OpenApiResponse(
                ReservationRequestSerializer,
                description="Cannot be met: nothing reserved; `explanation` says why.",
            ),
        },
    )
    def create(self, request: Request) -> Response:
        serializer = RequestCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        with service_errors():
            team = teams.acting_team(request.user, data.get("team"), required=True)
            made = capacity.submit(
                user=request.user,
                team=team,
                constraints=serializer.constraints(),
                purpose=data["purpose"],
                expires_at=data["expires_at"],
                namespace=data.get("namespace", ""),
                nad_name=data.get("nad_name", ""),
                cluster=serializer.cluster_name(),
            )
        body = ReservationRequestSerializer(self.get_queryset().get(pk=made.pk)).data
        granted = made.outcome == RequestOutcome.GRANTED
        return Response(
            body, status=status.HTTP_201_CREATED if granted else status.HTTP_409_CONFLICT
        )

    @extend_schema(
        request=ConstraintsSerializer,
        responses={
            200: PreviewSerializer,
            400: OpenApiResponse(description="Invalid fields (per-field messages)."),
        },
    )
    @action(detail=False, methods=["post"])
    def preview(self, request: Request) -> Response:
        """What the request would get now (nothing is reserved): the NICs that match, the count
        after each constraint, and, when it cannot be met, why and the closest NICs."""
        serializer = ConstraintsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        with service_errors():
            match = capacity.preview(serializer.constraints(), serializer.cluster_name())
        return Response(preview_body(match))

    @extend_schema(
        request=None,
        parameters=[OpenApiParameter("reason", OpenApiTypes.STR, description="Why (history).")],
        responses={
            200: ReservationRequestSerializer,
            403: s.ErrorSerializer,
            404: OpenApiResponse(description="No such request."),
            409: s.ConflictSerializer,
        },
    )
    @action(detail=True, methods=["post"])
    def release(self, request: Request, pk: str | None = None) -> Response:
        """Release every NIC the request still holds, all or none (409 when it holds none: refused
        or all released already). The reservations stay readable, released, for the record."""
        made = self.get_object()
        reason = request.query_params.get("reason", "") or "released"
        with service_errors():
            capacity.release(request_id=made.pk, user=request.user, reason=reason)
        return Response(ReservationRequestSerializer(self.get_queryset().get(pk=made.pk)).data)
