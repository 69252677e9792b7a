"""Diagnosis against the lab: the lab kubelet starts the pod, the real host-device plugin fails
(or Multus' part of the lab does), and the diagnosis must name the cause and the fix. No Event is
written by hand: every message below is the plugin's own."""

from __future__ import annotations

import subprocess

import pytest

from inventory.models import Interface
from inventory.services import diagnosis, polling

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

NS = "default"


@pytest.fixture
def portal(lab_portal):
    return lab_portal


def host_device(name: str, **selector: str) -> dict:
    return {"cniVersion": "0.3.1", "name": name, "type": "host-device", **selector}


def mac_of(node: str, name: str) -> str:
    return Interface.objects.get(node__name=node, name=name).mac


def failed_pod(lab, name: str, node: str, networks: str) -> None:
    pod = lab.create_pod(NS, name, node, networks)
    assert pod["status"]["phase"] != "Running", f"{name} was expected to fail"


def test_device_eth0_is_diagnosed_as_the_file_exists_collision(portal):
    portal.create_nad(NS, "eth0-nic", host_device("eth0-nic", device="eth0"))
    failed_pod(portal, "web-0", "node-b", f"{NS}/eth0-nic@net1")

    result = diagnosis.diagnose(namespace=NS, name="web-0")

    assert result.code == "EEXIST_COLLISION", result
    assert "file exists" in result.evidence[0].value  # the plugin's own message, from the Event
    assert "eth0 (made by the primary CNI)" in result.explanation
    assert "v1.0.0-v1.5.x" in result.explanation  # Debian's "version unknown" build, inferred
    # eth0 is node-b's uplink: the fix must not offer it by hwaddr, but a free NIC instead.
    assert "primary NIC" in result.fix.text and "multus-cni #557" in result.fix.text
    assert mac_of("node-b", "eth0") not in result.fix.nad_yaml
    assert '"hwaddr"' in result.fix.nad_yaml or '"device"' in result.fix.nad_yaml
    assert "name: eth0-nic" in result.fix.nad_yaml


def test_a_name_collision_with_another_attachment_offers_the_hwaddr_nad(portal):
    portal.create_nad(NS, "first", host_device("first", device="eth2"))
    portal.create_nad(NS, "second", host_device("second", device="eth1"))
    # The first attachment makes "eth1" in the pod; the second moves the node's eth1 in under
    # its host name before renaming it: the kernel says EEXIST.
    failed_pod(portal, "two-nics", "node-c", f"{NS}/first@eth1, {NS}/second@net2")

    result = diagnosis.diagnose(namespace=NS, name="two-nics")

    assert result.code == "EEXIST_COLLISION", result
    assert result.attachment == f"{NS}/second@net2"
    assert f"attachment {NS}/first@eth1" in result.explanation
    assert f'"hwaddr": "{mac_of("node-c", "eth1")}"' in result.fix.nad_yaml
    assert "Select the device by hwaddr" in result.fix.text


def test_a_device_held_by_another_pod_names_that_pod(portal):
    portal.create_nad(NS, "fast", host_device("fast", device="eth2"))
    holder = portal.create_pod(NS, "trainer-0", "node-b", f"{NS}/fast@net1")
    assert holder["status"]["phase"] == "Running"
    polling.sweep_inline(workers=4)
    failed_pod(portal, "trainer-1", "node-b", f"{NS}/fast@net1")

    result = diagnosis.diagnose(namespace=NS, name="trainer-1")

    assert result.code == "DEVICE_ABSENT_HELD_BY_POD", result
    assert "Link not found" in result.evidence[0].value
    assert result.title == "eth2 is already in pod default/trainer-0"
    assert "Delete or move pod default/trainer-0 first" in result.fix.text
    # and the holder itself is healthy
    assert diagnosis.diagnose(namespace=NS, name="trainer-0").code == "HEALTHY"


