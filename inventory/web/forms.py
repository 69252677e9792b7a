"""Forms of the dashboard: the team switcher, the reservation actions and the NAD builder. They
only turn a browser's POST into the services' typed arguments and show the answer next to the
field: who may reserve what lives in inventory.services.reservations, and whether a NAD would
work is the pure rules' call (inventory.rules.nad), shown as findings, so the NAD fields are
deliberately lenient (an empty name is a finding, not a form error)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django import forms
from django.conf import settings
from django.contrib.auth.models import Group
from django.db.models import Q, QuerySet
from django.utils import timezone

from inventory.choices import OwnershipState
from inventory.models import Cluster, Interface, Node
from inventory.queries import host_device_target_q
from inventory.read import facts
from inventory.rules import bounded_json, capacity, nad
from inventory.rules.nad.ipam import FIELDS_BY_TYPE, IPAM_TYPES
from inventory.services import tokens

DATETIME_LOCAL = "%Y-%m-%dT%H:%M"
DEFAULT_RESERVATION = timedelta(days=7)


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self) -> None:
        super().__init__(format=DATETIME_LOCAL)


def default_expiry() -> datetime:
    return (timezone.localtime() + DEFAULT_RESERVATION).replace(second=0, microsecond=0)


def refuse_control_characters(value: str) -> None:
    """Control characters (tab and line breaks aside) and lone surrogates have no place in
    anything typed into the portal. NUL is left to Django's own validator of every CharField."""
    problem = bounded_json.text_problem(value.replace("\x00", ""))
    if problem:
        raise forms.ValidationError(problem, code="control_characters")


