"""The NAD builder's promises, checked with the real host-device plugin in the lab.

What the builder emits works: for each selector it can emit for a lab NIC (a veth), the NAD is
applied through services.nads.apply, a pod using the pod snippet's annotation starts, the NIC
moves into it under the requested name with its MAC, and comes back when the pod is deleted.
`pciBusID` and `kernelpath` cannot work on a veth (no PCI function, a /sys/devices/virtual path):
the builder refuses them, and that refusal is what is tested here.

What the builder refuses does fail: the config it would not emit is written by hand, applied
straight to the lab's API, and the real plugin's error shows up in the pod's Event.
"""

from __future__ import annotations

import json

import pytest
import yaml

from inventory.models import Interface, TeamNamespace
from inventory.services import nads, polling
from lab.multus import NETWORKS_ANNOTATION
from tests.factories import make_team, make_user

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def portal(lab_portal):
    return lab_portal


@pytest.fixture
def alice():
    team = make_team("blue")
    TeamNamespace.objects.create(team=team, pattern="default")  # where blue may apply
    return make_user("alice", teams=[team]), team


def nic(node: str, name: str) -> Interface:
    return Interface.objects.get(node__name=node, name=name)


def host_link(lab, node: str, name: str) -> dict | None:
    return next((link for link in lab.links(node) if link["ifname"] == name), None)


def sandbox_failures(lab, namespace: str, pod: str) -> list[str]:
    return [
        e["message"]
        for e in lab.pod_events(namespace, pod)
        if e["reason"] == "FailedCreatePodSandBox"
    ]


def snippet_annotation(pod_snippet: str) -> str:
    return yaml.safe_load(pod_snippet)["metadata"]["annotations"][NETWORKS_ANNOTATION]


@pytest.mark.parametrize(
    ("selector", "node", "pod_interface"),
    [("device", "node-a", "net1"), ("hwaddr", "node-b", "data0")],
)
def test_an_applied_nad_moves_the_nic_into_the_pod_and_back(
    portal, alice, selector, node, pod_interface
):
    user, team = alice
    interface = nic(node, "eth1")
    mac = host_link(portal, node, "eth1")["address"]
    fields = {
        "namespace": "default",
        "name": f"by-{selector}",
        "interface_ids": [interface.pk],
        "selector": selector,
        "pod_interface": pod_interface,
    }
    result = nads.render(user=user, team=team, **fields)
    assert result.ok, result.errors
    expected_value = "eth1" if selector == "device" else mac
    assert result.nads[0].config[selector] == expected_value

    [row] = nads.apply(user=user, team=team, **fields)
    assert row.name == f"by-{selector}"

    networks = snippet_annotation(result.pod_snippet)
    assert networks == f"default/by-{selector}@{pod_interface}"
    pod = portal.create_pod("default", f"uses-{selector}", node, networks)
    assert pod["status"]["phase"] == "Running", sandbox_failures(
        portal, "default", f"uses-{selector}"
    )
    assert host_link(portal, node, "eth1") is None
    inside = {link["ifname"]: link for link in portal.pod_links("default", f"uses-{selector}")}
    assert inside[pod_interface]["address"] == mac

    portal.delete_pod("default", f"uses-{selector}")
    back = host_link(portal, node, "eth1")
    assert back is not None and back["address"] == mac  # DEL renamed it back and returned it


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        ("pciBusID", "node-a/eth1 has no PCI address (a veth or other virtual link)"),
        ("kernelpath", "node-a/eth1 has no sysfs device path (a virtual link)"),
    ],
)
def test_pci_and_kernelpath_selectors_are_refused_for_a_veth(portal, alice, selector, why):
    user, team = alice
    result = nads.render(
        user=user,
        team=team,
        namespace="default",
        name="by-pci",
        interface_ids=[nic("node-a", "eth1").pk],
        selector=selector,
    )
    [refusal] = result.errors
    assert refusal.code == "SELECTOR_VALUE_MISSING"
    assert why in refusal.message
    assert result.nads == ()


def test_device_eth0_is_refused_and_the_real_plugin_fails_with_file_exists(portal, alice):
    user, team = alice
    uplink = nic("node-b", "eth0")
    request = nads.build_request(
        namespace="default",
        name="wants-eth0",
        interface_ids=[uplink.pk],
        selector="device",
        team=team,
    )
    result = nads.render(
        user=user,
        team=team,
        namespace="default",
        name="wants-eth0",
        interface_ids=[uplink.pk],
        selector="device",
    )
    errors = {f.code: f for f in result.errors}
    assert set(errors) == {"PRIMARY_NIC", "EEXIST_RISK"}
    assert "node-b/eth0 is the node's primary NIC" in errors["PRIMARY_NIC"].message
    assert "failed to move link file exists" in errors["EEXIST_RISK"].message
    with pytest.raises(nads.NadRefused):
        nads.apply(
            user=user,
            team=team,
            namespace="default",
            name="wants-eth0",
            interface_ids=[uplink.pk],
            selector="device",
        )

    # The config the builder refused, by hand from the refused request.
    [device] = request.devices
    config = {
        "cniVersion": "0.3.1",
        "name": request.name,
        "type": "host-device",
        "device": device.name,
    }
    portal.create_nad(request.namespace, request.name, config)
    pod = portal.create_pod("default", "eth0-pod", "node-b", f"default/{request.name}")
    assert pod["status"]["phase"] == "Pending"
    [message] = sandbox_failures(portal, "default", "eth0-pod")
    assert "failed to move link file exists" in message
    assert host_link(portal, "node-b", "eth0") is not None


def test_a_nic_in_another_pod_is_refused_and_the_real_plugin_cannot_find_it(portal, alice):
    user, team = alice
    interface = nic("node-c", "eth2")
    nads.apply(
        user=user, team=team, namespace="default", name="first", interface_ids=[interface.pk]
    )
    assert (
        portal.create_pod("default", "holder", "node-c", "default/first")["status"]["phase"]
        == "Running"
    )
    polling.sweep_inline(workers=4)  # the inventory learns the NIC is in a pod
    interface.refresh_from_db()
    assert interface.state == "pod"

    fields = {
        "namespace": "default",
        "name": "second",
        "interface_ids": [interface.pk],
        "selector": "device",
    }
    [refusal] = nads.render(user=user, team=team, **fields).errors
    assert refusal.code == "DEVICE_IN_POD"
    assert "is already in a pod" in refusal.message
    assert "`failed to find host device: Link not found`" in refusal.message

    config = {"cniVersion": "0.3.1", "name": "second", "type": "host-device", "device": "eth2"}
    portal.create_nad("default", "second", json.dumps(config))
    pod = portal.create_pod("default", "latecomer", "node-c", "default/second")
    assert pod["status"]["phase"] == "Pending"
    [message] = sandbox_failures(portal, "default", "latecomer")
    assert "failed to find host device" in message and "Link not found" in message