def test_a_device_that_only_another_node_has_names_that_node(portal):
    portal.create_nad(NS, "bridge-port", host_device("bridge-port", device="eth4"))
    failed_pod(portal, "misplaced", "node-b", f"{NS}/bridge-port@net1")

    result = diagnosis.diagnose(namespace=NS, name="misplaced")

    assert result.code == "DEVICE_ABSENT_WRONG_NODE", result
    assert result.title == "eth4 is on node-a, not on node-b"
    assert "nodeSelector kubernetes.io/hostname: node-a" in result.fix.text
    assert any(e.label == "Found on" and e.value.startswith("node-a/eth4") for e in result.evidence)


def test_a_nad_without_selector_is_diagnosed_and_a_working_nad_offered(portal):
    portal.create_nad(NS, "bare", {"cniVersion": "0.3.1", "name": "bare", "type": "host-device"})
    failed_pod(portal, "bare-pod", "node-c", f"{NS}/bare@net1")

    result = diagnosis.diagnose(namespace=NS, name="bare-pod")

    assert result.code == "NO_SELECTOR", result
    assert (
        'specify either "device", "hwaddr", "kernelpath" or "pciBusID"' in result.evidence[0].value
    )
    assert "name: bare" in result.fix.nad_yaml
    assert '"type": "host-device"' in result.fix.nad_yaml


def test_a_device_plugin_nad_without_device_id_is_diagnosed(portal):
    portal.create_nad(
        NS,
        "sriov",
        {"cniVersion": "0.3.1", "name": "sriov", "type": "host-device"},
        annotations={"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_netdevice"},
    )
    failed_pod(portal, "dpdk-0", "node-c", f"{NS}/sriov@net1")

    result = diagnosis.diagnose(namespace=NS, name="dpdk-0")

    assert result.code == "NO_DEVICE_ID_FROM_DEVICE_PLUGIN", result
    assert "intel.com/sriov_netdevice" in result.fix.text


def test_a_nad_that_does_not_exist_is_named(portal):
    portal.create_nad(NS, "real-one", host_device("real-one", device="eth1"))
    failed_pod(portal, "typo", "node-c", f"{NS}/real-on@net1")

    result = diagnosis.diagnose(namespace=NS, name="typo")

    assert result.code == "NAD_MISSING", result
    assert result.title == "NAD default/real-on does not exist"
    assert "cannot find a network-attachment-definition" in result.evidence[0].value
    assert any(e.value == "real-one" for e in result.evidence)
    assert result.fix.text.endswith("Did you mean default/real-one?")


def test_duplicate_interface_names_in_the_annotation_are_named(portal):
    portal.create_nad(NS, "left", host_device("left", device="eth1"))
    portal.create_nad(NS, "right", host_device("right", device="eth2"))
    failed_pod(portal, "twins", "node-c", f"{NS}/left@data0, {NS}/right@data0")

    result = diagnosis.diagnose(namespace=NS, name="twins")

    assert result.code == "DUPLICATE_POD_INTERFACE", result
    assert result.title == 'Two interfaces named "data0" in one pod'
    assert f"{NS}/left@net1, {NS}/right@net2" in result.fix.text


def test_the_primary_nic_by_hwaddr_is_diagnosed_without_starting_the_pod(portal):
    # With hwaddr the real plugin WOULD move node-a's uplink out of the node: the pod is never
    # created; the same rules judge the NAD (real, in the lab API) against the real inventory.
    uplink_mac = mac_of("node-a", "eth0")
    portal.create_nad(NS, "uplink", host_device("uplink", hwaddr=uplink_mac))

    result = diagnosis.diagnose_planned(namespace=NS, node="node-a", networks=f"{NS}/uplink@net1")

    assert result.code == "PRIMARY_NIC_REQUESTED", result
    assert result.title == "NAD default/uplink asks for node node-a's primary NIC eth0"
    assert "carries the default route" in result.explanation
    assert uplink_mac not in result.fix.nad_yaml
    assert portal.get_pod(NS, "(planned pod)") is None
    assert "eth0" in portal.link_names("node-a")


