"""One FilterSet per model: the same filters serve the htmx list views, the DRF viewsets and the
tests, so a URL query string means the same thing in the browser and in the API.

Filter names are part of the public contract (README / API docs):
interfaces: node, name, cluster, state (repeatable), driver, speed_mbps, speed_min, pci (prefix),
team (team holding an active reservation), present, kind, breach (a reserved NIC in another
team's pod), sriov (pf, vf or none), pf (the VFs of the PF at this PCI address), q (free text).
team-namespaces: team, pattern. Every list that holds rows of several clusters takes `cluster` (a
cluster's name): interfaces, nodes, reservations, reservation requests (the cluster asked), history,
attachments, NADs.
"""

from __future__ import annotations

import datetime

import django_filters
from django import forms
from django.conf import settings
from django.db.models import Q, QuerySet

from inventory.choices import (
    AttachmentStatus,
    HistoryKind,
    NadOrigin,
    OwnershipState,
    RequestOutcome,
)
from inventory.models import (
    HistoryEntry,
    Interface,
    NetworkAttachment,
    Node,
    PodAttachment,
    Reservation,
    ReservationRequest,
    TeamNamespace,
)
from inventory.queries import sriov_role_q


class InterfaceFilterSet(django_filters.FilterSet):
    # node_name is the interface row's copy of its node's name: no join, and the sort indexes
    # lead with it.
    node = django_filters.CharFilter(field_name="node_name", label="Node")
    name = django_filters.CharFilter(field_name="name", label="Interface name")
    cluster = django_filters.CharFilter(field_name="node__cluster__name", label="Cluster")
    # distinct=False: a plain column, no join, and DISTINCT over 80k rows would defeat the index.
    state = django_filters.MultipleChoiceFilter(
        choices=OwnershipState.choices, label="State", distinct=False
    )
    driver = django_filters.CharFilter(field_name="driver", label="Driver")
    speed_mbps = django_filters.NumberFilter(field_name="speed_mbps", label="Speed (Mb/s)")
    speed_min = django_filters.NumberFilter(
        field_name="speed_mbps", lookup_expr="gte", label="Speed at least (Mb/s)"
    )
    # Prefix match so that "0000:3b:" finds every function of one device or bus.
    pci = django_filters.CharFilter(
        field_name="pci_address", lookup_expr="istartswith", label="PCI prefix"
    )
    team = django_filters.CharFilter(method="filter_team", label="Reserved by team")
    present = django_filters.BooleanFilter(field_name="present", label="Present on the node")
    kind = django_filters.CharFilter(field_name="kind", label="Link kind")
    breach = django_filters.BooleanFilter(
        method="filter_breach", label="Reservation breach (reserved, in another team's pod)"
    )
    sriov = django_filters.ChoiceFilter(
        choices=[
            ("pf", "pf: SR-IOV capable PF"),
            ("vf", "vf: SR-IOV virtual function"),
            ("none", "none: neither"),
        ],
        method="filter_sriov",
        label="SR-IOV role",
    )
    pf = django_filters.CharFilter(
        field_name="pf_pci_address", lookup_expr="iexact", label="VFs of the PF at this PCI address"
    )
    q = django_filters.CharFilter(method="filter_text", label="Search")

    class Meta:
        model = Interface
        fields = [
            "node",
            "name",
            "cluster",
            "state",
            "driver",
            "speed_mbps",
            "speed_min",
            "pci",
            "team",
            "present",
            "kind",
            "breach",
            "sriov",
            "pf",
            "q",
        ]

    def filter_sriov(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        return queryset.filter(sriov_role_q(value))

    def filter_breach(self, queryset: QuerySet, name: str, value: bool) -> QuerySet:
        # Typed `bool` so that the OpenAPI schema says boolean (django-filter never calls a
        # method filter with an empty value).
        return queryset.exclude(breach="") if value else queryset.filter(breach="")

    def filter_team(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        # One .filter() call, so both conditions apply to the same reservation row; at most one
        # active reservation per interface (partial unique index), so the join adds no duplicates.
        return queryset.filter(
            reservations__released_at__isnull=True, reservations__team__name=value
        )

    def filter_text(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        value = value.strip()
        if not value:
            return queryset
        return queryset.filter(
            Q(name__icontains=value)
            | Q(alias__icontains=value)
            | Q(mac__icontains=value)
            | Q(pci_address__icontains=value)
            | Q(node_name__icontains=value)
            | Q(holder__icontains=value)
            | Q(reason__icontains=value)
        )


class NodeFilterSet(django_filters.FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name", label="Cluster")
    name = django_filters.CharFilter(field_name="name", label="Name")
    stale = django_filters.BooleanFilter(field_name="stale")
    ready = django_filters.BooleanFilter(field_name="ready")
    in_cluster = django_filters.BooleanFilter(field_name="in_cluster")
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Search")

    class Meta:
        model = Node
        fields = ["cluster", "name", "stale", "ready", "in_cluster", "q"]


class ReservationFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name", label="Team")
    interface = django_filters.NumberFilter(field_name="interface_id", label="Interface id")
    node = django_filters.CharFilter(field_name="interface__node__name", label="Node")
    cluster = django_filters.CharFilter(field_name="interface__node__cluster__name")
    active = django_filters.BooleanFilter(
        field_name="released_at", lookup_expr="isnull", label="Active (not released)"
    )
    created_by = django_filters.CharFilter(field_name="created_by__username")

    class Meta:
        model = Reservation
        fields = ["team", "interface", "node", "cluster", "active", "created_by"]


class TeamNamespaceFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name", label="Team")
    pattern = django_filters.CharFilter(field_name="pattern", label="Namespace or pattern")

    class Meta:
        model = TeamNamespace
        fields = ["team", "pattern"]


class ReservationRequestFilterSet(django_filters.FilterSet):
    team = django_filters.CharFilter(field_name="team__name", label="Team")
    cluster = django_filters.CharFilter(method="filter_cluster", label="Cluster")
    outcome = django_filters.ChoiceFilter(choices=RequestOutcome.choices, label="Outcome")
    created_by = django_filters.CharFilter(field_name="created_by__username")

    class Meta:
        model = ReservationRequest
        fields = ["team", "cluster", "outcome", "created_by"]

    def filter_cluster(
        self, queryset: QuerySet[ReservationRequest], name: str, value: str
    ) -> QuerySet[ReservationRequest]:
        """The requests that asked cluster `value` (recorded in their constraints); one recorded
        without a cluster asked the default cluster."""
        asked = Q(constraints__cluster=value)
        if value == settings.CLUSTER_NAME:
            asked |= ~Q(constraints__has_key="cluster")
        return queryset.filter(asked)


class UtcIsoDateTimeField(django_filters.fields.IsoDateTimeField):
    """ISO 8601 with any offset Python accepts (up to ±23:59), handed to the database in UTC:
    PostgreSQL refuses offsets beyond ±15:59, which must be a 400, never a 500."""

    def to_python(self, value):
        value = super().to_python(value)
        if value is not None and value.tzinfo is not None:
            try:
                value = value.astimezone(datetime.UTC)
            except OverflowError:
                raise forms.ValidationError(
                    "This date and time is out of range.", code="invalid"
                ) from None
        return value


class UtcIsoDateTimeFilter(django_filters.IsoDateTimeFilter):
    field_class = UtcIsoDateTimeField


class HistoryFilterSet(django_filters.FilterSet):
    interface = django_filters.NumberFilter(field_name="interface_id", label="Interface id")
    node = django_filters.CharFilter(field_name="node__name", label="Node")
    cluster = django_filters.CharFilter(field_name="node__cluster__name", label="Cluster")
    kind = django_filters.MultipleChoiceFilter(choices=HistoryKind.choices, distinct=False)
    team = django_filters.CharFilter(field_name="team__name", label="Team")
    since = UtcIsoDateTimeFilter(field_name="at", lookup_expr="gte")
    until = UtcIsoDateTimeFilter(field_name="at", lookup_expr="lt")
    q = django_filters.CharFilter(field_name="message", lookup_expr="icontains", label="Search")

    class Meta:
        model = HistoryEntry
        fields = ["interface", "node", "cluster", "kind", "team", "since", "until", "q"]


class PodAttachmentFilterSet(django_filters.FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name")
    namespace = django_filters.CharFilter(field_name="namespace")
    pod = django_filters.CharFilter(field_name="pod_name", label="Pod name")
    node = django_filters.CharFilter(field_name="node__name")
    interface = django_filters.NumberFilter(field_name="interface_id", label="Interface id")
    status = django_filters.MultipleChoiceFilter(choices=AttachmentStatus.choices, distinct=False)
    nad = django_filters.CharFilter(field_name="nad_name", label="NAD name")

    class Meta:
        model = PodAttachment
        fields = ["cluster", "namespace", "pod", "node", "interface", "status", "nad"]


class NetworkAttachmentFilterSet(django_filters.FilterSet):
    cluster = django_filters.CharFilter(field_name="cluster__name")
    namespace = django_filters.CharFilter(field_name="namespace")
    name = django_filters.CharFilter(field_name="name")
    origin = django_filters.ChoiceFilter(choices=NadOrigin.choices)
    in_cluster = django_filters.BooleanFilter(field_name="in_cluster")
    q = django_filters.CharFilter(field_name="name", lookup_expr="icontains", label="Search")

    class Meta:
        model = NetworkAttachment
        fields = ["cluster", "namespace", "name", "origin", "in_cluster", "q"]
