"""Every ownership rule as a table row: the first link of a row is the one judged, the others are
its node. The whole verdict (state, reason, holder, orphan) is compared, so a changed sentence
fails as loudly as a changed state."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from inventory.rules.ownership import (
    LinkFacts,
    NodeFacts,
    PodClaim,
    ReservationFacts,
    Verdict,
    decide,
    decide_node,
)
from inventory.rules.states import OwnershipState as S

NODE = NodeFacts("node-a", internal_ips=("10.0.0.5", "fd00::5"))
LAB = NodeFacts("lab-1", veth_nics=True)
UNTIL = datetime(2026, 12, 4, 18, 0, tzinfo=UTC)
RDMA = ReservationFacts("rdma", UNTIL, "RDMA test", "alice")
PCI = "0000:3b:00.0"
PCI1 = "0000:3b:00.1"
MAC = "0c:42:a1:00:00:01"
FREE_IXGBE = "physical NIC (driver ixgbe, 0000:3b:00.0): no address, no master, not in use"
FREE_VETH = "lab NIC (veth): no address, no master, not in use"
TRAINER = PodClaim("ml", "trainer-0", "ml/fast-nic", "net1", mac=MAC.upper())
IN_TRAINER = Verdict(S.POD, "in pod ml/trainer-0 as net1 via NAD ml/fast-nic", "pod ml/trainer-0")


def nic(
    name: str = "eth3", pci: str = PCI, driver: str = "ixgbe", mac: str = MAC, **facts
) -> LinkFacts:
    return LinkFacts(
        key=pci or mac or name, name=name, kind="physical", mac=mac, pci_address=pci,
        driver=driver, **facts,
    )  # fmt: skip


def link(name: str, kind: str, **facts) -> LinkFacts:
    return LinkFacts(key=name, name=name, kind=kind, **facts)


def system(reason: str) -> Verdict:
    return Verdict(S.SYSTEM, reason, "node")


def cni(reason: str, owner: str) -> Verdict:
    return Verdict(S.CNI, reason, owner)


def row(id_, links, expected, *, node=NODE, claims=(), reservations=None):
    links = links if isinstance(links, list) else [links]
    return pytest.param(links, expected, node, claims, reservations, id=id_)


def assert_row(links, expected, node, claims, reservations):
    verdicts = decide_node(node, links, claims=claims, reservations=reservations)
    # What the verdict pins for the next judgement is tested in test_crosscheck.py.
    assert replace(verdicts[0], pinned=()) == expected


# -- unknown: the agent is silent ---------------------------------------------------------------

SILENT = NodeFacts(
    "node-b", agent_fresh=False, agent_last_contact=datetime(2026, 3, 1, 9, 30, tzinfo=UTC)
)
SILENT_REASON = (
    "agent on node-b has not answered since 2026-03-01 09:30 UTC; last known facts shown"
)
CET = timezone(timedelta(hours=1))

UNKNOWN_ROWS = [
    row("silent-agent", nic(), Verdict(S.UNKNOWN, SILENT_REASON, ""), node=SILENT),
    row(
        "silent-agent-beats-default-route",
        nic("eth0", default_route_v4=True),
        Verdict(S.UNKNOWN, SILENT_REASON, ""),
        node=SILENT,
    ),
    row(
        "silent-agent-beats-reservation",
        nic(),
        Verdict(S.UNKNOWN, SILENT_REASON, ""),
        node=SILENT,
        reservations={PCI: RDMA},
    ),
    row(
        "silent-agent-time-shown-in-utc",
        nic(),
        Verdict(S.UNKNOWN, SILENT_REASON, ""),
        node=NodeFacts(
            "node-b", agent_fresh=False, agent_last_contact=datetime(2026, 3, 1, 10, 30, tzinfo=CET)
        ),
    ),
    row(
        "silent-agent-never-answered",
        nic(),
        Verdict(S.UNKNOWN, "agent on node-c has not answered recently; last known facts shown", ""),
        node=NodeFacts("node-c", agent_fresh=False),
    ),
]

# -- gone from the host: pod or missing ---------------------------------------------------------

MISSING = Verdict(
    S.MISSING,
    "gone from the host and no pod claims it (stranded in a deleted pod's namespace?)",
    "",
)

GONE_ROWS = [
    row("gone-claimed-by-mac-case-insensitively", nic(present=False), IN_TRAINER, claims=[TRAINER]),
    row(
        "gone-claimed-by-lowercase-claim-of-uppercase-mac",
        LinkFacts(PCI, "eth3", "physical", mac=MAC.upper(), pci_address=PCI, present=False),
        IN_TRAINER,
        claims=[PodClaim("ml", "trainer-0", "ml/fast-nic", "net1", mac=MAC)],
    ),
    row(
        "gone-claimed-by-permanent-mac",
        nic(present=False, permanent_mac="0c:42:a1:00:00:99"),
        IN_TRAINER,
        claims=[PodClaim("ml", "trainer-0", "ml/fast-nic", "net1", mac="0C:42:A1:00:00:99")],
    ),
    row(
        "gone-claimed-by-pci",
        nic(present=False, mac=""),
        IN_TRAINER,
        claims=[PodClaim("ml", "trainer-0", "ml/fast-nic", "net1", pci_address=PCI)],
    ),
    row(
        "gone-lab-veth-claimed-by-mac",
        LinkFacts("aa:00:00:00:00:02", "eth2", "veth", mac="aa:00:00:00:00:02", present=False),
        Verdict(S.POD, "in pod lab/web-1 as net2 via NAD lab/lab-nic", "pod lab/web-1"),
        node=LAB,
        claims=[PodClaim("lab", "web-1", "lab/lab-nic", "net2", mac="AA:00:00:00:00:02")],
    ),
    row("gone-no-claim", nic(present=False), MISSING),
    row(
        "gone-claim-with-other-mac",
        nic(present=False),
        MISSING,
        claims=[PodClaim("ml", "trainer-0", "ml/fast-nic", "net1", mac="0c:42:a1:00:00:02")],
    ),
    row(
        "gone-claimed-by-empty-mac-does-not-match",
        nic(present=False, mac=""),
        MISSING,
        claims=[PodClaim("ml", "trainer-0", "ml/fast-nic", "net1")],
    ),  # fmt: skip
    row(
        "present-link-is-not-in-a-pod-whatever-a-claim-says",
        nic(),
        Verdict(S.FREE, FREE_IXGBE, ""),
        claims=[TRAINER],
    ),
    row(
        "gone-lab-veth-nic-is-missing",
        LinkFacts("aa:00:00:00:00:02", "eth2", "veth", mac="aa:00:00:00:00:02", present=False),
        MISSING,
        node=LAB,
    ),
    # Links that die with their network namespace: never stranded, gone for good.
    row(
        "gone-calico-veth-of-a-deleted-pod-on-the-lab",
        LinkFacts(
            "ee:ee:00:00:00:01", "cali1a2b3c4d5e6", "veth", mac="ee:ee:00:00:00:01", present=False
        ),
        Verdict(
            S.CNI,
            "created by Calico (cali* veth); destroyed (a virtual link is never stranded)",
            "Calico",
            gone=True,
        ),
        node=LAB,
    ),
    row(
        "gone-calico-veth-of-a-deleted-pod",
        LinkFacts(
            "ee:ee:00:00:00:01", "cali1a2b3c4d5e6", "veth", mac="ee:ee:00:00:00:01", present=False
        ),
        Verdict(
            S.CNI,
            "created by Calico (cali* veth); destroyed (a virtual link is never stranded)",
            "Calico",
            gone=True,
        ),
    ),
    row(
        "gone-plain-veth-on-a-production-node",
        LinkFacts("ee:ee:00:00:00:02", "veth12ab", "veth", mac="ee:ee:00:00:00:02", present=False),
        Verdict(
            S.VIRTUAL,
            "veth: a virtual link, not a NIC; destroyed (a virtual link is never stranded)",
            "",
            gone=True,
        ),
    ),
    row(
        "gone-vlan",
        link("eth1.100", "vlan", present=False),
        Verdict(
            S.VIRTUAL,
            "vlan: a virtual link, not a NIC; destroyed (a virtual link is never stranded)",
            "",
            gone=True,
        ),
    ),
    row(
        "gone-calico-named-physical-nic-is-still-missing",
        nic(name="cali0", present=False),
        MISSING,
    ),
    row(
        "gone-veth-claimed-by-a-pod-is-in-the-pod-not-gone",
        LinkFacts("ee:ee:00:00:00:02", "veth12ab", "veth", mac="ee:ee:00:00:00:02", present=False),
        Verdict(S.POD, "in pod lab/web-1 as net2 via NAD lab/lab-nic", "pod lab/web-1"),
        claims=[PodClaim("lab", "web-1", "lab/lab-nic", "net2", mac="ee:ee:00:00:00:02")],
    ),
]

# -- PCI functions without a netdev, userspace drivers ------------------------------------------

USERSPACE = "bound to {} (DPDK): usable only through pciBusID / a device plugin"

PCI_FUNCTION_ROWS = [
    row(
        "no-netdev-claimed-by-pci",
        nic(pci=PCI1, has_netdev=False, mac=""),
        IN_TRAINER,
        claims=[PodClaim("ml", "trainer-0", "ml/fast-nic", "net1", pci_address=PCI1.upper())],
    ),
    row(
        "no-netdev-unclaimed",
        nic(pci=PCI1, has_netdev=False),
        Verdict(S.MISSING, "PCI function 0000:3b:00.1 has no netdev on the host", ""),
    ),
    # host-device moved the NIC's netdev by device or hwaddr: the network-status has its MAC
    # (host-device keeps it) and no device-info; sync keeps the MAC last seen on the function.
    row(
        "no-netdev-nic-moved-by-device-or-hwaddr-is-in-its-pod-by-its-mac",
        nic(pci=PCI1, has_netdev=False),
        IN_TRAINER,
        claims=[TRAINER],
    ),
    row(
        "no-netdev-nic-in-its-pod-by-its-permanent-mac",
        nic(pci=PCI1, has_netdev=False, mac="", permanent_mac=MAC),
        IN_TRAINER,
        claims=[TRAINER],
    ),
    row(
        "no-netdev-nic-whose-mac-is-not-the-claims-is-missing",
        nic(pci=PCI1, has_netdev=False, mac="0c:42:a1:00:00:99"),
        Verdict(S.MISSING, "PCI function 0000:3b:00.1 has no netdev on the host", ""),
        claims=[TRAINER],
    ),
    row(
        "no-netdev-zero-mac-matches-no-claim",
        nic(pci=PCI1, has_netdev=False, mac="00:00:00:00:00:00"),
        Verdict(S.MISSING, "PCI function 0000:3b:00.1 has no netdev on the host", ""),
        claims=[PodClaim("ml", "trainer-0", "ml/fast-nic", "net1", mac="00:00:00:00:00:00")],
    ),
    row(
        "userspace-function-is-not-claimed-by-a-mac",
        nic(pci=PCI1, has_netdev=False, driver="vfio-pci"),
        Verdict(S.USERSPACE, USERSPACE.format("vfio-pci"), ""),
        claims=[TRAINER],
    ),
    *[
        row(
            f"userspace-{driver}",
            nic(pci=PCI1, has_netdev=False, driver=driver),
            Verdict(S.USERSPACE, USERSPACE.format(driver), ""),
        )  # fmt: skip
        for driver in ("vfio-pci", "uio_pci_generic", "igb_uio")
    ],
    row(
        "userspace-even-if-a-netdev-is-reported",
        nic(driver="vfio-pci"),
        Verdict(S.USERSPACE, USERSPACE.format("vfio-pci"), ""),
    ),
    row(
        "userspace-vf-in-a-dpdk-pod",
        nic(pci=PCI1, has_netdev=False, driver="vfio-pci"),
        Verdict(S.POD, "in pod dpdk/l2fwd as net1 via NAD dpdk/sriov-dpdk", "pod dpdk/l2fwd"),
        claims=[PodClaim("dpdk", "l2fwd", "dpdk/sriov-dpdk", "net1", pci_address=PCI1)],
    ),
]

# -- system: loopback, default route, InternalIP, uplink trees, addresses, wireless -------------

BOND = link("bond0", "bond", addresses=("10.0.0.5/24",), default_route_v4=True)
BOND_V6 = link("bond0", "bond", addresses=("2001:db8::5/64",), default_route_v6=True)
ROUTED_BRIDGE = link("br0", "bridge", addresses=("10.0.0.5/24",), default_route_v4=True)
WIRELESS = "wireless NIC: host-device cannot move it (containernetworking/plugins #957)"

SYSTEM_ROWS = [
    row(
        "loopback",
        link("lo", "loopback", addresses=("127.0.0.1/8", "::1/128")),
        system("loopback: used by the node itself"),
    ),  # fmt: skip
    row(
        "default-route-v4", nic("eth0", default_route_v4=True), system("carries the default route")
    ),
    row(
        "default-route-ipv6-only",
        nic("eth0", addresses=("2001:db8::5/64",), default_route_v6=True),
        system("carries the default route (IPv6)"),
    ),
    row(
        "default-route-both",
        nic("eth0", default_route_v4=True, default_route_v6=True),
        system("carries the default route (IPv4 and IPv6)"),
    ),
    row(
        "internal-ip",
        nic("eth1", addresses=("10.0.0.5/24",)),
        system("holds the node's InternalIP 10.0.0.5 (Kubernetes API)"),
    ),
    row(
        "internal-ip-v6",
        nic("eth1", addresses=("fe80::1/64", "fd00:0::5/64")),
        system("holds the node's InternalIP fd00::5 (Kubernetes API)"),
    ),
    row(
        "default-route-beats-internal-ip",
        nic("eth0", addresses=("10.0.0.5/24",), default_route_v4=True),
        system("carries the default route"),
    ),
    row(
        "slave-of-routed-bond",
        [nic("eth0", master="bond0", master_kind="bond"), BOND],
        system("member of bond0, which carries the default route"),
    ),
    row(
        "slave-of-ipv6-only-routed-bond",
        [nic("eth0", master="bond0", master_kind="bond"), BOND_V6],
        system("member of bond0, which carries the default route (IPv6)"),
    ),
    row(
        "slave-of-bond-holding-internal-ip",
        [
            nic("eth0", master="bond0", master_kind="bond"),
            link("bond0", "bond", addresses=("10.0.0.5/24",)),
        ],
        system("member of bond0, which holds the node's InternalIP 10.0.0.5 (Kubernetes API)"),
    ),  # fmt: skip
    row(
        "port-of-routed-bridge",
        [nic("eth0", master="br0", master_kind="bridge"), ROUTED_BRIDGE],
        system("member of br0, which carries the default route"),
    ),
    row(
        "slave-of-bond-in-routed-bridge",
        [
            nic("eth0", master="bond0", master_kind="bond"),
            link("bond0", "bond", master="br0", master_kind="bridge"),
            ROUTED_BRIDGE,
        ],
        system("member of br0 through bond0, which carries the default route"),
    ),
    row(
        "bond-in-routed-bridge",
        [link("bond0", "bond", master="br0", master_kind="bridge"), ROUTED_BRIDGE],
        system("member of br0, which carries the default route"),
    ),
    row(
        "other-port-of-bridge-whose-bond-carries-the-route",
        [
            link("tap0", "tun", master="br0", master_kind="bridge"),
            link("br0", "bridge"),
            link("bond0", "bond", master="br0", master_kind="bridge", default_route_v4=True),
        ],
        system("in br0 together with bond0, which carries the default route"),
    ),
    row(
        "bridge-above-a-routed-bond",
        [
            link("br0", "bridge"),
            link("bond0", "bond", master="br0", master_kind="bridge", default_route_v4=True),
        ],
        system("holds bond0, which carries the default route"),
    ),
    row(
        "other-address",
        nic("eth2", addresses=("192.168.50.2/24",)),
        system("has address 192.168.50.2/24: used by the node"),
    ),
    row(
        "other-address-after-link-local",
        nic("eth2", addresses=("fe80::2/64", "2001:db8:1::2/64")),
        system("has address 2001:db8:1::2/64: used by the node"),
    ),
    row(
        "ipv4-link-local-counts-as-used",
        nic("eth2", addresses=("169.254.3.3/16",)),
        system("has address 169.254.3.3/16: used by the node"),
    ),
    row(
        "unparsable-address-counts-as-used",
        nic("eth2", addresses=("not-an-ip",)),
        system("has address not-an-ip: used by the node"),
    ),
    row(
        "ipv6-link-local-only-is-free",
        nic(addresses=("fe80::1/64",)),
        Verdict(S.FREE, FREE_IXGBE, ""),
    ),  # fmt: skip
    row("wireless", nic("wlan0", pci=PCI, driver="iwlwifi", wireless=True), system(WIRELESS)),
    row(
        "wireless-with-address",
        nic("wlan0", driver="iwlwifi", wireless=True, addresses=("192.168.1.9/24",)),
        system("has address 192.168.1.9/24: used by the node"),
    ),
    row(
        "internal-ip-beats-master",
        [
            nic("eth5", master="br9", master_kind="bridge", addresses=("10.0.0.5/24",)),
            link("br9", "bridge"),
        ],
        system("holds the node's InternalIP 10.0.0.5 (Kubernetes API)"),
    ),  # fmt: skip
]

# -- cni: primary CNI and kube infrastructure ---------------------------------------------------

OVS_SYSTEM = link("ovs-system", "openvswitch")
CNI_NAME_ROWS = [
    # (link name, kind, owner, label in the reason)
    ("cali8d3f2a1b9c0", "veth", "Calico", "cali* veth"),
    ("tunl0", "ipip", "Calico", "tunl0"),
    ("vxlan.calico", "vxlan", "Calico", "vxlan.calico"),
    ("vxlan-v6.calico", "vxlan", "Calico", "vxlan-v6.calico"),
    ("wireguard.cali", "wireguard", "Calico", "wireguard.cali"),
    ("wg-v6.cali", "wireguard", "Calico", "wg-v6.cali"),
    ("bpfin.cali", "veth", "Calico", "bpfin.cali"),
    ("bpfout.cali", "veth", "Calico", "bpfout.cali"),
    ("flannel.1", "vxlan", "Flannel", "flannel.1"),
    ("flannel.4096", "vxlan", "Flannel", "flannel.4096"),
    ("cni0", "bridge", "Flannel", "cni0"),
    ("cilium_host", "veth", "Cilium", "cilium_host"),
    ("cilium_net", "veth", "Cilium", "cilium_net"),
    ("cilium_vxlan", "vxlan", "Cilium", "cilium_vxlan"),
    ("cilium_geneve", "geneve", "Cilium", "cilium_geneve"),
    ("lxc1a2b3c4d", "veth", "Cilium", "lxc* veth"),
    ("lxc_health", "veth", "Cilium", "lxc_health"),
    ("ovn-k8s-mp0", "openvswitch", "OVN-Kubernetes", "ovn-k8s-mp0"),
    ("br-int", "openvswitch", "OVN-Kubernetes", "br-int"),
    ("ovs-system", "openvswitch", "OVN-Kubernetes", "ovs-system"),
    ("genev_sys_6081", "geneve", "OVN-Kubernetes", "genev_sys_6081"),
    ("br-ex", "openvswitch", "OVN-Kubernetes", "br-ex"),
    ("breth0", "openvswitch", "OVN-Kubernetes", "breth0"),
    ("ovn0", "openvswitch", "Kube-OVN", "ovn0"),
    ("weave", "bridge", "Weave", "weave"),
    ("datapath", "openvswitch", "Weave", "datapath"),
    ("vethwe-bridge", "veth", "Weave", "vethwe-* veth"),
    ("vethwepl4711", "veth", "Weave", "vethwepl* veth"),
    ("vxlan-6784", "vxlan", "Weave", "vxlan-6784"),
    ("antrea-gw0", "openvswitch", "Antrea", "antrea-gw0"),
    ("antrea-tun0", "openvswitch", "Antrea", "antrea-tun0"),
    ("kube-ipvs0", "dummy", "kube-proxy", "kube-ipvs0, IPVS mode"),
    ("kube-bridge", "bridge", "kube-router", "kube-bridge"),
    ("kube-dummy-if", "dummy", "kube-router", "kube-dummy-if"),
    ("kube-tunnel-if", "ipip", "kube-router", "kube-tunnel-if"),
    ("nodelocaldns", "dummy", "NodeLocal DNS", "nodelocaldns"),
    ("docker0", "bridge", "Docker", "docker0"),
    ("cbr0", "bridge", "kubenet", "cbr0"),
]

CNI_ROWS = [
    *[
        row(f"cni-name-{name}", link(name, kind), cni(f"created by {owner} ({label})", owner))
        for name, kind, owner, label in CNI_NAME_ROWS
    ],
    row(
        "cni-name-beats-its-address",
        link("cni0", "bridge", addresses=("10.244.0.1/24",)),
        cni("created by Flannel (cni0)", "Flannel"),
    ),  # fmt: skip
    row(
        "cni-kube-ipvs0-with-service-ips",
        link("kube-ipvs0", "dummy", addresses=("10.152.183.1/32", "10.152.183.10/32")),
        cni("created by kube-proxy (kube-ipvs0, IPVS mode)", "kube-proxy"),
    ),
    row(
        "cni-exact-name-under-kind-other",
        link("tunl0", "other"),
        cni("created by Calico (tunl0)", "Calico"),
    ),  # fmt: skip
    row(
        "cni-exact-name-under-kind-vxlan",
        link("vxlan.calico", "other"),
        cni("created by Calico (vxlan.calico)", "Calico"),
    ),  # fmt: skip
    row(
        "cni-cali-veth-in-the-lab",
        link("cali0", "veth"),
        cni("created by Calico (cali* veth)", "Calico"),
        node=LAB,
    ),  # fmt: skip
    row(
        "cali-name-on-a-physical-nic-is-a-nic", nic("cali0"), Verdict(S.FREE, FREE_IXGBE, "")
    ),  # fmt: skip
    row(
        "cali-name-on-kind-physical-without-pci-is-a-nic",
        nic("cali0", pci="", driver="virtio_net"),
        Verdict(S.FREE, "physical NIC (driver virtio_net): no address, no master, not in use", ""),
    ),
    row("docker0-name-on-a-physical-nic-is-a-nic", nic("docker0"), Verdict(S.FREE, FREE_IXGBE, "")),
    row(
        "cali-prefix-on-a-bridge-is-not-calico",
        link("calibr", "bridge"),
        Verdict(S.VIRTUAL, "bridge: a virtual link, not a NIC", ""),
    ),  # fmt: skip
    row(
        "lxcbr0-is-lxc-not-cilium",
        link("lxcbr0", "bridge"),
        Verdict(S.VIRTUAL, "bridge: a virtual link, not a NIC", ""),
    ),  # fmt: skip
    row(
        "veth-in-cni0",
        [link("veth3a9f", "veth", master="cni0", master_kind="bridge"), link("cni0", "bridge")],
        cni("port of bridge cni0, which belongs to Flannel", "Flannel"),
    ),
    row(
        "veth-in-docker0",
        [link("veth77", "veth", master="docker0", master_kind="bridge"), link("docker0", "bridge")],
        cni("port of bridge docker0, which belongs to Docker", "Docker"),
    ),
    row(
        "veth-in-cni0-missing-from-the-snapshot",
        link("veth3a9f", "veth", master="cni0", master_kind="bridge"),
        cni("port of bridge cni0, which belongs to Flannel", "Flannel"),
    ),
    row(
        "nic-in-ovs-datapath",
        [nic("eth1", master="ovs-system", master_kind="openvswitch"), OVS_SYSTEM],
        cni("port of Open vSwitch ovs-system, which belongs to OVN-Kubernetes", "OVN-Kubernetes"),
    ),
    row(
        "nic-in-bond-in-ovs-datapath",
        [
            nic("eth1", master="bond1", master_kind="bond"),
            link("bond1", "bond", master="ovs-system", master_kind="openvswitch"),
            OVS_SYSTEM,
        ],
        cni(
            "member of ovs-system through bond1, which belongs to OVN-Kubernetes", "OVN-Kubernetes"
        ),
    ),  # fmt: skip
    row(
        "br-ex-linux-bridge-with-ovn-on-the-node",
        [link("br-ex", "bridge"), OVS_SYSTEM],
        cni("created by OVN-Kubernetes (br-ex)", "OVN-Kubernetes"),
    ),
    row(
        "breth0-with-br-int-on-the-node",
        [link("breth0", "bridge"), link("br-int", "openvswitch")],
        cni("created by OVN-Kubernetes (breth0)", "OVN-Kubernetes"),
    ),
    row(
        "br-ex-without-ovn-is-a-plain-bridge",
        [link("br-ex", "bridge"), link("eth1", "veth", master="br-ex", master_kind="bridge")],
        Verdict(S.VIRTUAL, "bridge: a virtual link, not a NIC", ""),
        node=LAB,
    ),
    row(
        "port-of-plain-br-ex-in-the-lab",
        [link("eth1", "veth", master="br-ex", master_kind="bridge"), link("br-ex", "bridge")],
        Verdict(S.ENSLAVED, "port of bridge br-ex", "bridge br-ex"),
        node=LAB,
    ),
    row(
        "ovn-br-ex-carrying-the-default-route-is-system",
        [link("br-ex", "openvswitch", master="ovs-system", default_route_v4=True), OVS_SYSTEM],
        system("carries the default route"),
    ),
    row(
        "ovs-datapath-is-not-pulled-into-the-uplink-tree",
        [OVS_SYSTEM, link("br-ex", "openvswitch", master="ovs-system", default_route_v4=True)],
        cni("created by OVN-Kubernetes (ovs-system)", "OVN-Kubernetes"),
    ),
]

# -- enslaved: bridges, bonds, teams, SR-IOV ----------------------------------------------------

PF = nic("ens1f0", sriov_num_vfs=8)
VF_PCI = "0000:3b:02.0"


VFIO_VF_PCI = "0000:3b:02.1"
NETDEV_VF_FREE = (
    "{} (driver iavf, 0000:3b:02.0): no address, no master, not in use; host-device moves its "
    "netdev into the pod"
)
VFIO_VF_FREE = (
    "VF 1 of ens1f0 bound to vfio-pci (0000:3b:02.1), not in use: host-device takes it by "
    "pciBusID and moves nothing (DPDK mode); the pod drives it through its VFIO device"
)
PF_WITH_VFS = (
    "SR-IOV PF with {} VFs enabled{}: moving it would take the VFs away; hand out its VFs instead"
)


def vf(**facts) -> LinkFacts:
    values = {"name": "ens1f0v0", "pci": VF_PCI, "driver": "iavf", "pf_pci_address": PCI}
    values.update(facts)
    return nic(values.pop("name"), **values)


def vfio_vf() -> LinkFacts:
    return vf(
        pci=VFIO_VF_PCI, driver="vfio-pci", has_netdev=False, name="", vf_index=1, pf_name="ens1f0"
    )


ENSLAVED_ROWS = [
    row(
        "slave-of-bond",
        [nic(master="bond0", master_kind="bond"), link("bond0", "bond")],
        Verdict(S.ENSLAVED, "slave of bond bond0", "bond bond0"),
    ),
    row(
        "port-of-bridge",
        [nic(master="br-ex", master_kind="bridge"), link("br-ex", "bridge")],
        Verdict(S.ENSLAVED, "port of bridge br-ex", "bridge br-ex"),
    ),
    row(
        "port-of-team",
        [nic(master="team0", master_kind="team"), link("team0", "team")],
        Verdict(S.ENSLAVED, "port of team team0", "team team0"),
    ),
    row(
        "port-of-plain-open-vswitch",
        nic(master="ovsbr0", master_kind="openvswitch"),
        Verdict(S.ENSLAVED, "port of Open vSwitch ovsbr0", "openvswitch ovsbr0"),
    ),
    row(
        "master-kind-taken-from-the-master-link",
        [nic(master="bond7"), link("bond7", "bond")],
        Verdict(S.ENSLAVED, "slave of bond bond7", "bond bond7"),
    ),
    row(
        "master-of-an-unlisted-kind",
        nic(master="red", master_kind="vrf"),
        Verdict(S.ENSLAVED, "port of vrf red", "vrf red"),
    ),
    row(
        "master-of-unknown-kind",
        nic(master="mystery"),
        Verdict(S.ENSLAVED, "enslaved to mystery", "mystery"),
    ),
    # A VF is judged on its own facts: the PF's use stays with the PF (it is never offered),
    # the VF is named free with the PF's use in its reason.
    row(
        "vf-of-pf-carrying-the-default-route-is-free",
        [vf(), nic("ens1f0", sriov_num_vfs=8, default_route_v4=True)],
        Verdict(
            S.FREE,
            NETDEV_VF_FREE.format("VF of 0000:3b:00.0")
            + "; its PF ens1f0 stays with the node (carries the default route)",
            "",
        ),
    ),
    row(
        "vf-of-pf-holding-internal-ip-is-free",
        [vf(), nic("ens1f0", sriov_num_vfs=8, addresses=("10.0.0.5/24",))],
        Verdict(
            S.FREE,
            NETDEV_VF_FREE.format("VF of 0000:3b:00.0") + "; its PF ens1f0 stays with the node "
            "(holds the node's InternalIP 10.0.0.5 (Kubernetes API))",
            "",
        ),
    ),
    row(
        "vf-of-pf-in-the-routed-bond-is-free",
        [
            vf(vf_index=0, pf_name="ens1f0"),
            nic("ens1f0", sriov_num_vfs=8, master="bond0", master_kind="bond"),
            BOND,
        ],
        Verdict(
            S.FREE,
            NETDEV_VF_FREE.format("VF 0 of ens1f0") + "; its PF ens1f0 stays with the node "
            "(member of bond0, which carries the default route)",
            "",
        ),
    ),  # fmt: skip
    row(
        "vf-of-pf-in-ovs-is-free",
        [vf(), nic("ens1f0", sriov_num_vfs=8, master="ovs-system"), OVS_SYSTEM],
        Verdict(
            S.FREE,
            NETDEV_VF_FREE.format("VF of 0000:3b:00.0") + "; its PF ens1f0 stays with the node "
            "(port of Open vSwitch ovs-system, which belongs to OVN-Kubernetes)",
            "",
        ),
    ),
    row(
        "vf-carrying-the-default-route-itself-is-system",
        [vf(default_route_v4=True), nic("ens1f0", sriov_num_vfs=8, default_route_v4=True)],
        system("carries the default route"),
    ),
    row(
        "vf-holding-the-internal-ip-itself-is-system",
        [vf(addresses=("10.0.0.5/24",)), PF],
        system("holds the node's InternalIP 10.0.0.5 (Kubernetes API)"),
    ),
    row(
        "vf-in-the-routed-bond-is-system",
        [vf(master="bond0", master_kind="bond"), BOND, PF],
        system("member of bond0, which carries the default route"),
    ),
    row(
        "vf-in-a-plain-bond-is-enslaved",
        [vf(master="bond1", master_kind="bond"), link("bond1", "bond"), PF],
        Verdict(S.ENSLAVED, "slave of bond bond1", "bond bond1"),
    ),
    row(
        "vf-with-an-address-is-system",
        [vf(addresses=("192.168.7.2/24",)), nic("ens1f0", sriov_num_vfs=8, default_route_v4=True)],
        system("has address 192.168.7.2/24: used by the node"),
    ),
    row(
        "vf-pinned-as-the-uplink-stays-system-when-a-snapshot-hides-it",
        [vf(pinned=("10.0.0.5",)), PF],
        system(
            "held the node's InternalIP 10.0.0.5 (Kubernetes API) when last reported; the latest "
            "snapshot shows it on no NIC, though the API still lists it: kept as the node's"
        ),
    ),  # fmt: skip
    row(
        "vf-of-an-otherwise-free-pf-is-free",
        [vf(), PF],
        Verdict(S.FREE, NETDEV_VF_FREE.format("VF of 0000:3b:00.0"), ""),
    ),  # fmt: skip
    row(
        "vf-whose-pf-is-not-on-the-node",
        vf(),
        Verdict(S.FREE, NETDEV_VF_FREE.format("VF of 0000:3b:00.0"), ""),
    ),  # fmt: skip
    row(
        "pf-with-vfs",
        [PF, vf()],
        Verdict(S.ENSLAVED, PF_WITH_VFS.format(8, ""), "SR-IOV VFs"),
    ),
    row(
        "pf-with-vfs-counts-those-in-pods",
        [
            PF,
            vf(),
            vf(pci=VFIO_VF_PCI, driver="vfio-pci", has_netdev=False, name=""),
            vf(pci="0000:3b:02.2", has_netdev=False, name=""),
        ],
        Verdict(S.ENSLAVED, PF_WITH_VFS.format(8, ", 2 in pods"), "SR-IOV VFs"),
        claims=[
            PodClaim("ml", "dpdk-0", "ml/vf1", "net1", pci_address=VFIO_VF_PCI),
            PodClaim("ml", "trainer-0", "ml/vf2", "net1", pci_address="0000:3B:02.2"),
            PodClaim("ml", "old-0", "ml/vf0", "net1", pci_address=VF_PCI),  # its netdev is here
        ],
    ),
    row(
        "pf-with-vfs-counts-a-vf-moved-by-hwaddr",
        [PF, vf(pci="0000:3b:02.2", has_netdev=False, name="", mac="ba:dc:0f:fe:e0:02")],
        Verdict(S.ENSLAVED, PF_WITH_VFS.format(8, ", 1 in pods"), "SR-IOV VFs"),
        claims=[PodClaim("ml", "app-0", "ml/by-mac", "net1", mac="BA:DC:0F:FE:E0:02")],
    ),
    row(
        "vf-named-by-its-index-and-pf",
        [vf(vf_index=0, pf_name="ens1f0"), PF],
        Verdict(S.FREE, NETDEV_VF_FREE.format("VF 0 of ens1f0"), ""),
    ),
    row(
        "vfio-vf-is-free-by-pci-bus-id",
        [vfio_vf(), PF],
        Verdict(S.FREE, VFIO_VF_FREE, ""),
    ),
    row(
        "vfio-vf-in-a-pod-by-its-pci-address",
        [vfio_vf(), PF],
        Verdict(S.POD, "in pod ml/dpdk-0 as net1 via NAD ml/vf1", "pod ml/dpdk-0"),
        claims=[PodClaim("ml", "dpdk-0", "ml/vf1", "net1", pci_address=VFIO_VF_PCI)],
    ),
    row(
        "vfio-vf-of-pf-carrying-the-default-route-is-free",
        [vfio_vf(), nic("ens1f0", sriov_num_vfs=8, default_route_v4=True)],
        Verdict(
            S.FREE,
            VFIO_VF_FREE + "; its PF ens1f0 stays with the node (carries the default route)",
            "",
        ),
    ),
    row(
        "vfio-vf-reserved",
        [vfio_vf(), PF],
        Verdict(S.RESERVED, "reserved by team dpdk until 2030-01-01 00:00 UTC", "team dpdk"),
        reservations={VFIO_VF_PCI: ReservationFacts("dpdk", datetime(2030, 1, 1), "", "ana")},
    ),
    row(
        "vfio-function-that-is-no-vf-stays-userspace",
        nic(pci=VFIO_VF_PCI, driver="vfio-pci", has_netdev=False, name=""),
        Verdict(
            S.USERSPACE,
            "bound to vfio-pci (DPDK): usable only through pciBusID / a device plugin",
            "",
        ),
    ),
    row(
        "vf-without-driver-cannot-be-taken",
        [vf(driver="", has_netdev=False, name="", vf_index=3, pf_name="ens1f0"), PF],
        Verdict(
            S.MISSING,
            "VF 3 of ens1f0 has no driver bound: host-device cannot take it (its ADD fails "
            "reading the driver); bind a network or vfio-pci driver",
            "",
        ),
    ),
    row(
        "pf-with-vfs-carrying-the-default-route-is-system",
        nic("ens1f0", sriov_num_vfs=8, default_route_v4=True),
        system("carries the default route"),
    ),
    row("pf-with-zero-vfs-is-free", nic(sriov_num_vfs=0), Verdict(S.FREE, FREE_IXGBE, "")),
]

# -- virtual kinds --------------------------------------------------------------------------------

VIRTUAL_KINDS = (
    "bridge bond team vxlan geneve tun wireguard ipip sit gre openvswitch dummy macvlan ipvlan "
    "vlan other veth"
).split()

VIRTUAL_ROWS = [
    *[
        row(
            f"virtual-{kind}",
            link(f"x-{kind}"[:15], kind),
            Verdict(S.VIRTUAL, f"{kind}: a virtual link, not a NIC", ""),
        )  # fmt: skip
        for kind in VIRTUAL_KINDS
    ],
    row(
        "virtual-unknown-kind",
        link("red", "vrf"),
        Verdict(S.VIRTUAL, "vrf: a virtual link, not a NIC", ""),
    ),  # fmt: skip
    row(
        "virtual-empty-kind",
        link("odd", ""),
        Verdict(S.VIRTUAL, "other: a virtual link, not a NIC", ""),
    ),  # fmt: skip
    row("lab-veth-is-a-nic", link("eth1", "veth"), Verdict(S.FREE, FREE_VETH, ""), node=LAB),
    row(
        "lab-bridge-is-still-virtual",
        link("br1", "bridge"),
        Verdict(S.VIRTUAL, "bridge: a virtual link, not a NIC", ""),
        node=LAB,
    ),  # fmt: skip
]

# -- orphans --------------------------------------------------------------------------------------

ORPHAN = (
    "orphan returned from a dead pod as net1; its original name was eth3 "
    "(rename back: ip link set net1 name eth3)"
)

ORPHAN_ROWS = [
    row("orphan-net1", nic("net1", alias="eth3"), Verdict(S.FREE, ORPHAN, "", orphan=True)),
    row(
        "orphan-with-a-pod-interface-name-used-on-the-node",
        nic("fast0", alias="eth3"),
        Verdict(
            S.FREE,
            "orphan returned from a dead pod as fast0; its original name was eth3 "
            "(rename back: ip link set fast0 name eth3)",
            "",
            orphan=True,
        ),
        claims=[PodClaim("ml", "other-0", "ml/fast-nic", "fast0", mac="0c:42:a1:00:00:09")],
    ),
    row(
        "orphan-that-got-an-address-is-system-but-still-flagged",
        nic("net1", alias="eth3", addresses=("192.168.9.9/24",)),
        Verdict(S.SYSTEM, "has address 192.168.9.9/24: used by the node", "node", orphan=True),
    ),
    row(
        "orphan-reserved",
        nic("net1", alias="eth3"),
        Verdict(
            S.RESERVED,
            f"reserved by team rdma until 2026-12-04 18:00 UTC: RDMA test; {ORPHAN}",
            "team rdma",
            orphan=True,
        ),
        reservations={PCI: RDMA},
    ),
    row(
        "net1-without-alias-is-plain-free", nic("net1"), Verdict(S.FREE, FREE_IXGBE, "")
    ),  # fmt: skip
    row(
        "alias-equal-to-name-is-not-an-orphan",
        nic("net1", alias="net1"),
        Verdict(S.FREE, FREE_IXGBE, ""),
    ),  # fmt: skip
    row(
        "admin-alias-on-a-normal-name-is-not-an-orphan",
        nic("eth3", alias="to-tor-3"),
        Verdict(S.FREE, FREE_IXGBE, ""),
    ),  # fmt: skip
    row(
        "alias-that-is-no-interface-name-is-not-an-orphan",
        nic("net1", alias="uplink to tor 3"),
        Verdict(S.FREE, FREE_IXGBE, ""),
    ),  # fmt: skip
]

# -- reservations and free ------------------------------------------------------------------------

RESERVED = "reserved by team rdma until 2026-12-04 18:00 UTC: RDMA test"

RESERVATION_ROWS = [
    row("reserved", nic(), Verdict(S.RESERVED, RESERVED, "team rdma"), reservations={PCI: RDMA}),
    row(
        "reserved-without-purpose",
        nic(),
        Verdict(S.RESERVED, "reserved by team rdma until 2026-12-04 18:00 UTC", "team rdma"),
        reservations={PCI: ReservationFacts("rdma", UNTIL, "", "alice")},
    ),
    row(
        "reserved-until-shown-in-utc",
        nic(),
        Verdict(S.RESERVED, RESERVED, "team rdma"),
        reservations={
            PCI: ReservationFacts(
                "rdma", datetime(2026, 12, 4, 19, 0, tzinfo=CET), "RDMA test", "a"
            )
        },
    ),
    row(
        "reserved-naive-expiry-read-as-utc",
        nic(),
        Verdict(S.RESERVED, RESERVED, "team rdma"),
        reservations={
            PCI: ReservationFacts("rdma", datetime(2026, 12, 4, 18, 0), "RDMA test", "a")
        },
    ),
    row(
        "reserved-lab-veth",
        link("eth1", "veth"),
        Verdict(S.RESERVED, RESERVED, "team rdma"),
        node=LAB,
        reservations={"eth1": RDMA},
    ),  # fmt: skip
    row(
        "reserved-link-in-a-pod-stays-pod-and-names-the-reservation",
        nic(present=False),
        Verdict(
            S.POD,
            f"{IN_TRAINER.reason}; {RESERVED}",
            "pod ml/trainer-0",
            breach="reserved by team rdma, but in pod ml/trainer-0 via NAD ml/fast-nic: namespace "
            "ml belongs to no team and NAD ml/fast-nic was not applied through NICPortal for a "
            "team",
        ),
        claims=[TRAINER],
        reservations={PCI: RDMA},
    ),
    row(
        "reserved-link-in-a-pod-of-the-team-namespace-is-no-breach",
        nic(present=False),
        Verdict(S.POD, f"{IN_TRAINER.reason}; {RESERVED}", "pod ml/trainer-0"),
        claims=[replace(TRAINER, namespace_teams=frozenset({"rdma"}))],
        reservations={PCI: RDMA},
    ),
    row(
        "reserved-link-in-a-pod-of-another-team-namespace-is-a-breach",
        nic(present=False),
        Verdict(
            S.POD,
            f"{IN_TRAINER.reason}; {RESERVED}",
            "pod ml/trainer-0",
            breach="reserved by team rdma, but in pod ml/trainer-0 via NAD ml/fast-nic: namespace "
            "ml belongs to team ml",
        ),
        # The NAD was rdma's, but the namespace is ml's: the pod is ml's.
        claims=[replace(TRAINER, namespace_teams=frozenset({"ml"}), nad_team="rdma")],
        reservations={PCI: RDMA},
    ),
    row(
        "reserved-link-through-the-teams-nad-in-a-teamless-namespace-is-no-breach",
        nic(present=False),
        Verdict(S.POD, f"{IN_TRAINER.reason}; {RESERVED}", "pod ml/trainer-0"),
        claims=[replace(TRAINER, nad_team="rdma")],
        reservations={PCI: RDMA},
    ),
    row(
        "reserved-link-taken-by-the-node-names-the-reservation",
        nic(addresses=("192.168.50.2/24",)),
        system(f"has address 192.168.50.2/24: used by the node; {RESERVED}"),
        reservations={PCI: RDMA},
    ),
    row(
        "reservation-of-another-link-does-not-apply",
        nic(),
        Verdict(S.FREE, FREE_IXGBE, ""),
        reservations={PCI1: RDMA},
    ),  # fmt: skip
    row("free-physical", nic(), Verdict(S.FREE, FREE_IXGBE, "")),
    row(
        "free-physical-without-driver-or-pci",
        nic(pci="", driver=""),
        Verdict(S.FREE, "physical NIC: no address, no master, not in use", ""),
    ),
    row(
        "free-lab-veth",
        link("eth1", "veth", mac="aa:00:00:00:00:01"),
        Verdict(S.FREE, FREE_VETH, ""),
        node=LAB,
    ),  # fmt: skip
]


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), UNKNOWN_ROWS)
def test_it_marks_links_of_a_silent_agent_unknown(links, expected, node, claims, reservations):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), GONE_ROWS)
def test_it_finds_links_gone_from_the_host_in_pods_or_calls_them_missing(
    links, expected, node, claims, reservations
):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), PCI_FUNCTION_ROWS)
def test_it_judges_pci_functions_without_netdev_and_userspace_drivers(
    links, expected, node, claims, reservations
):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), SYSTEM_ROWS)
def test_it_keeps_what_the_node_uses_as_system(links, expected, node, claims, reservations):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), CNI_ROWS)
def test_it_names_the_primary_cni_only_when_facts_agree(
    links, expected, node, claims, reservations
):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), ENSLAVED_ROWS)
def test_it_gives_members_and_vfs_to_their_master_or_pf(
    links, expected, node, claims, reservations
):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), VIRTUAL_ROWS)
def test_it_rejects_virtual_links_as_nics(links, expected, node, claims, reservations):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), ORPHAN_ROWS)
def test_it_flags_orphans_returned_from_dead_pods(links, expected, node, claims, reservations):
    assert_row(links, expected, node, claims, reservations)


@pytest.mark.parametrize(("links", "expected", "node", "claims", "reservations"), RESERVATION_ROWS)
def test_it_reserves_only_free_links_and_calls_the_rest_free(
    links, expected, node, claims, reservations
):
    assert_row(links, expected, node, claims, reservations)


def test_it_returns_one_verdict_per_link_in_order_for_a_whole_node():
    links = [
        link("lo", "loopback", addresses=("127.0.0.1/8",)),
        nic("eth0", pci="0000:01:00.0", master="bond0", master_kind="bond"),
        nic("eth1", pci="0000:01:00.1", master="bond0", master_kind="bond"),
        BOND,
        link("vxlan.calico", "vxlan", addresses=("10.1.5.0/32",)),
        link("cali1234abcd", "veth"),
        nic("eth3"),
        nic("net1", pci=PCI1, alias="eth4"),
    ]
    states = [v.state for v in decide_node(NODE, links)]
    assert states == [S.SYSTEM, S.SYSTEM, S.SYSTEM, S.SYSTEM, S.CNI, S.CNI, S.FREE, S.FREE]


def test_it_decides_one_link_like_the_whole_node_does():
    links = [nic("eth0", master="bond0", master_kind="bond"), BOND, vf(), PF]
    whole = decide_node(NODE, links)
    assert [decide(each, NODE, links=links) for each in links] == whole
    # Without its node the slave of the routed bond is merely enslaved: context matters.
    assert decide(links[0], NODE).state == S.ENSLAVED


def test_it_survives_a_master_cycle():
    links = [link("a", "bridge", master="b"), link("b", "bridge", master="a")]
    assert [v.state for v in decide_node(NODE, links)] == [S.ENSLAVED, S.ENSLAVED]


def test_an_unreachable_cluster_makes_every_link_of_its_nodes_unknown_before_any_other_rule():
    why = "the API of cluster east has not answered since 2026-12-01 18:00 UTC; last known facts"
    node = replace(NODE, cluster_unreachable=why)
    route = link("eth0", "physical", addresses=("10.0.0.5/24",), default_route_v4=True)
    links = [route, nic(), nic("eth4", pci=PCI1, mac="")]
    reserved = {PCI1: RDMA}
    verdicts = decide_node(node, links, claims=[TRAINER], reservations=reserved)
    assert [(v.state, v.reason, v.holder) for v in verdicts] == [(S.UNKNOWN, why, "")] * 3
    # The same node of a reachable cluster: the rules as usual.
    usual = decide_node(NODE, links, claims=[TRAINER], reservations=reserved)
    assert [v.state for v in usual] == [S.SYSTEM, S.FREE, S.RESERVED]
