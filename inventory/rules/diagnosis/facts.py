"""What the diagnosis rules are given (the pod, its Events, its NADs, the inventory of the
nodes) and what they answer (a Diagnosis with its evidence and fix). `read.facts` and
`services.diagnosis` fill these in; the rules never do I/O."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from inventory.rules import nad
from inventory.rules.multus import NetworkSelection, NetworkStatus
from inventory.rules.states import OwnershipState

SANDBOX_FAILURE_REASON = "FailedCreatePodSandBox"

# Severity of a verdict, for the badge a page shows.
OK = "ok"
PENDING = "pending"
ERROR = "error"

# Messages host-device and Multus write (docs/HOST_DEVICE.md, last table).
MSG_EEXIST = "file exists"
MSG_LINK_NOT_FOUND = "Link not found"
MSG_NO_SELECTOR = 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'
MSG_NO_NETDEV = "failed to find device name for pci address"
MSG_NAD_NOT_FOUND = "cannot find a network-attachment-definition"
MSG_IFNAME_EXISTS = "already exists"

# Lint codes that mean "host-device cannot even load this config".
CONFIG_BROKEN = frozenset(
    {
        "CONFIG_INVALID_JSON",
        "CONFIG_NOT_OBJECT",
        "CONFIG_NO_TYPE",
        "MULTIPLE_HOST_DEVICES",
        "SELECTOR_INVALID",
        "DEVICE_NAME_INVALID",
        "HWADDR_INVALID",
        "PCI_ADDRESS_SHORT",
        "PCI_ADDRESS_INVALID",
        "KERNELPATH_INVALID",
        "KERNELPATH_VIRTUAL",
        "KERNELPATH_NOT_DEVICE_DIR",
        "CNI_VERSION_INVALID",
        "CNI_VERSION_UNSUPPORTED",
        "CNI_VERSION_MULTUS",
    }
)

# Multus: `[ns/pod/uid:network]: error adding container to network "network": ...`
FAILED_NETWORK = re.compile(r'error adding container to network "(?P<network>[^"]+)"')


# --- facts in ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EventFacts:
    reason: str
    message: str
    type: str = "Warning"
    count: int = 1
    last_seen: datetime | None = None


@dataclass(frozen=True, slots=True)
class NadFacts:
    """A NAD as the cluster serves it (found False: the API answered 404)."""

    namespace: str
    name: str
    found: bool = True
    config: str = ""
    resource_name: str = ""
    findings: tuple[nad.Finding, ...] = ()  # nad.lint() against the inventory
    team: str = ""  # the team NICPortal applied it for, "" for a NAD found in the cluster

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class HostInterface:
    """One interface of the inventory, with what the diagnosis needs beyond nad.DeviceFacts."""

    node: str
    name: str
    mac: str = ""
    pci_address: str = ""
    alias: str = ""
    kind: str = "physical"
    driver: str = ""
    state: str = OwnershipState.FREE.value
    reason: str = ""
    holder: str = ""
    present: bool = True
    has_netdev: bool = True
    orphan: bool = False
    reserved_team: str = ""

    def device_facts(self, plugin: nad.PluginFacts | None) -> nad.DeviceFacts:
        return nad.DeviceFacts(
            node=self.node,
            name=self.name,
            mac=self.mac,
            pci_address=self.pci_address,
            kind=self.kind or "physical",
            driver=self.driver,
            state=self.state,
            reason=self.reason,
            holder=self.holder,
            reserved_team=self.reserved_team,
            has_netdev=self.has_netdev,
            plugin=plugin,
        )


@dataclass(frozen=True, slots=True)
class PodFacts:
    namespace: str
    name: str
    found: bool = True
    node: str = ""
    phase: str = ""  # "" for a planned pod (not created: what would happen?)
    networks: tuple[NetworkSelection, ...] = ()
    networks_error: str = ""
    network_status: tuple[NetworkStatus, ...] = ()
    events: tuple[EventFacts, ...] = ()

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class DiagnosisFacts:
    pod: PodFacts
    nads: Mapping[str, NadFacts] = field(default_factory=dict)  # "ns/name" -> NAD
    # Every node's interfaces (the pod's node included); a node absent here is not inventoried.
    interfaces_by_node: Mapping[str, Sequence[HostInterface]] = field(default_factory=dict)
    plugin: nad.PluginFacts | None = None  # host-device on the pod's node
    multus_version: str = ""
    namespace_teams: frozenset[str] = frozenset()  # the teams the pod's namespace belongs to


# --- verdict out ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Evidence:
    label: str
    value: str


@dataclass(frozen=True, slots=True)
class Fix:
    text: str
    nad_yaml: str = ""  # a corrected NAD (nad.build), "" when none can be offered
    commands: tuple[str, ...] = ()  # shell commands an operator runs on the node


@dataclass(frozen=True, slots=True)
class Diagnosis:
    code: str  # stable UPPER_SNAKE code
    severity: str  # "ok" | "pending" | "error"
    title: str
    explanation: str
    namespace: str
    pod: str
    node: str = ""
    attachment: str = ""  # "ns/nad@ifname" the verdict is about, "" for the pod as a whole
    evidence: tuple[Evidence, ...] = ()
    fix: Fix | None = None