def test_a_nic_left_in_a_crashed_pod_is_stranded_after_one_sweep(portal):
    portal.create_nad(NS, "crash-nic", host_device("crash-nic", device="eth3"))
    portal.create_pod(NS, "doomed", "node-c", f"{NS}/crash-nic@net1")
    polling.sweep_inline(workers=4)
    assert not any(s.node == "node-c" and s.name == "eth3" for s in diagnosis.stranded())
    portal.crash_pod(NS, "doomed")

    polling.sweep_inline(workers=4)

    found = [s for s in diagnosis.stranded() if s.node == "node-c" and s.name == "eth3"]
    assert len(found) == 1, diagnosis.stranded()
    nic = found[0]
    assert nic.kind == "missing"
    assert nic.mac and nic.mac in nic.commands[0]
    assert nic.commands[-2] == 'ip -n "$NS" link set dev eth3 netns 1'


def test_an_orphan_is_stranded_and_its_commands_bring_it_back(portal):
    node_ns = portal.node("node-c").netns
    # What host-device leaves when a pod's netns dies without DEL: the NIC back as net1, DOWN,
    # with its original name in the alias.
    for command in (
        "link set dev eth1 down",
        "link set dev eth1 name net1",
        "link set dev net1 alias eth1",
    ):
        subprocess.run(["ip", "-n", node_ns, *command.split()], check=True)
    polling.sweep_inline(workers=4)

    orphan = next(s for s in diagnosis.stranded() if s.node == "node-c" and s.kind == "orphan")
    assert (orphan.name, orphan.original_name) == ("net1", "eth1")
    assert orphan.commands == ("ip link set dev net1 down", "ip link set dev net1 name eth1")

    # A pod asking for eth1 by name fails for real, and the diagnosis finds it renamed.
    portal.create_nad(NS, "by-name", host_device("by-name", device="eth1"))
    failed_pod(portal, "wants-eth1", "node-c", f"{NS}/by-name@net1")
    result = diagnosis.diagnose(namespace=NS, name="wants-eth1")
    assert result.code == "DEVICE_ABSENT_RENAMED", result
    assert result.title == "eth1 is on node node-c, but renamed net1"
    assert result.fix.commands == orphan.commands

    # The operator's commands, run on the node, really bring it back.
    for command in orphan.commands:
        subprocess.run(["ip", "netns", "exec", node_ns, "sh", "-c", command], check=True)
    polling.sweep_inline(workers=4)
    assert Interface.objects.get(node__name="node-c", name="eth1").state == "free"
    assert not any(s.node == "node-c" and s.kind == "orphan" for s in diagnosis.stranded())


def test_the_missing_nic_commands_find_the_namespace_and_bring_the_nic_back(portal):
    # A NIC stuck in a namespace that is still alive (a force-deleted pod whose sandbox lingers).
    node_ns = portal.node("node-b").netns
    stuck = f"{portal.name}-stuck"
    subprocess.run(["ip", "netns", "add", stuck], check=True)
    try:
        subprocess.run(["ip", "-n", node_ns, "link", "set", "dev", "eth3", "down"], check=True)
        subprocess.run(
            ["ip", "-n", node_ns, "link", "set", "dev", "eth3", "name", "net1"], check=True
        )
        subprocess.run(
            ["ip", "-n", node_ns, "link", "set", "dev", "net1", "netns", stuck], check=True
        )
        polling.sweep_inline(workers=4)
        nic = next(s for s in diagnosis.stranded() if s.node == "node-b" and s.name == "eth3")
        assert nic.kind == "missing"

        # On a real node `netns 1` is the host; in the lab the node is itself a namespace.
        script = "\n".join(c for c in nic.commands if not c.startswith("#"))
        script = script.replace("netns 1", f"netns {node_ns}")
        run = subprocess.run(["bash", "-ec", script], capture_output=True, text=True)
        assert run.returncode == 0, run.stderr
        assert stuck in run.stdout

        polling.sweep_inline(workers=4)
        assert "eth3" in portal.link_names("node-b")
        assert Interface.objects.get(node__name="node-b", mac=nic.mac).state == "free"
    finally:
        subprocess.run(["ip", "netns", "del", stuck], check=False)
