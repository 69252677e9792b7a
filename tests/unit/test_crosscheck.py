"""The snapshot cross-checked with the Kubernetes API (rules/crosscheck.py through the ownership
rules): the NIC that holds a node address or the default route is pinned, a snapshot that hides
it does not free it, and every contradiction is a finding."""

from __future__ import annotations

from datetime import UTC, datetime

from inventory.rules.crosscheck import DEFAULT_ROUTE, cross_check
from inventory.rules.ownership import LinkFacts, NodeFacts, Verdict, judge_node
from inventory.rules.states import OwnershipState as S

NODE = NodeFacts("n1", internal_ips=("10.0.0.5",), external_ips=("203.0.113.5",))
PINNED = ("10.0.0.5", DEFAULT_ROUTE)


def nic(name: str, pci: str, **facts) -> LinkFacts:
    return LinkFacts(key=pci, name=name, kind="physical", driver="ixgbe", pci_address=pci, **facts)


def eth0(**facts) -> LinkFacts:
    return nic("eth0", "0000:3b:00.0", **facts)


def eth1(**facts) -> LinkFacts:
    return nic("eth1", "0000:3b:00.1", **facts)


REAL_ETH0 = eth0(addresses=("10.0.0.5/24",), default_route_v4=True)
# What a forged (or broken) snapshot says of the same NIC: nothing at all.
HIDDEN_ETH0 = eth0(pinned=PINNED)
KEPT_REASON = (
    "held the node's InternalIP 10.0.0.5 (Kubernetes API) when last reported; the latest"
    " snapshot shows it on no NIC, though the API still lists it; carried the default route when"
    " last reported; the latest snapshot shows no default route on any NIC: kept as the node's"
)


def findings(node: NodeFacts, links: list[LinkFacts]) -> dict[str, dict]:
    judged = judge_node(node, links)
    return {f.code: f.as_dict() for f in judged.findings}


def test_the_uplink_is_pinned_with_what_it_holds_for_the_node():
    verdicts = judge_node(NODE, [REAL_ETH0, eth1()]).verdicts
    assert verdicts[0] == Verdict(
        S.SYSTEM, "carries the default route", "node", pinned=("10.0.0.5", DEFAULT_ROUTE)
    )
    assert verdicts[1].state == S.FREE and verdicts[1].pinned == ()


def test_a_nic_holding_the_external_ip_is_system_naming_the_kubernetes_api():
    public = eth1(addresses=("203.0.113.5/32",))
    verdict = judge_node(NODE, [REAL_ETH0, public]).verdicts[1]
    assert verdict == Verdict(
        S.SYSTEM,
        "holds the node's ExternalIP 203.0.113.5 (Kubernetes API)",
        "node",
        pinned=("203.0.113.5",),
    )


def test_a_snapshot_that_hides_the_uplink_does_not_free_it():
    judged = judge_node(NODE, [HIDDEN_ETH0, eth1()])
    assert judged.verdicts[0] == Verdict(S.SYSTEM, KEPT_REASON, "node", pinned=PINNED)
    assert judged.verdicts[1].state == S.FREE
    assert {f.code: (f.severity, f.kept) for f in judged.findings} == {
        "internal_ip_on_no_nic": ("warning", ("eth0",)),
        "default_route_gone": ("warning", ("eth0",)),
    }
    by_code = {f.code: f.message for f in judged.findings}
    assert by_code["internal_ip_on_no_nic"] == (
        "The Kubernetes API lists 10.0.0.5 as this node's InternalIP, but no NIC in the agent's"
        " latest snapshot holds it; eth0 held it when last reported and stays system."
    )
    assert by_code["default_route_gone"] == (
        "The agent's latest snapshot shows no default route; eth0 carried it when last"
        " reported and stays system."
    )


def test_a_snapshot_that_leaves_the_uplink_out_does_not_make_it_missing():
    gone = eth0(pinned=PINNED, present=False, addresses=("10.0.0.5/24",))
    verdict = judge_node(NODE, [gone, eth1()]).verdicts[0]
    assert verdict.state == S.SYSTEM and verdict.pinned == PINNED
    assert verdict.reason.endswith("kept as the node's")


def test_the_members_of_a_hidden_uplink_bond_stay_system():
    bond = LinkFacts(key="bond0", name="bond0", kind="bond", pinned=PINNED)
    slave = eth1(master="bond0", master_kind="bond")
    verdicts = judge_node(NODE, [bond, slave]).verdicts
    assert verdicts[0].state == S.SYSTEM
    assert verdicts[1] == Verdict(
        S.SYSTEM, "member of bond0, which was the node's uplink when last reported", "node"
    )


def test_an_address_that_moved_to_another_nic_moves_the_pin():
    moved = eth1(addresses=("10.0.0.5/24",), default_route_v4=True)
    judged = judge_node(NODE, [HIDDEN_ETH0, moved])
    assert judged.verdicts[0].state == S.FREE and judged.verdicts[0].pinned == ()
    assert judged.verdicts[1].state == S.SYSTEM and judged.verdicts[1].pinned == PINNED
    assert judged.findings == []


