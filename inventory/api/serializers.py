"""Serializers of the REST API. Read serializers flatten foreign keys to the names people use
(node, cluster, team, username); write serializers validate the request shape only, the workflow
rules live in inventory.services."""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from inventory.api.fields import (
    IFNAME_RULE,
    DirectReadMixin,
    InterfaceRefField,
    RuleField,
    SelectableFieldsMixin,
    StrictCharField,
    StrictIntegerField,
    StrictRegexField,
    StrictSerializer,
    pod_ifname_problem,
)
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
from inventory.rules import nad, sriov
from inventory.rules import teams as team_rules
from inventory.rules.nad import names as nad_names
from inventory.services import tokens


class ClusterSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cluster
        # credentials: where they are kept, as a kind only (Cluster.credentials), never a path.
        registry = ["id", "name", "enabled", "credentials", "unreachable_since", "api_url"]
        sweeps = ["multus_version", "last_sweep_at", "last_sweep_ok_at", "last_sweep_duration"]
        fields = [*registry, *sweeps, "last_error"]


class NodeFindingSerializer(serializers.Serializer):
    """Where the node's latest snapshot contradicts the Kubernetes API (rules/crosscheck.py)."""

    code = serializers.CharField(help_text="Stable lower_snake code, e.g. internal_ip_on_no_nic.")
    severity = serializers.ChoiceField(choices=["warning", "info"])
    message = serializers.CharField()
    kept = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="The NICs kept system against the snapshot because of it (seen before).",
    )


class NodeSerializer(DirectReadMixin, SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "name", "cluster", "ready", "stale")
    findings = NodeFindingSerializer(many=True, read_only=True)
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    # From the cache, as fresh as the last poll (the row is written only on health changes).
    last_contact_at = serializers.DateTimeField(
        source="last_contact", read_only=True, allow_null=True
    )

    class Meta:
        model = Node
        fields = [
            "id",
            "name",
            "cluster",
            "internal_ips",
            "external_ips",
            "labels",
            "ready",
            "in_cluster",
            "stale",
            "agent_url",
            "agent_version",
            "agent_error",
            "last_contact_at",
            "collected_at",
            "cni",
            "findings",
        ]


class InterfaceSerializer(DirectReadMixin, SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "node", "name", "state", "holder", "reserved_team", "breach")
    node = serializers.CharField(source="node_name", read_only=True)
    node_id = serializers.IntegerField(read_only=True)
    cluster = serializers.CharField(source="cluster_name", read_only=True)
    # From the active reservation (annotated by the viewset's queryset; null when none).
    reserved_team = serializers.CharField(read_only=True, allow_null=True)
    reservation = serializers.IntegerField(source="reservation_id", read_only=True, allow_null=True)
    reserved_until = serializers.DateTimeField(read_only=True, allow_null=True)
    sriov_role = serializers.ChoiceField(
        choices=[*sriov.ROLES, ""],
        read_only=True,
        help_text='"pf": SR-IOV capable (sriov_total_vfs > 0); "vf": a virtual function of the '
        'PF at pf_pci_address; "": neither.',
    )
    host_device_mode = serializers.ChoiceField(
        choices=[*sriov.HOST_DEVICE_MODES, ""],
        read_only=True,
        help_text="What host-device does with it when a NAD selects it by pciBusID: "
        + "; ".join(f'"{mode}": {text}' for mode, text in sriov.HOST_DEVICE_MODES.items())
        + '; "": no PCI address.',
    )

    class Meta:
        model = Interface
        fields = [
            "id",
            "node",
            "node_id",
            "cluster",
            "name",
            "identity",
            "identity_kind",
            "state",
            "reason",
            "holder",
            "reserved_team",
            "reservation",
            "reserved_until",
            "breach",
            "state_changed_at",
            "ifindex",
            "altnames",
            "alias",
            "mac",
            "permanent_mac",
            "kind",
            "driver",
            "pci_address",
            "vendor_id",
            "device_id",
            "speed_mbps",
            "mtu",
            "operstate",
            "carrier",
            "numa_node",
            "sriov_total_vfs",
            "sriov_num_vfs",
            "sriov_role",
            "pf",
            "pf_pci_address",
            "vf_index",
            "host_device_mode",
            "master",
            "master_kind",
            "wireless",
            "addresses",
            "default_route_v4",
            "default_route_v6",
            "has_netdev",
            "present",
            "first_seen_at",
            "last_seen_at",
        ]


