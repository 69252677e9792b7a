"""Serializers of the REST API. Read serializers flatten foreign keys to the names people use
(node, cluster, team, username); write serializers validate the request shape only, the workflow
rules live in inventory.services."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

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
from inventory.rules import nad
from inventory.rules import teams as team_rules
from inventory.rules.nad import names as nad_names
from inventory.services import tokens

TRUE_VALUES = {"true"}
FALSE_VALUES = {"false"}


class SelectableFieldsMixin:
    """`?fields=a,b` keeps only the named fields, `?brief=1` keeps `brief_fields`: listing 80k
    interfaces with every fact is megabytes nobody reads. Applies to GET requests only."""

    selectable_fields = True
    brief_fields: tuple[str, ...] = ("id",)

    def get_fields(self) -> dict[str, serializers.Field]:
        fields = super().get_fields()
        request = self.context.get("request")
        if request is None or request.method != "GET":
            return fields
        wanted = selected_fields(request.query_params, list(fields), self.brief_fields)
        if wanted is None:
            return fields
        return {name: field for name, field in fields.items() if name in wanted}


def selected_fields(
    params: Any, available: list[str], brief_fields: tuple[str, ...]
) -> list[str] | None:
    """The field names a request asks for, None for all. Raises a 400 naming unknown fields."""
    raw_fields = params.get("fields")
    raw_brief = params.get("brief")
    brief = False
    if raw_brief is not None:
        if raw_brief.lower() not in TRUE_VALUES | FALSE_VALUES:
            raise serializers.ValidationError({"brief": ["Use true or false."]})
        brief = raw_brief.lower() in TRUE_VALUES
    if raw_fields is not None:
        names = [name.strip() for name in raw_fields.split(",") if name.strip()]
        unknown = sorted(set(names) - set(available))
        if unknown or not names:
            raise serializers.ValidationError(
                {
                    "fields": [
                        f"Unknown field(s) {', '.join(unknown)}; known: {', '.join(available)}."
                    ]
                }
            )
        return names
    if brief:
        return list(brief_fields)
    return None


def fields_pattern(names: list[str]) -> str:
    """The regular expression of a comma-separated list of these field names (for the schema)."""
    choice = "|".join(re.escape(name) for name in names)
    return f"^({choice})(,({choice}))*$"


class StrictStringMixin:
    """JSON strings only: DRF would turn `0` into "0", which the schema says is a bad request."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictCharField(StrictStringMixin, serializers.CharField):
    pass


class StrictRegexField(StrictStringMixin, serializers.RegexField):
    default_error_messages = {"invalid": "Not a valid string of the expected form."}


class RuleField(StrictRegexField):
    """A string held to a named rule (a DNS-1123 label, an interface name…): a 400 says which
    rule, what it is, and what is wrong with this value. The regex stays for the schema."""

    def __init__(
        self, regex: str, *, what: str, rule: str, problem: Callable[[str], str | None], **kwargs
    ) -> None:
        self.what, self.rule, self.problem = what, rule, problem
        kwargs.setdefault("error_messages", {})
        kwargs["error_messages"].setdefault("blank", f"Empty: {rule}.")
        super().__init__(regex, **kwargs)

    def to_internal_value(self, data: Any) -> str:
        value = super().to_internal_value(data)
        why = self.problem(value)
        if why:
            raise serializers.ValidationError(f"Not {self.what}: {why}; {self.rule}.")
        return value


IFNAME_RULE = "a pod interface name is 1 to 15 letters, digits, '_', '.' or '-', e.g. \"net1\""


def pod_ifname_problem(value: str) -> str | None:
    """Why `value` is not a pod interface name as the API takes it (ASCII letters, digits, '_',
    '.', '-'; at most 15), None when it is one."""
    if len(value) > nad_names.IFNAME_MAX:
        return f"it is {len(value)} characters long (at most {nad_names.IFNAME_MAX})"
    bad = sorted({c for c in value if not (c.isascii() and (c.isalnum() or c in "_.-"))})
    if bad:
        return "it contains " + ", ".join(json.dumps(c) for c in bad[:5])
    return None if value else "it is empty"


