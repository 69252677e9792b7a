"""read/facts.py is the one place stored rows become rule inputs: every rule sees one interface
the same way (a wireless NIC is `wireless` to the NAD builder, the cluster linter and the
diagnosis alike), and the configured cluster and its Multus version are looked up once."""

from __future__ import annotations

import pytest

from inventory.read import facts
from inventory.rules import diagnosis
from tests.factories import make_cluster, make_interface, make_node, make_reservation, make_team

CNI = {"host_device": {"version": "1.6.2", "supported_versions": ["0.3.1", "1.0.0"]}}


@pytest.fixture
def node(db, settings):
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = "3.9"
    return make_node(make_cluster(name="prod"), name="worker-1", cni=CNI)


def test_a_wireless_nic_is_wireless_to_every_rule(node):
    wifi = make_interface(node, name="wlp2s0", kind="physical", wireless=True, driver="iwlwifi")
    make_interface(node, name="ens1f0", kind="", pci_address="0000:3b:00.0")
    plugin = facts.plugin_facts(node)
    fleet = {d.name: d for d in facts.devices_by_node([node])["worker-1"]}
    hosts = {h.name: h for h in facts.host_interfaces_by_node([node])["worker-1"]}
    assert facts.device_facts(wifi, plugin=plugin) == fleet["wlp2s0"]
    assert {name: d.kind for name, d in fleet.items()} == {
        "wlp2s0": "wireless",
        "ens1f0": "physical",
    }
    assert all(isinstance(h, diagnosis.HostInterface) for h in hosts.values())
    assert {name: h.kind for name, h in hosts.items()} == {
        "wlp2s0": "wireless",
        "ens1f0": "physical",
    }
    # What the diagnosis hands to the NAD rules is what the builder sees.
    assert hosts["wlp2s0"].device_facts(plugin) == fleet["wlp2s0"]


def test_the_reserving_team_and_the_plugin_reach_every_device(node):
    nic = make_interface(node, name="ens2f0", pci_address="0000:3b:00.1", state="reserved")
    make_reservation(nic, make_team("blue"))
    [device] = facts.devices_by_node([node])["worker-1"]
    [host] = facts.host_interfaces_by_node([node])["worker-1"]
    assert (device.reserved_team, host.reserved_team) == ("blue", "blue")
    assert device.plugin is not None and device.plugin.version == "1.6.2"
    assert facts.device_facts(nic, reserved_team="blue", plugin=device.plugin) == device


def test_the_configured_cluster_and_its_multus_version(node, settings):
    cluster = facts.configured_cluster()
    assert cluster is not None and cluster.name == "prod"
    assert facts.multus_version_for(cluster) == "3.9"  # the setting, the row knows none
    cluster.multus_version = "4.1"
    assert facts.multus_version_for(cluster) == "4.1"
    assert facts.multus_version_for(None) == "3.9"
    assert [n.name for n in facts.configured_nodes()] == ["worker-1"]
    assert [n.name for n in facts.cluster_nodes(cluster)] == ["worker-1"]
    assert facts.cluster_nodes(None) == []
    settings.CLUSTER_NAME = "other"
    assert facts.configured_cluster() is None