class ReservationSerializer(DirectReadMixin, SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "interface", "node", "interface_name", "team", "expires_at", "active")
    interface_name = serializers.CharField(source="interface.name", read_only=True)
    identity = serializers.CharField(source="interface.identity", read_only=True)
    node = serializers.CharField(source="interface.node.name", read_only=True)
    team = serializers.CharField(source="team.name", read_only=True)
    created_by = serializers.CharField(source="created_by.username", read_only=True)
    released_by = serializers.CharField(
        source="released_by.username", read_only=True, allow_null=True
    )
    active = serializers.BooleanField(read_only=True)

    class Meta:
        model = Reservation
        fields = [
            "id",
            "interface",
            "interface_name",
            "identity",
            "node",
            "team",
            "created_by",
            "purpose",
            "starts_at",
            "expires_at",
            "active",
            "released_at",
            "released_by",
            "release_reason",
        ]
        read_only_fields = fields


class ReservationCreateSerializer(StrictSerializer):
    interface = StrictIntegerField(
        min_value=1, max_value=2**63 - 1, help_text="Id of the interface to reserve."
    )
    team = StrictCharField(
        required=False,
        min_length=1,
        max_length=150,
        help_text="Team (group) name to reserve for; may be omitted when you are in one team "
        "(services.teams).",
    )
    purpose = StrictCharField(
        min_length=1, max_length=500, help_text="What the NIC is reserved for."
    )
    expires_at = serializers.DateTimeField(help_text="End of the reservation (in the future).")


class ReservationExtendSerializer(StrictSerializer):
    expires_at = serializers.DateTimeField(help_text="New end, later than the current one.")


class NetworkAttachmentSerializer(
    DirectReadMixin, SelectableFieldsMixin, serializers.ModelSerializer
):
    brief_fields = ("id", "cluster", "namespace", "name", "origin", "in_cluster")
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    applied_by = serializers.CharField(
        source="applied_by.username", read_only=True, allow_null=True
    )

    class Meta:
        model = NetworkAttachment
        fields = [
            "id",
            "cluster",
            "namespace",
            "name",
            "uid",
            "config",
            "resource_name",
            "annotations",
            "origin",
            "in_cluster",
            "findings",
            "applied_by",
            "first_seen_at",
            "updated_at",
        ]


DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
POD_IFNAME = r"^[A-Za-z0-9_.-]{1,15}$"