def test_an_address_the_api_no_longer_lists_releases_the_pin():
    readdressed = NodeFacts("n1", internal_ips=("10.0.9.9",))
    routed = eth1(addresses=("10.0.9.9/24",), default_route_v4=True)
    judged = judge_node(readdressed, [HIDDEN_ETH0, routed])
    assert judged.verdicts[0].state == S.FREE and judged.verdicts[0].pinned == ()
    assert judged.findings == []


def test_a_node_the_api_lists_no_address_for_keeps_the_memory_without_deciding():
    judged = judge_node(NodeFacts("n1"), [eth0(pinned=("10.0.0.5",)), eth1(default_route_v4=True)])
    assert judged.verdicts[0].state == S.FREE and judged.verdicts[0].pinned == ("10.0.0.5",)
    assert judged.findings == []
    # Once the API lists the address again, the snapshot that hides it meets the pin.
    again = judge_node(NODE, [eth0(pinned=judged.verdicts[0].pinned), eth1()])
    assert again.verdicts[0].state == S.SYSTEM


def test_the_default_route_pin_holds_only_while_no_nic_carries_a_default_route():
    route_only = eth0(pinned=(DEFAULT_ROUTE,))
    other_route = eth1(default_route_v6=True)
    judged = judge_node(NodeFacts("n1"), [route_only, other_route])
    assert judged.verdicts[0].state == S.FREE
    assert judged.verdicts[1].pinned == (DEFAULT_ROUTE,)
    assert judged.findings == []


def test_without_memory_the_contradiction_is_still_flagged():
    """A first snapshot that already hides the uplink: nothing to pin, but not silent."""
    judged = judge_node(NODE, [eth0(), eth1()])
    assert [f.as_dict() for f in judged.findings] == [
        {
            "code": "internal_ip_on_no_nic",
            "severity": "warning",
            "message": "The Kubernetes API lists 10.0.0.5 as this node's InternalIP, but no NIC"
            " in the agent's latest snapshot holds it.",
            "kept": [],
        }
    ]


def test_a_hidden_external_ip_keeps_its_nic_and_is_flagged():
    public = eth1(pinned=("203.0.113.5",))
    judged = judge_node(NODE, [REAL_ETH0, public])
    assert judged.verdicts[1].state == S.SYSTEM
    assert "held the node's ExternalIP 203.0.113.5 (Kubernetes API)" in judged.verdicts[1].reason
    assert [(f.code, f.kept) for f in judged.findings] == [("external_ip_hidden", ("eth1",))]
    assert judged.findings[0].message == (
        "The Kubernetes API lists 203.0.113.5 as this node's ExternalIP, but no NIC in the"
        " agent's latest snapshot holds it; eth1 held it when last reported and stays system."
    )


def test_an_external_ip_on_no_nic_is_no_contradiction():
    # Cloud providers NAT the ExternalIP at the edge: no NIC ever holds it.
    assert findings(NODE, [REAL_ETH0, eth1()]) == {}


def test_an_internal_ip_apart_from_the_default_route_is_noted_not_warned():
    private = eth0(addresses=("10.0.0.5/24",))
    public = eth1(addresses=("198.51.100.7/24",), default_route_v4=True)
    found = findings(NODE, [private, public])
    assert found == {
        "internal_ip_apart_from_default_route": {
            "code": "internal_ip_apart_from_default_route",
            "severity": "info",
            "message": "The InternalIP 10.0.0.5 is on eth0, but the IPv4 default route leaves"
            " through eth1: both stay system. Expected on a node with separate cluster and"
            " outside networks.",
            "kept": [],
        }
    }
    # An IPv6 default route says nothing of where IPv4 traffic leaves.
    assert findings(NODE, [private, eth1(default_route_v6=True)]) == {}


def test_a_silent_agent_keeps_the_pins():
    silent = NodeFacts(
        "n1",
        internal_ips=("10.0.0.5",),
        agent_fresh=False,
        agent_last_contact=datetime(2026, 12, 1, tzinfo=UTC),
    )
    verdict = judge_node(silent, [REAL_ETH0]).verdicts[0]
    assert verdict.state == S.UNKNOWN and verdict.pinned == PINNED


def test_nothing_reported_nothing_to_check():
    assert cross_check(NODE, []).findings == []
    assert cross_check(NODE, []).pins == {}


def test_an_empty_snapshot_neither_frees_nor_forgets_the_uplink():
    """Every link vanished at once (an answer with no links): the pins hold, and are flagged."""
    judged = judge_node(NODE, [eth0(pinned=PINNED, present=False), eth1(present=False)])
    assert judged.verdicts[0].state == S.SYSTEM and judged.verdicts[0].pinned == PINNED
    assert judged.verdicts[1].state == S.MISSING
    assert [f.code for f in judged.findings] == ["internal_ip_on_no_nic", "default_route_gone"]
