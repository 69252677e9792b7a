"""Properties of the ownership engine over random nodes: whatever the facts (cycles of masters,
duplicate names, unparsable addresses, VFs without PFs), every link gets exactly one sensible
verdict, and nothing the node or the CNI uses is ever called free."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from inventory.rules.ownership import (
    LinkFacts,
    NodeFacts,
    PodClaim,
    ReservationFacts,
    decide,
    decide_node,
)
from inventory.rules.states import OwnershipState as S

NAMES = (
    "lo eth0 eth1 eth3 ens1f0 net1 net2 fast0 bond0 br0 br-ex breth0 cni0 docker0 cali12ab "
    "lxc99 lxcbr0 tunl0 vxlan.calico ovs-system br-int kube-ipvs0 wlan0 veth1"
).split()
KINDS = (
    "physical loopback veth bridge bond team vlan vxlan macvlan ipvlan tun dummy wireguard "
    "geneve ipip sit gre openvswitch other vrf"
).split() + [""]
MACS = ("", "0c:42:a1:00:00:01", "0C:42:A1:00:00:02", "aa:00:00:00:00:03")
PCIS = ("", "0000:3b:00.0", "0000:3b:00.1", "0000:3b:02.0")
ADDRESSES = ("10.0.0.5/24", "fe80::1/64", "192.168.50.2/24", "2001:db8::5/64", "bogus", "fd00::5")
DRIVERS = ("", "ixgbe", "iavf", "mlx5_core", "vfio-pci", "igb_uio", "virtio_net")

names = st.sampled_from(NAMES)
links = st.builds(
    LinkFacts,
    key=st.sampled_from(("k1", "k2", "k3", *PCIS[1:], *MACS[1:])),
    name=names,
    kind=st.sampled_from(KINDS),
    mac=st.sampled_from(MACS),
    permanent_mac=st.sampled_from(MACS),
    alias=st.sampled_from(("", "eth4", "uplink to tor", "net1")),
    master=st.sampled_from(("", *NAMES)),
    master_kind=st.sampled_from(("", "bridge", "bond", "team", "openvswitch", "vrf")),
    addresses=st.lists(st.sampled_from(ADDRESSES), max_size=2).map(tuple),
    default_route_v4=st.booleans(),
    default_route_v6=st.booleans(),
    driver=st.sampled_from(DRIVERS),
    pci_address=st.sampled_from(PCIS),
    pf_pci_address=st.sampled_from(PCIS),
    sriov_num_vfs=st.sampled_from((0, 0, 4)),
    wireless=st.booleans(),
    has_netdev=st.booleans(),
    present=st.booleans(),
)
nodes = st.builds(
    NodeFacts,
    name=st.just("node-a"),
    internal_ips=st.sampled_from(((), ("10.0.0.5",), ("10.0.0.5", "fd00::5"), ("bogus",))),
    agent_fresh=st.booleans(),
    agent_last_contact=st.sampled_from((None, datetime(2026, 3, 1, 9, 30, tzinfo=UTC))),
    veth_nics=st.booleans(),
)
claims = st.lists(
    st.builds(
        PodClaim,
        namespace=st.just("ml"),
        pod=st.sampled_from(("trainer-0", "trainer-1")),
        nad=st.just("ml/fast-nic"),
        pod_interface=st.sampled_from(("net1", "fast0")),
        mac=st.sampled_from(MACS),
        pci_address=st.sampled_from(PCIS),
    ),
    max_size=3,
)
reservations = st.dictionaries(
    st.sampled_from(("k1", "k2", *PCIS[1:])),
    st.just(ReservationFacts("rdma", datetime(2026, 12, 4, 18, 0), "RDMA test", "alice")),
    max_size=2,
)
PROPERTY = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY
@given(nodes, st.lists(links, max_size=8), claims, reservations)
def test_it_gives_every_link_exactly_one_readable_verdict(node, facts, pod_claims, reserved):
    verdicts = decide_node(node, facts, claims=pod_claims, reservations=reserved)

    assert len(verdicts) == len(facts)
    for verdict in verdicts:
        assert verdict.state in {s.value for s in S}
        assert isinstance(verdict.state, S)
        assert verdict.reason.strip()
        assert isinstance(verdict.holder, str)


@PROPERTY
@given(nodes, st.lists(links, min_size=1, max_size=8), claims, reservations)
def test_it_never_frees_what_something_uses(node, facts, pod_claims, reserved):
    verdicts = decide_node(node, facts, claims=pod_claims, reservations=reserved)

    for link, verdict in zip(facts, verdicts, strict=True):
        if not node.agent_fresh:
            assert verdict.state == S.UNKNOWN
        if verdict.state in {S.FREE, S.RESERVED}:
            assert link.present and link.has_netdev and node.agent_fresh
            assert not (link.default_route_v4 or link.default_route_v6 or link.master)
            assert not link.wireless and link.kind != "loopback"
            assert link.driver not in {"vfio-pci", "igb_uio", "uio_pci_generic"}
            assert link.kind == "physical" or (link.kind == "veth" and node.veth_nics)
            assert all(address.startswith("fe80::") for address in link.addresses)
        if verdict.state == S.RESERVED:
            assert verdict.holder == "team rdma" and link.key in reserved
        if verdict.state == S.POD:
            assert verdict.holder.startswith("pod ml/trainer-")
        if verdict.orphan:
            assert link.alias and link.alias != link.name


@PROPERTY
@given(nodes, st.lists(links, min_size=1, max_size=6), claims, reservations)
def test_it_decides_a_single_link_as_the_whole_node_does(node, facts, pod_claims, reserved):
    whole = decide_node(node, facts, claims=pod_claims, reservations=reserved)
    single = [
        decide(link, node, links=facts, claims=pod_claims, reservations=reserved) for link in facts
    ]
    assert single == whole
