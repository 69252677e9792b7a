"""Linting the cluster's NADs reads only the interfaces they could select
(rules/nad/selection.py, read/facts.devices_by_node(only=...), sync/lint.py): the findings are
the ones the whole inventory gives, word for word, for every way a config selects a device."""

from __future__ import annotations

import json

import pytest

from inventory.choices import OwnershipState
from inventory.models import NetworkAttachment
from inventory.read import facts
from inventory.rules import nad
from inventory.rules.nad.selection import DeviceValues, device_values
from inventory.sync.lint import lint_cluster_nads
from tests.factories import make_cluster, make_interface, make_node, make_reservation, make_team

pytestmark = pytest.mark.django_db

PLUGIN = {"host_device": {"version": "1.6.0", "supported_versions": ["0.3.1", "1.0.0", "1.1.0"]}}


def host_device(**selector):
    return json.dumps({"cniVersion": "1.0.0", "name": "n", "type": "host-device", **selector})


CONFIGS = {
    "uplink by name": host_device(device="eth0"),
    "free NIC by name": host_device(device="ens1f0"),
    "absent name": host_device(device="ens9"),
    "by MAC, upper case with dashes": host_device(hwaddr="02-AA-00-00-00-01"),
    "by PCI, upper case": host_device(pciBusID="0000:3B:00.1"),
    "two selectors": host_device(device="ens1f1", pciBusID="0000:3b:00.0"),
    "conflist": json.dumps(
        {
            "cniVersion": "1.0.0",
            "name": "chain",
            "plugins": [{"type": "host-device", "device": "ens1f1"}, {"type": "tuning"}],
        }
    ),
    "kernelpath": host_device(kernelpath="/sys/devices/pci0000:00/0000:00:03.0/0000:3b:00.0"),
    "seed comment": (
        '{"cniVersion": "0.3.1", # the uplink\n "type": "host-device", "device": "eth0"}'
    ),
    "not host-device": json.dumps({"cniVersion": "1.0.0", "type": "macvlan", "master": "eth0"}),
    "selector not a string": host_device(device=7),
}


@pytest.fixture
def fleet():
    cluster = make_cluster(name="lint-sel")
    team = make_team("storage")
    nodes = []
    for n in range(4):
        node = make_node(cluster, name=f"w{n}", cni=PLUGIN)
        make_interface(
            node,
            name="eth0",
            state=OwnershipState.SYSTEM,
            reason="carries the node's default route",
            default_route_v4=True,
        )
        make_interface(node, name="ens1f0", driver="ice", pci_address=f"0000:3b:00.{n}")
        ens1f1 = make_interface(node, name="ens1f1", driver="ice", mac=f"02:aa:00:00:00:0{n}")
        if n == 1:
            make_reservation(ens1f1, team)
        make_interface(node, name="ens2f0", driver="ice")  # selected by no NAD
        nodes.append(node)
    return cluster, nodes


@pytest.mark.parametrize("label", sorted(CONFIGS))
def test_the_selected_interfaces_give_the_findings_of_the_whole_inventory(fleet, label):
    cluster, nodes = fleet
    config = CONFIGS[label]
    plugins = facts.plugins_by_node(nodes)

    def findings(devices):
        return [
            f.as_dict()
            for f in nad.lint(
                namespace="ml",
                name="n",
                config=config,
                annotations={},
                devices_by_node=devices,
                plugins_by_node=plugins,
                multus_version="4.2.3",
            )
        ]

    whole = facts.devices_by_node(nodes)
    values = device_values(config)
    read = facts.devices_by_node(nodes, only=values) if values is not None else whole
    assert findings(read) == findings(whole)
    if values is not None:  # fewer interfaces read, never a node left out
        assert sum(map(len, read.values())) < sum(map(len, whole.values()))
        assert read.keys() == whole.keys()


def test_what_a_config_could_select_is_read_generously():
    assert device_values(host_device(device="ens1f1", pciBusID="0000:3B:00.0")) == DeviceValues(
        names=frozenset({"ens1f1"}), pcis=frozenset({"0000:3b:00.0"})
    )
    assert device_values(host_device(hwaddr="02-AA-00-00-00-01")).macs >= {"02:aa:00:00:00:01"}
    assert device_values(CONFIGS["kernelpath"]) is None  # no column holds it: read everything
    assert device_values(CONFIGS["seed comment"]) == DeviceValues()  # nothing parses
    assert not device_values(CONFIGS["not host-device"])


def test_the_sweep_lint_stores_the_whole_inventorys_findings(fleet, django_assert_max_num_queries):
    cluster, _ = fleet
    for label, config in CONFIGS.items():
        NetworkAttachment.objects.create(
            cluster=cluster, namespace="ml", name=label.replace(" ", "-")[:60], config=config
        )
    assert lint_cluster_nads(cluster, force=True) > 0
    stored = dict(NetworkAttachment.objects.values_list("name", "findings"))
    # The same lint over every interface of the fleet (the kernelpath NAD makes the sweep read
    # everything too, so lint without it to see the narrowed read at work).
    NetworkAttachment.objects.filter(name="kernelpath").delete()
    NetworkAttachment.objects.update(findings=[])
    lint_cluster_nads(cluster, force=True)
    narrowed = dict(NetworkAttachment.objects.values_list("name", "findings"))
    whole = facts.devices_by_node(facts.cluster_nodes(cluster))
    for name, findings in narrowed.items():
        row = NetworkAttachment.objects.get(name=name)
        expected = [
            f.as_dict()
            for f in nad.lint(
                namespace=row.namespace,
                name=row.name,
                config=row.config,
                annotations={},
                devices_by_node=whole,
                plugins_by_node=facts.plugins_by_node(facts.cluster_nodes(cluster)),
                multus_version=facts.multus_version_for(cluster),
            )
        ]
        assert findings == expected == stored[name], name
