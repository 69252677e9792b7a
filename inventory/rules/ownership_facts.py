"""What the ownership engine (rules/ownership.py) takes in and gives out: plain frozen
dataclasses, built from the stored rows by ``read/facts.py``. ``rules/ownership.py`` re-exports
them, so ``ownership.LinkFacts`` is the name everyone uses."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from inventory.rules import crosscheck
from inventory.rules.states import OwnershipState

# -- facts in, verdicts out -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LinkFacts:
    key: str  # identity (PCI address, else permanent MAC, else MAC, else name)
    name: str
    kind: str  # "physical", "loopback", "veth", "bridge", "bond", … "other"
    mac: str = ""
    permanent_mac: str = ""
    alias: str = ""
    altnames: tuple[str, ...] = ()
    master: str = ""  # the master's name
    master_kind: str = ""
    addresses: tuple[str, ...] = ()  # "10.0.0.5/24", "fe80::1/64"
    default_route_v4: bool = False
    default_route_v6: bool = False
    driver: str = ""
    pci_address: str = ""
    pf_pci_address: str = ""  # set for an SR-IOV VF
    pf_name: str = ""  # a VF's PF's netdev, when it has one on the host
    vf_index: int | None = None  # a VF's number under its PF (virtfnN)
    sriov_num_vfs: int = 0
    wireless: bool = False
    has_netdev: bool = True  # False: a PCI function in sysfs with no netdev in the node netns
    present: bool = True  # False: not in the latest snapshot (seen before)
    # What the link was last judged to hold for the node: its Kubernetes addresses ("10.0.0.5")
    # and crosscheck.DEFAULT_ROUTE. Stored with the verdict (Verdict.pinned); rules/crosscheck.py.
    pinned: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class NodeFacts:
    name: str
    internal_ips: tuple[str, ...] = ()  # from the Kubernetes API (Node status.addresses)
    external_ips: tuple[str, ...] = ()  # likewise
    agent_fresh: bool = True  # False: the agent has not answered recently
    agent_last_contact: datetime | None = None
    veth_nics: bool = False  # label nicportal.io/veth-nics="true": veth links are NICs (the lab)
    cluster_unreachable: str = ""  # why the cluster's API cannot be read: pods' claims unknown


@dataclass(frozen=True, slots=True)
class PodClaim:
    """One entry of a pod's ``k8s.v1.cni.cncf.io/network-status`` on this node."""

    namespace: str
    pod: str
    nad: str  # "ns/name"
    pod_interface: str  # "net1"
    mac: str = ""
    pci_address: str = ""  # from device-info when present
    namespace_teams: frozenset[str] = frozenset()  # the teams the pod's namespace belongs to
    nad_team: str = ""  # the team NICPortal applied the NAD for, "" for a NAD found in the cluster


@dataclass(frozen=True, slots=True)
class ReservationFacts:
    team: str
    expires_at: datetime
    purpose: str
    reserved_by: str


@dataclass(frozen=True, slots=True)
class Verdict:
    state: OwnershipState
    reason: str  # one sentence a person reads
    holder: str  # "" or e.g. "pod ml/trainer-0", "team rdma", "bridge br-ex", "Calico", "node"
    orphan: bool = False  # a host link named netN whose alias holds its original name
    breach: str = ""  # why a reserved link in a pod is in the wrong team's pod, "" when it is not
    gone: bool = False  # a virtual link that vanished for good: nothing to keep in the inventory
    pinned: tuple[str, ...] = ()  # the LinkFacts.pinned to store for the next judgement


@dataclass(frozen=True, slots=True)
class NodeJudgement:
    verdicts: list[Verdict]  # one per link, same order
    findings: list[crosscheck.Finding]  # where the snapshot contradicts the Kubernetes API