class NadRequestSerializer(StrictSerializer):
    """What the NAD builder needs (inventory.services.nads): where the NAD goes, which host
    NICs it may hand to pods (one per node; pod placement follows from their nodes), how
    host-device finds the device, and the pod side (interface name, IPAM)."""

    namespace = RuleField(
        DNS_LABEL,
        max_length=63,
        what="a DNS-1123 label",
        rule=nad_names.DNS1123_LABEL_RULE,
        problem=nad_names.dns1123_label_problem,
    )
    name = RuleField(
        DNS_SUBDOMAIN,
        max_length=253,
        what="a DNS-1123 subdomain",
        rule=nad_names.DNS1123_SUBDOMAIN_RULE,
        problem=nad_names.dns1123_subdomain_problem,
    )
    interfaces = serializers.ListField(
        child=InterfaceRefField(),
        min_length=1,
        max_length=64,
        help_text="The host interfaces (one per node) the NAD may hand to pods: ids, or "
        '"node/name" such as ["n1/eth3", "n2/eth3"].',
    )
    selector = serializers.ChoiceField(
        choices=["auto", *nad.SELECTORS],
        required=False,
        default="auto",
        help_text="How host-device finds the device; auto picks what the plugin supports.",
    )
    pod_interface = RuleField(
        POD_IFNAME,
        required=False,
        default="net1",
        max_length=15,
        what="a pod interface name",
        rule=IFNAME_RULE,
        problem=pod_ifname_problem,
    )
    other_pod_interfaces = serializers.ListField(
        child=RuleField(
            POD_IFNAME,
            max_length=15,
            what="a pod interface name",
            rule=IFNAME_RULE,
            problem=pod_ifname_problem,
        ),
        required=False,
        max_length=32,
        help_text="Pod interfaces of the pod's other attachments (eth0 is always assumed).",
    )
    ipam = serializers.DictField(
        required=False,
        default=dict,
        help_text="IPAM: type (none, static, host-local, whereabouts, dhcp), addresses, "
        "gateway, routes, subnet, range_start, range_end, range, exclude; CNI's own shapes "
        'too: addresses [{"address": "192.0.2.10/24", "gateway": ...}], routes '
        '[{"dst": ..., "gw": ...}], host-local ranges [[{"subnet": ..., "rangeStart": ...}]].',
    )
    cni_version = StrictCharField(required=False, allow_blank=True, max_length=20, default="auto")
    resource_name = StrictCharField(required=False, allow_blank=True, max_length=253)
    team = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=150,
        help_text="Team acting (reserved NICs are offered to their team only); empty or "
        "absent: your only team, none if you are in no team; in several teams, name one.",
    )
    cluster = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=100,
        help_text="The cluster the NAD goes into (its registry name): the NICs must be of it, "
        '"node/name" references are looked up in it. Empty or absent: the NICs\' own cluster '
        "(the default cluster for names). NICs of two clusters in one NAD are refused.",
    )


class FindingSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable UPPER_SNAKE code.")
    severity = serializers.ChoiceField(choices=["error", "warning", "info"])
    field = serializers.CharField()
    message = serializers.CharField()
    fix = serializers.CharField()


class RenderedNadSerializer(serializers.Serializer):
    namespace = serializers.CharField()
    name = serializers.CharField()
    nodes = serializers.ListField(child=serializers.CharField())
    config = serializers.DictField()
    config_json = serializers.CharField()
    manifest = serializers.DictField()
    yaml = serializers.CharField()
    annotations = serializers.DictField()
    pod_snippet = serializers.CharField()


class BuildResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField(help_text="False when a finding of severity error blocks.")
    nads = RenderedNadSerializer(many=True)
    pod_snippet = serializers.CharField()
    findings = FindingSerializer(many=True)


class ValidationResultSerializer(serializers.Serializer):
    ok = serializers.BooleanField()
    findings = FindingSerializer(many=True)


class PodAttachmentSerializer(DirectReadMixin, SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "namespace", "pod_name", "node", "nad_namespace", "nad_name", "status")
    cluster = serializers.CharField(source="cluster.name", read_only=True)
    node = serializers.CharField(source="node.name", read_only=True, allow_null=True)

    class Meta:
        model = PodAttachment
        fields = [
            "id",
            "cluster",
            "namespace",
            "pod_name",
            "pod_uid",
            "node",
            "nad_namespace",
            "nad_name",
            "pod_interface",
            "mac",
            "interface",
            "status",
            "error",
            "first_seen_at",
            "updated_at",
        ]


class HistoryEntrySerializer(DirectReadMixin, SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "at", "kind", "node", "message")
    node = serializers.CharField(source="node.name", read_only=True, allow_null=True)
    cluster = serializers.CharField(source="node.cluster.name", read_only=True, allow_null=True)
    actor = serializers.CharField(source="actor.username", read_only=True, allow_null=True)
    team = serializers.CharField(source="team.name", read_only=True, allow_null=True)

    class Meta:
        model = HistoryEntry
        fields = [
            "id",
            "at",
            "kind",
            "interface",
            "node",
            "cluster",
            "actor",
            "team",
            "old_state",
            "new_state",
            "message",
            "data",
        ]