NODE_INTERFACE = r"^[^/\s\x00-\x1f\x7f]{1,253}/[^/\s\x00-\x1f\x7f]{1,64}$"
_NODE_INTERFACE = re.compile(NODE_INTERFACE)


@extend_schema_field(
    {
        "oneOf": [
            {"type": "integer", "minimum": 1, "maximum": 2**63 - 1},
            {"type": "string", "pattern": NODE_INTERFACE, "maxLength": 318},
        ]
    }
)
class InterfaceRefField(serializers.Field):
    """An interface: its id, or "node/name" as the pages show it ("n1/eth3")."""

    _SHAPES = (
        'Expected an interface id (an integer of at least 1) or "node/name" such as "n1/eth3".'
    )
    default_error_messages = {"invalid": _SHAPES, "null": _SHAPES}

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, int) and not isinstance(data, bool) and 1 <= data <= 2**63 - 1:
            return data
        if isinstance(data, str) and _NODE_INTERFACE.match(data):
            return data
        self.fail("invalid")

    def to_representation(self, value: Any) -> Any:
        return value


class StrictIntegerField(serializers.IntegerField):
    """JSON integers only: DRF would accept "1" and 1.0 as well."""

    def to_internal_value(self, data: Any) -> int:
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("invalid")
        return super().to_internal_value(data)


def _snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def unknown_field_message(name: str, known: list[str]) -> str:
    """Names the field the caller probably meant: `cniVersion` is CNI's spelling of this API's
    `cni_version`, and a silently dropped field would give them a NAD they did not ask for."""
    guess = _snake_case(name) if _snake_case(name) in known else ""
    if not guess:
        close = difflib.get_close_matches(name, known, n=1, cutoff=0.75)
        guess = close[0] if close else ""
    hint = f" Did you mean {guess!r}?" if guess else ""
    return f"Unknown field.{hint} Known fields: {', '.join(known)}."


# A write serializer that refuses fields it does not know (400 naming each), instead of DRF's
# default of ignoring them; its schema says `additionalProperties: false` (api/schema.py). A
# comment, not a docstring: drf-spectacular would show it as every subclass's description.
class StrictSerializer(serializers.Serializer):
    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            known = [name for name, field in self.fields.items() if not field.read_only]
            unknown = sorted(str(name) for name in data if name not in known)
            if unknown:
                raise serializers.ValidationError(
                    {name: [unknown_field_message(name, known)] for name in unknown}
                )
        return super().to_internal_value(data)


class ClusterSerializer(serializers.ModelSerializer):
    class Meta:
        model = Cluster
        # credentials: where they are kept, as a kind only (Cluster.credentials), never a path.
        registry = ["id", "name", "enabled", "credentials", "unreachable_since", "api_url"]
        sweeps = ["multus_version", "last_sweep_at", "last_sweep_ok_at", "last_sweep_duration"]
        fields = [*registry, *sweeps, "last_error"]


class NodeSerializer(SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "name", "cluster", "ready", "stale")
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
        ]


class InterfaceSerializer(SelectableFieldsMixin, serializers.ModelSerializer):
    brief_fields = ("id", "node", "name", "state", "holder", "reserved_team", "breach")
    node = serializers.CharField(source="node_name", read_only=True)
    node_id = serializers.IntegerField(read_only=True)
    cluster = serializers.CharField(source="node.cluster.name", read_only=True)
    # From the active reservation (annotated by the viewset's queryset; null when none).
    reserved_team = serializers.CharField(read_only=True, allow_null=True)
    reservation = serializers.IntegerField(source="reservation_id", read_only=True, allow_null=True)
    reserved_until = serializers.DateTimeField(read_only=True, allow_null=True)

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
            "pf",
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


class ReservationSerializer(SelectableFieldsMixin, serializers.ModelSerializer):
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


class NetworkAttachmentSerializer(SelectableFieldsMixin, serializers.ModelSerializer):
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


class PodAttachmentSerializer(SelectableFieldsMixin, serializers.ModelSerializer):
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


class HistoryEntrySerializer(SelectableFieldsMixin, serializers.ModelSerializer):
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