class PortalForm(forms.Form):
    """A form whose text fields refuse control characters with a form error."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            if isinstance(field, forms.CharField):
                field.validators.append(refuse_control_characters)


def extension_default(current_end: datetime) -> datetime:
    """What the Extend form offers: another DEFAULT_RESERVATION after the current end (or after
    now, for a reservation about to end), to the minute the input shows. Submitting the form
    unchanged must extend, not answer "must be later than the current end"."""
    start = max(timezone.localtime(current_end), timezone.localtime())
    return (start + DEFAULT_RESERVATION).replace(second=0, microsecond=0) + timedelta(minutes=1)


class TeamSwitchForm(forms.Form):
    team = forms.ModelChoiceField(queryset=Group.objects.none(), empty_label=None)

    def __init__(self, *args, teams=None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        if teams is not None:
            self.fields["team"].queryset = teams


class ExpiryField(forms.DateTimeField):
    widget = DateTimeLocalInput

    def __init__(self, **kwargs) -> None:
        super().__init__(input_formats=[DATETIME_LOCAL, "iso-8601"], **kwargs)

    def validate(self, value: datetime | None) -> None:
        super().validate(value)
        if value is not None and value <= timezone.now():
            raise forms.ValidationError("Choose a time in the future.")


class ReserveForm(PortalForm):
    purpose = forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "e.g. SR-IOV test for the 5G core"}),
    )
    expires_at = ExpiryField(label="Until", initial=default_expiry)


class ExtendForm(PortalForm):
    # The initial value depends on the reservation: ExtendView gives extension_default().
    expires_at = ExpiryField(label="New end")


# --- the NAD builder ---------------------------------------------------------------------------

SELECTOR_CHOICES = [
    ("auto", "auto (the builder picks the safest)"),
    ("device", "device (interface name)"),
    ("hwaddr", "hwaddr (MAC address)"),
    ("pciBusID", "pciBusID (PCI address)"),
]
IPAM_FIELDS = ("addresses", "gateway", "routes", "subnet", "range_start", "range_end", "range",
               "exclude")  # fmt: skip


def usable_interfaces(team: Group | None, cluster: str = "") -> QuerySet[Interface]:
    """The interfaces a NAD of this team may point at: free ones, and those its team reserved,
    on the nodes of the cluster the NAD goes into (`cluster`, the default one for ""). With a
    netdev on the node, or bound to vfio-pci/uio (an SR-IOV VF that host-device takes by
    pciBusID, moving nothing)."""
    nodes = (
        Node.objects.filter(cluster__name=cluster, in_cluster=True)
        if cluster
        else facts.configured_nodes()
    )
    usable = Q(state=OwnershipState.FREE)
    if team is not None:
        usable |= Q(
            state=OwnershipState.RESERVED,
            reservations__team=team,
            reservations__released_at__isnull=True,
        )
    return (
        Interface.objects.filter(usable, present=True)
        .filter(host_device_target_q())
        .filter(node__in=nodes)
        .select_related("node", "node__cluster")
        .order_by("node__name", "name")
        .distinct()
    )


def database_id(text: str) -> int | None:
    """The row id `text` spells, or None when it spells none a 64-bit column can hold. ASCII
    digits only: str.isdigit() also takes "²" and Arabic-Indic digits, which int() refuses or
    reads, and an id past 2**63 makes SQLite raise OverflowError in the query."""
    text = text.strip()
    if not (text.isascii() and text.isdigit() and len(text) <= 19):
        return None
    number = int(text)
    return number if 0 < number < 2**63 else None


class InterfaceChoiceField(forms.ModelMultipleChoiceField):
    def _check_values(self, value: Any) -> Any:
        # An id that is no row id is refused here, with the field's own message: past 2**63
        # SQLite raises OverflowError (not the ValueError Django's field catches).
        for pk in value:
            if database_id(str(pk)) is None:
                raise forms.ValidationError(
                    self.error_messages["invalid_pk_value"],
                    code="invalid_pk_value",
                    params={"pk": pk},
                )
        return super()._check_values(value)

    def label_from_instance(self, obj: Interface) -> str:
        return f"{obj.node.name} / {obj.name}"


class NadBuilderForm(PortalForm):
    # The cluster the NAD goes into: its NICs are the ones offered (node names are unique per
    # cluster only). Chosen before the NICs, by a GET of the page (the list depends on it).
    cluster = forms.ChoiceField(choices=(), required=False)
    interfaces = InterfaceChoiceField(
        queryset=Interface.objects.none(),
        widget=forms.CheckboxSelectMultiple,
        required=False,
        help_text="One interface per node the pod may run on.",
    )
    namespace = forms.CharField(max_length=63, required=False, initial="default")
    name = forms.CharField(max_length=253, required=False, label="NAD name")
    selector = forms.ChoiceField(choices=SELECTOR_CHOICES, initial="auto")
    pod_interface = forms.CharField(
        max_length=15, required=False, initial="net1", label="Interface name in the pod"
    )
    cni_version = forms.ChoiceField(
        choices=[("auto", "auto")] + [(v, v) for v in nad.CNI_VERSIONS],
        initial="auto",
        label="cniVersion",
    )
    ipam_type = forms.ChoiceField(
        choices=[(t, t) for t in IPAM_TYPES], initial="none", label="IPAM"
    )
    ipam_addresses = forms.CharField(
        required=False, label="Addresses", help_text="CIDRs, comma separated (static)"
    )
    ipam_gateway = forms.CharField(required=False, label="Gateway")
    ipam_routes = forms.CharField(
        required=False, label="Routes", help_text='"10.2.0.0/16" or "10.2.0.0/16 via 10.1.0.1"'
    )
    ipam_subnet = forms.CharField(required=False, label="Subnet", help_text="host-local")
    ipam_range_start = forms.CharField(required=False, label="Range start")
    ipam_range_end = forms.CharField(required=False, label="Range end")
    ipam_range = forms.CharField(required=False, label="Range", help_text="whereabouts CIDR")
    ipam_exclude = forms.CharField(required=False, label="Exclude", help_text="whereabouts")

    def __init__(self, *args: Any, team: Group | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(Cluster.objects.order_by("name").values_list("name", flat=True))
        self.fields["cluster"].choices = [("", "default"), *((n, n) for n in names)]
        source = self.data if self.is_bound else self.initial
        chosen = str(source.get("cluster") or "")
        # An unknown name offers nothing; the field's own validation says why.
        self.cluster_name = chosen
        self.shown_cluster = chosen or settings.CLUSTER_NAME
        self.fields["interfaces"].queryset = usable_interfaces(team, chosen)
        self.fields["interfaces"].error_messages["invalid_choice"] = (
            "Interface %(value)s is not free (nor reserved by your team): pick one of the list."
        )

    def service_arguments(self) -> dict[str, Any]:
        """The keyword arguments of services.nads.render/apply (user and team aside)."""
        data = self.cleaned_data
        ipam: dict[str, Any] = {"type": data["ipam_type"]}
        # Only the fields of the chosen type: a value left in a hidden field of another type
        # must not turn into a finding about a field the user cannot see.
        for name in FIELDS_BY_TYPE.get(data["ipam_type"], ()):
            if data.get(f"ipam_{name}"):
                ipam[name] = data[f"ipam_{name}"]
        return {
            "namespace": data["namespace"],
            "name": data["name"],
            "interface_ids": [i.pk for i in data["interfaces"]],
            "selector": data["selector"],
            "pod_interface": data["pod_interface"] or "net1",
            "cni_version": data["cni_version"],
            "ipam": ipam,
            "cluster": data.get("cluster") or "",
        }


class NadLintForm(PortalForm):
    manifest = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 18, "cols": 90, "spellcheck": "false"}),
        max_length=200_000,
        label="NetworkAttachmentDefinition (YAML or JSON)",
        strip=False,
    )
    cluster = forms.ChoiceField(
        choices=(),
        required=False,
        help_text="Whose inventory the NAD is checked against (the default cluster if empty).",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = Cluster.objects.order_by("name").values_list("name", flat=True)
        self.fields["cluster"].choices = [("", "default"), *((n, n) for n in names)]


class TokenForm(PortalForm):
    note = forms.CharField(
        max_length=tokens.NOTE_MAX_LENGTH,
        required=False,
        label="What is it for?",
        widget=forms.TextInput(attrs={"placeholder": "e.g. CI pipeline, my laptop"}),
    )
    expires_in_days = forms.TypedChoiceField(
        label="Expires after",
        coerce=int,
        choices=[(days, f"{days} day{'s' if days > 1 else ''}") for days in tokens.DAY_CHOICES],
        initial=tokens.DEFAULT_DAYS,
    )


# --- reservation requests ----------------------------------------------------------------------

SRIOV_CHOICES = [("", "either"), ("yes", "SR-IOV capable"), ("no", "not SR-IOV capable")]
VF_CHOICES = [("", "either"), ("yes", "SR-IOV VFs only"), ("no", "no SR-IOV VFs")]
PLACEMENT_CHOICES = [
    ("any", "anywhere"),
    ("one_node", "all on one node"),
    ("one_numa", "all on one NUMA node of one node"),
    ("spread", "spread over N nodes"),
]


class ConstraintsForm(PortalForm):
    """What a reservation request asks for; the rules (rules/capacity.py) judge the values, this
    form only reads them."""

    field_order = ["cluster"]
    count = forms.IntegerField(min_value=1, max_value=capacity.COUNT_MAX, initial=1)
    nodes = forms.CharField(
        required=False,
        max_length=20_000,
        help_text="Node names, comma or space separated; empty: any node.",
    )
    label_selector = forms.CharField(
        required=False,
        max_length=2000,
        label="Node labels",
        help_text='Kubernetes selector, e.g. "rack=r12,gpu in (a100,h100)".',
    )
    min_speed_mbps = forms.IntegerField(
        required=False, min_value=1, max_value=10_000_000, label="Speed at least (Mb/s)"
    )
    driver = forms.CharField(required=False, max_length=64)
    vendor_id = forms.CharField(
        required=False, max_length=6, label="PCI vendor", help_text="0x15b3"
    )
    device_id = forms.CharField(
        required=False, max_length=6, label="PCI device", help_text="0x1017"
    )
    sriov = forms.ChoiceField(choices=SRIOV_CHOICES, required=False, label="SR-IOV")
    vf = forms.ChoiceField(
        choices=VF_CHOICES,
        required=False,
        label="SR-IOV VF",
        help_text="a VF is taken by its PCI address (pciBusID)",
    )
    numa_node = forms.IntegerField(required=False, min_value=0, max_value=4096, label="NUMA node")
    placement = forms.ChoiceField(choices=PLACEMENT_CHOICES, initial="any")
    spread_nodes = forms.IntegerField(
        required=False, min_value=1, max_value=capacity.COUNT_MAX, label="N (spread)"
    )
    # Whose NICs are asked for: shown once the portal knows several clusters (the NAD builder
    # chooses the same way); without it, or empty, the default cluster.
    cluster = forms.ChoiceField(
        choices=(),
        required=False,
        help_text="Only this cluster's NICs are matched; the NADs handed back are for it.",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        names = list(Cluster.objects.order_by("name").values_list("name", flat=True))
        if len(names) < 2:
            del self.fields["cluster"]
        else:
            default = f"default ({settings.CLUSTER_NAME})"
            self.fields["cluster"].choices = [("", default), *((n, n) for n in names)]

    def cluster_name(self) -> str:
        """The cluster asked (a registry name; "" for the default one)."""
        return str(self.cleaned_data.get("cluster") or "")

    def constraints(self) -> capacity.Constraints:
        data = self.cleaned_data
        nodes = tuple(dict.fromkeys(data["nodes"].replace(",", " ").split()))
        return capacity.Constraints(
            count=data["count"],
            nodes=nodes,
            label_selector=data["label_selector"].strip(),
            min_speed_mbps=data["min_speed_mbps"],
            driver=data["driver"].strip(),
            vendor_id=data["vendor_id"].strip(),
            device_id=data["device_id"].strip(),
            sriov={"yes": True, "no": False}.get(data["sriov"]),
            vf={"yes": True, "no": False}.get(data["vf"]),
            numa_node=data["numa_node"],
            placement=data["placement"],
            spread_nodes=data["spread_nodes"],
        )


class ReservationRequestForm(ConstraintsForm):
    purpose = forms.CharField(
        max_length=500,
        widget=forms.TextInput(attrs={"placeholder": "e.g. training run for the 5G core"}),
    )
    expires_at = ExpiryField(label="Until", initial=default_expiry)
    namespace = forms.CharField(
        max_length=63, initial="default", help_text="Namespace of the NADs handed back."
    )
    nad_name = forms.CharField(
        max_length=200, required=False, label="NAD name", help_text="Default: request-<id>."
    )
