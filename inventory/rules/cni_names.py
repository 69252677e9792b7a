"""Names that belong to the primary CNI or the Kubernetes infrastructure (docs/HOST_DEVICE.md),
as data, and the rule that says when a link's name is evidence enough: `owner()`. Used by the
ownership engine (`rules/ownership.py`)."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CniName:
    owner: str
    pattern: str  # a regular expression the whole name must match
    label: str = ""  # how the reason names the pattern; "" names the link itself
    kinds: frozenset[str] = frozenset()  # when set, the link's kind must be one of these
    needs_ovn: bool = False  # generic enough to need other OVN-Kubernetes evidence on the node


_VETH = frozenset({"veth"})

CNI_NAMES: tuple[CniName, ...] = (
    # Prefix patterns are restricted to veth: "lxcbr0" is LXC's bridge, not Cilium's.
    CniName("Calico", r"cali.+", "cali* veth", _VETH),
    CniName("Calico", r"tunl0|vxlan\.calico|vxlan-v6\.calico|wireguard\.cali|wg-v6\.cali"),
    CniName("Calico", r"bpfin\.cali|bpfout\.cali"),
    CniName("Flannel", r"flannel\.\d+"),
    CniName("Flannel", r"cni0"),
    CniName("Cilium", r"lxc_health|cilium_.+"),
    CniName("Cilium", r"lxc.+", "lxc* veth", _VETH),
    CniName("OVN-Kubernetes", r"ovn-k8s-mp\d+|br-int|ovs-system|genev_sys_6081"),
    # "br-ex" is also what people call a plain external bridge (the lab has one): only OVN-K's
    # when the node shows other OVN evidence, see owner().
    CniName("OVN-Kubernetes", r"br-ex|breth0", needs_ovn=True),
    CniName("Kube-OVN", r"ovn0"),
    CniName("Weave", r"weave|datapath|vxlan-6784"),
    CniName("Weave", r"vethwe-.+", "vethwe-* veth", _VETH),
    CniName("Weave", r"vethwepl.+", "vethwepl* veth", _VETH),
    CniName("Antrea", r"antrea-gw0|antrea-tun0"),
    CniName("kube-proxy", r"kube-ipvs0", "kube-ipvs0, IPVS mode"),
    CniName("kube-router", r"kube-bridge|kube-dummy-if|kube-tunnel-if"),
    CniName("NodeLocal DNS", r"nodelocaldns"),
    CniName("Docker", r"docker0"),
    CniName("kubenet", r"cbr0"),
)
_REGEXES = tuple((entry, re.compile(entry.pattern)) for entry in CNI_NAMES)
OVN_MARKERS = frozenset({"ovs-system", "br-int", "genev_sys_6081", "ovn-k8s-mp0"})


def owner(*, name: str, kind: str, hardware: bool, ovn_on_node: bool = False) -> CniName | None:
    """The CNI name entry that a link's name matches, if its other facts agree.

    Names are evidence, not proof. A name is not trusted on a link that is hardware (a PCI
    address, kind ``physical``, or wireless): a NIC someone named ``cali0`` is still a NIC.
    Prefix patterns (``cali*``, ``lxc*``, ``vethwe*``) also need the kind the CNI creates (veth).
    ``br-ex``/``breth0`` count only with OVN evidence: the link is an Open vSwitch bridge, or the
    node has ``ovs-system``, ``br-int``, ``genev_sys_6081`` or ``ovn-k8s-mp0``.
    """
    if hardware:
        return None
    for entry, regex in _REGEXES:
        if not regex.fullmatch(name):
            continue
        if entry.kinds and kind not in entry.kinds:
            continue
        if entry.needs_ovn and not (ovn_on_node or kind == "openvswitch"):
            continue
        return entry
    return None
