"""The pure diagnosis rules: one test per verdict, asserting the text a user reads."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

import pytest

from inventory.rules import diagnosis as d
from inventory.rules import multus, nad

NS = "default"
MULTUS = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for "
    'sandbox "abc": plugin type="multus" name="multus-cni-network" failed (add): '
    '[default/web-0/uid:{net}]: error adding container to network "{net}": {msg}'
)
DEBIAN_PLUGIN = nad.PluginFacts(version=None, supported_versions=("0.3.1", "0.4.0", "1.0.0"))
FIXED_PLUGIN = nad.PluginFacts(version="1.6.2")


def event(net: str, msg: str) -> d.EventFacts:
    return d.EventFacts(
        "FailedCreatePodSandBox", MULTUS.format(net=net, msg=msg), last_seen=datetime.now(UTC)
    )


def iface(node: str, name: str, **fields) -> d.HostInterface:
    fields.setdefault("mac", f"02:00:00:00:{ord(node[-1]) % 256:02x}:{int(name[-1]) + 1:02x}")
    return d.HostInterface(node=node, name=name, **fields)


def uplink(node: str) -> d.HostInterface:
    return iface(node, "eth0", state="system", reason="carries the default route")


INVENTORY = {
    "node-a": [
        uplink("node-a"),
        iface("node-a", "eth1"),
        iface("node-a", "eth4", state="enslaved", reason="port of bridge br-ex"),
    ],
    "node-b": [uplink("node-b"), iface("node-b", "eth1"), iface("node-b", "eth2")],
}


def config(name: str, **selector: str) -> str:
    return json.dumps({"cniVersion": "0.3.1", "name": name, "type": "host-device", **selector})


def nad_facts(name: str, cfg: str, *, resource_name: str = "", lint: bool = True) -> d.NadFacts:
    annotations = {"k8s.v1.cni.cncf.io/resourceName": resource_name} if resource_name else {}
    findings = (
        nad.lint(namespace=NS, name=name, config=cfg, annotations=annotations) if lint else []
    )
    return d.NadFacts(NS, name, config=cfg, resource_name=resource_name, findings=tuple(findings))


def facts(
    networks: str,
    nads: list[d.NadFacts],
    *,
    node: str = "node-b",
    phase: str = "Pending",
    events: tuple[d.EventFacts, ...] = (),
    inventory=None,
    plugin: nad.PluginFacts | None = DEBIAN_PLUGIN,
    status: str = "",
) -> d.DiagnosisFacts:
    return d.DiagnosisFacts(
        pod=d.PodFacts(
            NS,
            "web-0",
            node=node,
            phase=phase,
            networks=multus.parse_networks(networks, pod_namespace=NS),
            network_status=multus.parse_network_status(status),
            events=events,
        ),
        nads={n.key: n for n in nads},
        interfaces_by_node=INVENTORY if inventory is None else inventory,
        plugin=plugin,
    )


def test_it_explains_the_file_exists_collision_and_refuses_to_offer_the_uplink():
    result = d.diagnose(
        facts(
            f"{NS}/eth0-nic@net1",
            [nad_facts("eth0-nic", config("eth0-nic", device="eth0"))],
            events=(event("eth0-nic", "failed to move link file exists"),),
        )
    )

    assert result.code == "EEXIST_COLLISION"
    assert result.title == '"device": "eth0" collides with the pod\'s own eth0 (file exists)'
    assert result.explanation.startswith(
        "host-device moves the link into the pod under its host name eth0 before renaming it to "
        "net1, and the pod's eth0 (made by the primary CNI) already has that name"
    )
    assert "the bug was fixed in v1.5.0 (multus-cni #1209" in result.explanation
    assert result.fix.text.startswith(
        "Do not hand eth0 to a pod at all: it is node node-b's primary"
    )
    assert "this NAD selects node-b/eth1" in result.fix.text
    # node-a has an eth1 too: a NAD selecting by name would take it from a pod there, so the
    # offered NAD selects node-b's eth1 by its MAC.
    assert '"hwaddr": "02:00:00:00:62:02"' in result.fix.nad_yaml
    assert INVENTORY["node-b"][0].mac not in result.fix.nad_yaml
    assert result.evidence[0].label == "Event" and "file exists" in result.evidence[0].value
    assert ("Colliding pod interface", "eth0: the pod's eth0 (made by the primary CNI)") in [
        (e.label, e.value) for e in result.evidence
    ]


def test_it_offers_the_hwaddr_nad_for_a_collision_with_another_attachment():
    result = d.diagnose(
        facts(
            f"{NS}/first@eth1, {NS}/second@net2",
            [
                nad_facts("first", config("first", device="eth2")),
                nad_facts("second", config("second", device="eth1")),
            ],
            events=(event("second", "failed to move link file exists"),),
        )
    )

    assert result.code == "EEXIST_COLLISION"
    assert result.attachment == f"{NS}/second@net2"
    assert "the pod's eth1 (attachment default/first@eth1)" in result.explanation
    assert result.fix.text.startswith("Select the device by hwaddr instead of its name")
    mac = INVENTORY["node-b"][1].mac
    assert f'"hwaddr": "{mac}"' in result.fix.nad_yaml


def test_it_predicts_the_collision_before_any_event_on_an_old_plugin_only():
    networks, nads = f"{NS}/e@net1", [nad_facts("e", config("e", device="eth0"))]

    assert d.diagnose(facts(networks, nads)).code == "EEXIST_COLLISION"
    # v1.6 moves links through a temporary name: no collision, but eth0 is still the uplink.
    assert d.diagnose(facts(networks, nads, plugin=FIXED_PLUGIN)).code == "PRIMARY_NIC_REQUESTED"


def test_it_names_the_pod_holding_the_device():
    inventory = {
        "node-b": [
            uplink("node-b"),
            iface(
                "node-b",
                "eth2",
                present=False,
                has_netdev=False,
                state="pod",
                holder="pod default/trainer-0",
                reason="in pod default/trainer-0 as net1 via NAD default/fast",
            ),
            iface("node-b", "eth3"),
        ]
    }
    result = d.diagnose(
        facts(
            f"{NS}/fast@net1",
            [nad_facts("fast", config("fast", device="eth2"))],
            events=(event("fast", "failed to find host device: Link not found"),),
            inventory=inventory,
        )
    )

    assert result.code == "DEVICE_ABSENT_HELD_BY_POD"
    assert result.title == "eth2 is already in pod default/trainer-0"
    assert result.explanation == (
        "host-device finds no eth2 on node node-b and fails with `failed to find host device: "
        "Link not found`: host-device moved it into pod default/trainer-0 (in pod "
        "default/trainer-0 as net1 via NAD default/fast). A NIC can be in one pod at a time."
    )
    assert result.fix.text == (
        "Delete or move pod default/trainer-0 first, or point this pod at another free NIC; "
        "this NAD selects node-b/eth3."
    )


def test_a_device_held_by_the_pod_itself_is_healthy():
    inventory = {
        "node-b": [
            iface("node-b", "eth2", present=False, state="pod", holder="pod default/web-0"),
        ]
    }
    result = d.diagnose(
        facts(
            f"{NS}/fast@net1",
            [nad_facts("fast", config("fast", device="eth2"))],
            phase="Running",
            inventory=inventory,
        )
    )
    assert (result.code, result.severity) == ("HEALTHY", "ok")
    assert result.title == "Pod default/web-0 is running with its networks"


def test_it_names_the_node_that_has_the_device():
    result = d.diagnose(
        facts(
            f"{NS}/port@net1",
            [nad_facts("port", config("port", device="eth4"))],
            events=(event("port", "failed to find host device: Link not found"),),
        )
    )

    assert result.code == "DEVICE_ABSENT_WRONG_NODE"
    assert result.title == "eth4 is on node-a, not on node-b"
    assert "The pod was scheduled on node-b, but an interface named eth4 exists on node-a." in (
        result.explanation
    )
    assert result.fix.text.startswith(
        "Pin the pod to node-a (nodeSelector kubernetes.io/hostname: node-a), or use a NAD for a "
        "free NIC on node-b"
    )


def test_it_finds_a_renamed_orphan_and_gives_the_rename_commands():
    inventory = {
        "node-b": [
            uplink("node-b"),
            iface("node-b", "net1", alias="eth1", orphan=True, state="free"),
        ]
    }
    result = d.diagnose(
        facts(
            f"{NS}/one@net1",
            [nad_facts("one", config("one", device="eth1"))],
            events=(event("one", "failed to find host device: Link not found"),),
            inventory=inventory,
        )
    )

    assert result.code == "DEVICE_ABSENT_RENAMED"
    assert result.title == "eth1 is on node node-b, but renamed net1"
    assert "it is on the host as net1, with its original name eth1 in its alias" in (
        result.explanation
    )
    assert result.fix.commands == ("ip link set dev net1 down", "ip link set dev net1 name eth1")


def test_it_calls_a_vanished_unclaimed_device_stranded():
    inventory = {
        "node-b": [
            uplink("node-b"),
            iface("node-b", "eth3", mac="02:aa:00:00:00:03", present=False, state="missing"),
        ]
    }
    result = d.diagnose(
        facts(
            f"{NS}/three@net1",
            [nad_facts("three", config("three", hwaddr="02:aa:00:00:00:03"))],
            events=(event("three", "failed to find host device: Link not found"),),
            inventory=inventory,
        )
    )

    assert result.code == "DEVICE_ABSENT_STRANDED"
    assert (
        result.title == "02:aa:00:00:00:03 is stranded: gone from node node-b and no pod holds it"
    )
    assert "stuck in the network namespace of a pod that was force-deleted" in result.explanation
    assert 'ip -n "$NS" link set dev eth3 netns 1' in result.fix.commands


def test_a_device_nobody_has_is_called_a_typo():
    result = d.diagnose(facts(f"{NS}/x@net1", [nad_facts("x", config("x", device="eht1"))]))
    assert result.code == "DEVICE_ABSENT_EVERYWHERE"
    assert result.title == "No node has eht1"
    assert "a misspelt name or MAC, or a NIC that was never there" in result.explanation


def test_it_refuses_the_primary_nic_requested_by_hwaddr():
    mac = INVENTORY["node-a"][0].mac
    result = d.diagnose(
        facts(f"{NS}/up@net1", [nad_facts("up", config("up", hwaddr=mac))], node="node-a", phase="")
    )

    assert result.code == "PRIMARY_NIC_REQUESTED"
    assert result.title == "NAD default/up asks for node node-a's primary NIC eth0"
    assert result.explanation.startswith(
        "node-a/eth0 is the node's own uplink (carries the default route). host-device would move"
    )
    assert "(multus-cni #557)" in result.explanation
    assert mac not in result.fix.nad_yaml and "this NAD selects node-a/eth1" in result.fix.text


def test_it_explains_a_nad_without_selector_and_offers_one():
    result = d.diagnose(
        facts(
            f"{NS}/bare@net1",
            [
                nad_facts(
                    "bare",
                    json.dumps({"cniVersion": "0.3.1", "name": "bare", "type": "host-device"}),
                )
            ],
            events=(event("bare", d.MSG_NO_SELECTOR),),
        )
    )

    assert result.code == "NO_SELECTOR"
    assert result.title == "NAD default/bare selects no device"
    assert f"host-device fails with `{d.MSG_NO_SELECTOR}`" in result.explanation
    assert "this NAD selects node-b/eth1" in result.fix.text
    assert "name: bare" in result.fix.nad_yaml


def test_it_blames_the_device_plugin_when_the_nad_relies_on_one():
    cfg = json.dumps({"cniVersion": "0.3.1", "name": "vf", "type": "host-device"})
    result = d.diagnose(
        facts(
            f"{NS}/vf@net1",
            [nad_facts("vf", cfg, resource_name="intel.com/sriov_vf")],
            events=(event("vf", d.MSG_NO_SELECTOR),),
        )
    )

    assert result.code == "NO_DEVICE_ID_FROM_DEVICE_PLUGIN"
    assert result.title == "The device plugin gave host-device no device"
    assert "Usually the pod does not request the resource" in result.explanation
    assert result.fix.text.startswith(
        "Request the resource in the pod: resources.limits {intel.com/sriov_vf: 1}"
    )


def test_it_explains_a_pci_function_without_netdev():
    inventory = {
        "node-b": [
            uplink("node-b"),
            iface(
                "node-b",
                "0000:3b:00.1",
                pci_address="0000:3b:00.1",
                has_netdev=False,
                state="missing",
                driver="",
            ),
        ]
    }
    result = d.diagnose(
        facts(
            f"{NS}/pci@net1",
            [nad_facts("pci", config("pci", pciBusID="0000:3b:00.1"))],
            events=(event("pci", "failed to find device name for pci address 0000:3b:00.1"),),
            inventory=inventory,
        )
    )

    assert result.code == "PCI_WITHOUT_NETDEV"
    assert result.explanation.startswith(
        "PCI function 0000:3b:00.1 on node-b has no network interface (no driver): host-device "
        "fails with `failed to find device name for pci address …`"
    )


@pytest.mark.parametrize(
    ("networks", "name", "first"),
    [
        (f"{NS}/a@data0, {NS}/b@data0", "data0", "attachment default/a@data0"),
        (f"{NS}/a, {NS}/b@net1", "net1", "attachment default/a@net1"),
        (f"{NS}/a@eth0", "eth0", "the pod's own eth0 (made by the primary CNI)"),
    ],
)
def test_it_names_duplicate_pod_interfaces(networks, name, first):
    nads = [nad_facts(n, config(n, device="eth1")) for n in ("a", "b")]
    result = d.diagnose(facts(networks, nads))

    assert result.code == "DUPLICATE_POD_INTERFACE"
    assert result.title == f'Two interfaces named "{name}" in one pod'
    assert f"which {first} already uses" in result.explanation


def test_it_names_a_missing_nad_and_suggests_the_close_one():
    result = d.diagnose(
        facts(
            f"{NS}/uplnk@net1",
            [
                d.NadFacts(NS, "uplnk", found=False),
                nad_facts("uplink", config("uplink", device="eth1")),
            ],
            events=(event("uplnk", "cannot find a network-attachment-definition (uplnk)"),),
        )
    )

    assert result.code == "NAD_MISSING"
    assert result.title == "NAD default/uplnk does not exist"
    assert result.fix.text.endswith("Did you mean default/uplink?")


def test_it_shows_the_linter_message_for_an_invalid_nad():
    cfg = '{"type": "host-device", # eth1\n "device": "eth1"}'
    result = d.diagnose(facts(f"{NS}/bad@net1", [nad_facts("bad", cfg)]))

    assert result.code == "NAD_INVALID"
    assert result.title == "NAD default/bad is invalid"
    assert "spec.config is not valid JSON: it contains a comment" in result.explanation
    assert "Delete the comment" in result.fix.text


def test_it_says_when_the_pod_does_not_exist():
    result = d.diagnose(d.DiagnosisFacts(d.PodFacts(NS, "ghost", found=False)))
    assert result.code == "POD_NOT_FOUND"
    assert result.title == "Pod default/ghost does not exist"


def test_an_unreadable_networks_annotation_is_named():
    pod = d.PodFacts(NS, "web-0", node="node-b", phase="Pending", networks_error="networks: x")
    result = d.diagnose(d.DiagnosisFacts(pod))
    assert result.code == "NETWORKS_ANNOTATION_INVALID"
    assert "networks: x" in result.explanation


def test_pending_without_event_says_so():
    result = d.diagnose(facts(f"{NS}/ok@net1", [nad_facts("ok", config("ok", device="eth1"))]))
    assert (result.code, result.severity) == ("PENDING_NO_EVENT", "pending")
    assert "no sandbox failure was reported yet" in result.explanation


def test_a_running_pod_with_its_network_status_is_healthy_even_after_an_old_failure():
    status = json.dumps(
        [
            {"name": "k8s-pod-network", "interface": "eth0", "default": True},
            {"name": "default/ok", "interface": "net1", "mac": "02:00:00:00:00:01"},
        ]
    )
    result = d.diagnose(
        facts(
            f"{NS}/ok@net1",
            [nad_facts("ok", config("ok", device="eth0"))],
            phase="Running",
            status=status,
            events=(event("ok", "failed to move link file exists"),),
        )
    )
    assert result.code == "HEALTHY"
    assert ("network-status net1", "default/ok MAC 02:00:00:00:00:01") in [
        (e.label, e.value) for e in result.evidence
    ]


def test_an_unknown_failure_shows_the_message():
    result = d.diagnose(
        facts(
            f"{NS}/ok@net1",
            [nad_facts("ok", config("ok", device="eth1"))],
            events=(event("ok", "netplugin failed: out of cheese"),),
        )
    )
    assert result.code == "UNKNOWN_FAILURE"
    assert "out of cheese" in result.evidence[0].value


def test_an_uninventoried_node_falls_back_to_the_event_message():
    result = d.diagnose(
        facts(
            f"{NS}/ok@net1",
            [nad_facts("ok", config("ok", device="eth9"))],
            node="node-z",
            events=(event("ok", "failed to find host device: Link not found"),),
        )
    )
    assert result.code == "DEVICE_ABSENT"
    assert "The node is not in the inventory" in result.explanation


def test_recovery_commands_for_each_kind_of_stranded_nic():
    assert d.recovery_commands(name="net1", original_name="eth3", orphan=True) == (
        "ip link set dev net1 down",
        "ip link set dev net1 name eth3",
    )
    missing = d.recovery_commands(name="eth3", original_name="eth3", mac="02:AA:00:00:00:03")
    assert missing[0] == (
        "NS=$(for ns in $(ip netns list | cut -d' ' -f1); do ip -n \"$ns\" -br link | grep -qi "
        '02:aa:00:00:00:03 && echo "$ns"; done | head -n1); echo "$NS"'
    )
    assert missing[2:5] == (
        'ip -n "$NS" link set dev "$IF" down',
        'ip -n "$NS" link set dev "$IF" name eth3',
        'ip -n "$NS" link set dev eth3 netns 1',
    )
    pci = d.recovery_commands(
        name="ens1f1",
        original_name="ens1f1",
        pci_address="0000:3b:00.1",
        driver="vfio-pci",
        has_netdev=False,
    )
    assert pci == (
        "echo 0000:3b:00.1 > /sys/bus/pci/drivers/vfio-pci/unbind",
        "echo > /sys/bus/pci/devices/0000:3b:00.1/driver_override",
        "echo 0000:3b:00.1 > /sys/bus/pci/drivers_probe",
        "ls /sys/bus/pci/devices/0000:3b:00.1/net/",
    )


def test_recovery_commands_quote_hostile_names():
    commands = d.recovery_commands(name="net1", original_name="x; rm -rf /", orphan=True)
    assert commands[1] == "ip link set dev net1 name 'x; rm -rf /'"


# --- reservation breaches ------------------------------------------------------------------------

RESERVED_ETH2 = iface(
    "node-b",
    "eth2",
    mac="02:00:00:00:62:03",
    present=False,
    state="pod",
    holder="pod default/web-0",
    reserved_team="platform",
)
RUNNING_ON_ETH2 = json.dumps(
    [
        {"name": "k8s-pod-network", "interface": "eth0", "default": True},
        {"name": "default/grab", "interface": "net1", "mac": "02:00:00:00:62:03"},
    ]
)
GRAB = nad_facts("grab", config("grab", device="eth2"))


def breach_facts(nad_team: str = "", **changes) -> d.DiagnosisFacts:
    base = facts(
        f"{NS}/grab@net1",
        [replace(GRAB, team=nad_team)],
        phase="Running",
        status=RUNNING_ON_ETH2,
        inventory={"node-b": [uplink("node-b"), RESERVED_ETH2]},
    )
    return replace(base, **changes)


def test_a_running_pod_on_another_teams_reserved_nic_is_a_breach_not_healthy():
    result = d.diagnose(breach_facts(namespace_teams=frozenset({"ml"})))
    assert (result.code, result.severity) == ("RESERVATION_BREACH", "error")
    assert result.title == "Pod default/web-0 holds node-b/eth2, reserved by team platform"
    assert "nothing failed, but the NIC is reserved by team platform" in result.explanation
    assert "namespace default belongs to team ml" in result.explanation
    assert result.attachment == "default/grab@net1"
    assert "manage.py createteam platform --namespace default" in result.fix.text
    assert "Delete pod default/web-0" in result.fix.text


def test_a_teamless_namespace_and_a_nad_made_outside_nicportal_is_a_breach():
    result = d.diagnose(breach_facts())
    assert result.code == "RESERVATION_BREACH"
    assert "was not applied through NICPortal for a team" in result.explanation


def test_the_holders_nad_does_not_save_a_pod_of_another_teams_namespace():
    result = d.diagnose(breach_facts(nad_team="platform", namespace_teams=frozenset({"ml"})))
    assert result.code == "RESERVATION_BREACH"


@pytest.mark.parametrize(
    ("nad_team", "namespace_teams"),
    [
        ("", frozenset({"platform"})),
        ("", frozenset({"platform", "ml"})),
        ("platform", frozenset()),  # a teamless namespace, the holder's own NAD
    ],
)
def test_the_reserving_teams_pod_is_healthy(nad_team, namespace_teams):
    result = d.diagnose(breach_facts(nad_team=nad_team, namespace_teams=namespace_teams))
    assert result.code == "HEALTHY"


def test_a_planned_pod_on_another_teams_reserved_nic_would_be_a_breach():
    reserved = iface(
        "node-b", "eth2", state="reserved", holder="team platform", reserved_team="platform"
    )
    planned = facts(
        f"{NS}/grab@net1", [GRAB], phase="", inventory={"node-b": [uplink("node-b"), reserved]}
    )
    result = d.diagnose(planned)
    assert (result.code, result.severity) == ("WOULD_BREACH_RESERVATION", "error")
    assert "host-device would move it into the pod" in result.explanation
    assert "reserved by team platform" in result.explanation
    result = d.diagnose(replace(planned, namespace_teams=frozenset({"platform"})))
    assert result.code == "HEALTHY"
