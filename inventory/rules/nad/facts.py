"""The data the NAD builder and linter take in and give out. Plain frozen dataclasses: the
inventory (models, agent snapshots) is converted into these by `inventory/read/facts.py`, so the
rules in this package never touch the ORM or the network."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from inventory.rules.states import OwnershipState

# What the primary CNI (Calico on MicroK8s) names its interface in every pod.
PRIMARY_POD_INTERFACE = "eth0"

ERROR = "error"  # blocks: the builder emits nothing, the NAD would not work
WARNING = "warning"  # explains a risk or an assumption; the NAD is still emitted
INFO = "info"  # explains a choice the builder made, or why the linter did not judge something


@dataclass(frozen=True, slots=True)
class PluginFacts:
    """The host-device binary the node agent found on one node."""

    version: str | None  # "1.1.1"; None when the binary prints "version unknown" (Debian builds)
    supported_versions: tuple[str, ...] = ()  # CNI_COMMAND=VERSION supportedVersions


@dataclass(frozen=True, slots=True)
class DeviceFacts:
    """One interface on one node, with the ownership engine's verdict."""

    node: str
    name: str
    mac: str = ""
    pci_address: str = ""  # full BDF, "" when none (veth)
    kernelpath: str = ""  # sysfs path of the netdev or of its device directory, "" for virtual
    kind: str = "physical"
    driver: str = ""
    state: str = OwnershipState.FREE.value
    reason: str = ""
    holder: str = ""
    reserved_team: str = ""
    has_netdev: bool = True
    plugin: PluginFacts | None = None
    pod_nad: str = ""  # in a pod: the NAD ("ns/name") it was attached through, "" if not known
    sriov_num_vfs: int = 0  # an SR-IOV PF's enabled VFs
    pf_pci_address: str = ""  # an SR-IOV VF's PF


@dataclass(frozen=True, slots=True)
class IpamRequest:
    type: str = "none"  # "none" | "static" | "host-local" | "whereabouts" | "dhcp"
    addresses: tuple[str, ...] = ()  # static: "10.1.0.5/24"
    gateway: str = ""
    routes: tuple[str, ...] = ()  # "10.2.0.0/16" or "10.2.0.0/16 via 10.1.0.1"
    subnet: str = ""  # host-local
    range_start: str = ""  # host-local rangeStart, whereabouts range_start
    range_end: str = ""
    range: str = ""  # whereabouts "10.1.0.0/24"
    exclude: tuple[str, ...] = ()  # whereabouts


@dataclass(frozen=True, slots=True)
class NadRequest:
    namespace: str
    name: str
    devices: tuple[DeviceFacts, ...]  # the chosen interface on each target node
    selector: str = "auto"  # "auto" | "device" | "hwaddr" | "pciBusID" | "kernelpath"
    pod_interface: str = "net1"
    other_pod_interfaces: tuple[str, ...] = (PRIMARY_POD_INTERFACE,)
    ipam: IpamRequest = field(default_factory=IpamRequest)
    cni_version: str = "auto"
    multus_version: str = ""  # "" unknown; "3.9" for MicroK8s' addon
    team: str = ""  # the requester's team (for reserved devices)
    resource_name: str = ""  # k8s.v1.cni.cncf.io/resourceName: a device plugin picks the device
    # (selector, value) -> the other nodes (not targets) with an interface it would match:
    # ("device", "eth2") -> ("node-c",). A NAD can be used from any node; this says which
    # selector would take another node's NIC there.
    elsewhere: Mapping[tuple[str, str], tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # stable UPPER_SNAKE code
    severity: str  # "error" | "warning" | "info"
    field: str  # the request/config field it concerns
    message: str  # what a user reads
    fix: str = ""  # what to do about it

    def as_dict(self) -> dict[str, str]:
        return {
            "code": self.code,
            "severity": self.severity,
            "field": self.field,
            "message": self.message,
            "fix": self.fix,
        }


@dataclass(frozen=True, slots=True)
class RenderedNad:
    namespace: str
    name: str
    nodes: tuple[str, ...]
    config: dict
    config_json: str  # spec.config
    manifest: dict  # the full NAD object
    yaml: str  # the NAD as YAML, spec.config as a literal block
    annotations: dict
    pod_snippet: str = ""  # the pod fragment for pods using this NAD (placement included)


@dataclass(frozen=True, slots=True)
class BuildResult:
    nads: tuple[RenderedNad, ...]  # empty when there are errors
    pod_snippet: str  # one YAML document per NAD, "---" separated
    findings: tuple[Finding, ...]

    @property
    def ok(self) -> bool:
        return not any(f.severity == ERROR for f in self.findings)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)


def error(code: str, field: str, message: str, fix: str = "") -> Finding:
    return Finding(code, ERROR, field, message, fix)


def warning(code: str, field: str, message: str, fix: str = "") -> Finding:
    return Finding(code, WARNING, field, message, fix)


def info(code: str, field: str, message: str, fix: str = "") -> Finding:
    return Finding(code, INFO, field, message, fix)