class TokenSerializer(serializers.Serializer):
    """A token just created: the only answer that carries the secret."""

    token = serializers.CharField(read_only=True, help_text="Shown once; stored hashed.")
    token_key = serializers.CharField(
        read_only=True, help_text="First characters: names the token in lists and URLs."
    )
    user = serializers.CharField(read_only=True)
    note = serializers.CharField(read_only=True)
    created = serializers.DateTimeField(read_only=True)
    expiry = serializers.DateTimeField(read_only=True)


class TokenCreateSerializer(StrictSerializer):
    note = StrictCharField(
        required=False,
        allow_blank=True,
        max_length=tokens.NOTE_MAX_LENGTH,
        help_text="What the token is for.",
    )
    expires_in_days = StrictIntegerField(
        required=False,
        min_value=1,
        max_value=tokens.MAX_DAYS,
        default=tokens.DEFAULT_DAYS,
        help_text=f"Lifetime in days (default {tokens.DEFAULT_DAYS}).",
    )


class TokenListSerializer(serializers.Serializer):
    """A token as lists show it: never the secret."""

    token_key = serializers.CharField(read_only=True)
    note = serializers.SerializerMethodField()
    created = serializers.DateTimeField(read_only=True)
    expiry = serializers.DateTimeField(read_only=True, allow_null=True)
    current = serializers.SerializerMethodField(
        help_text="True for the token this request authenticated with."
    )

    def get_note(self, token: Any) -> str:
        return tokens.note_of(token)

    def get_current(self, token: Any) -> bool:
        request = self.context.get("request")
        auth = getattr(request, "auth", None)
        return getattr(auth, "digest", None) == token.digest


class DiagnosisSerializer(serializers.Serializer):
    cluster = serializers.CharField(help_text="The cluster whose API and inventory were read.")
    code = serializers.CharField(help_text="Stable UPPER_SNAKE code.")
    severity = serializers.ChoiceField(choices=["ok", "pending", "error"])
    title = serializers.CharField()
    explanation = serializers.CharField()
    namespace = serializers.CharField()
    pod = serializers.CharField()
    node = serializers.CharField()
    attachment = serializers.CharField(help_text='"ns/nad@ifname", "" for the pod as a whole.')
    evidence = serializers.ListField(child=serializers.DictField())
    fix = serializers.DictField(allow_null=True)


class ConflictSerializer(serializers.Serializer):
    detail = serializers.CharField()
    holder = serializers.CharField(allow_null=True)


class ErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()


class TeamNamespaceSerializer(serializers.ModelSerializer):
    """A namespace (name or shell pattern) of a team: where the team's pods may take its
    reserved NICs and where its members may apply NADs."""

    team = serializers.CharField(source="team.name", read_only=True)

    class Meta:
        model = TeamNamespace
        fields = ["id", "team", "pattern"]


class TeamNamespaceCreateSerializer(StrictSerializer):
    team = StrictCharField(min_length=1, max_length=150, help_text="Team (group) name.")
    pattern = StrictRegexField(
        team_rules.NAMESPACE_PATTERN.pattern,
        max_length=63,
        help_text="A namespace name, or a shell pattern such as 'ml-*' (* ? [] allowed).",
        error_messages={
            "invalid": f"Not a namespace name or pattern: {team_rules.PATTERN_RULE}.",
            "blank": f"Empty: {team_rules.PATTERN_RULE}.",
        },
    )

    def validate_pattern(self, value: str) -> str:
        problem = team_rules.pattern_problem(value)
        if problem:
            raise serializers.ValidationError(problem)
        return value
