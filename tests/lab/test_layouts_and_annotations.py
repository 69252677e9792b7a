"""Pure parts of the lab: node layouts as data, the lab's own Multus annotation parser."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lab import sriov, topology
from lab.layout import DEFAULT_LAYOUT, LayoutError, SriovSpec, load_layout, parse_layout
from lab.multus import (
    AnnotationError,
    Attachment,
    interface_names,
    parse_networks,
    plugin_error_text,
)
from nodeagent.facts import unclaimed_pci_functions
from nodeagent.sysfs import Sysfs


def test_the_sriov_demo_layout_is_the_default_one_with_a_simulated_pf_on_node_c(tmp_path):
    demo = load_layout(Path(__file__).resolve().parents[2] / "lab/layouts/sriov-demo.yaml")
    assert [n.name for n in demo.nodes] == [n.name for n in DEFAULT_LAYOUT.nodes]
    assert demo.node("node-a") == DEFAULT_LAYOUT.node("node-a")
    node_c = demo.node("node-c")
    assert node_c.sriov == SriovSpec(pf="ens3f0", vfs=("ens3f0v0", "ens3f0v1"), vfio_vfs=2)
    assert node_c.internal_ip == "10.0.0.13"  # the PF is the node's uplink
    addresses = sriov.build_tree(tmp_path, pf="ens3f0", vfs=("ens3f0v0",), vfio_vfs=1)
    assert addresses == {
        "pf": sriov.PF_ADDRESS,
        "ens3f0v0": "0000:3b:02.0",
        "vfio0": "0000:3b:02.1",
    }
    reader = Sysfs(str(tmp_path))
    pf = reader.link_device("ens3f0")
    assert (pf["pci_address"], pf["sriov_num_vfs"], pf["sriov_total_vfs"]) == (
        sriov.PF_ADDRESS,
        2,
        8,
    )
    vf = reader.link_device("ens3f0v0")
    assert (vf["pf_pci_address"], vf["vf_index"], vf["driver"]) == (sriov.PF_ADDRESS, 0, "iavf")
    (vfio,) = unclaimed_pci_functions(reader, {"ens3f0", "ens3f0v0"})
    assert (vfio["pci_address"], vfio["driver"], vfio["vf_index"]) == (
        "0000:3b:02.1",
        "vfio-pci",
        1,
    )


def test_the_default_layout_has_the_documented_nics():
    node_a = DEFAULT_LAYOUT.node("node-a")
    assert [n.name for n in node_a.nics] == ["eth0", "eth1", "eth2", "eth3", "eth4", "eth5"]
    assert node_a.internal_ip == "10.0.0.11"
    assert node_a.bridges == ("br-ex",) and node_a.calico
    assert len(node_a.calico_link) == 15 and node_a.calico_link.startswith("cali")
    assert [n.name for n in DEFAULT_LAYOUT.nodes] == ["node-a", "node-b", "node-c"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nodes": []}, "non-empty `nodes`"),
        ({"nodes": [{"name": "n1", "nics": [{"name": "eth1"}]}]}, "default route"),
        ({"nodes": [{"name": "Bad_Name"}]}, "DNS label"),
        (
            {"nodes": [{"name": "n1", "nics": [
                {"name": "eth0", "address": "10.0.0.1/24", "default_route": True},
                {"name": "averyverylongname"},
            ]}]},
            "over 11 chars",
        ),
        (
            {"nodes": [{"name": "n1", "nics": [
                {"name": "eth0", "address": "10.0.0.1/24", "default_route": True},
                {"name": "eth1", "master": "br0"},
            ]}]},
            "no bridge br0",
        ),
        *[
            (
                {"nodes": [{"name": "n1", "nics": [
                    {"name": "eth0", "address": "10.0.0.1/24", "default_route": True}, "eth1",
                ], "sriov": sriov}]},
                message,
            )
            for sriov, message in (
                ({"pf": "eth9", "vfs": ["eth1"]}, "distinct NICs of it"),
                ({"pf": "eth0", "vfs": ["eth0"]}, "distinct NICs of it"),
                ({"pf": "eth0"}, "1 to 8 VFs"),
                ({"pf": "eth0", "vfio_vfs": 9}, "1 to 8 VFs"),
                ({"pf": "eth0", "vfio_vfs": True}, "vfio_vfs a number"),
                ({"vfs": ["eth1"]}, "a mapping with pf"),
                ("eth0", "a mapping with pf"),
            )
        ],
    ],
)  # fmt: skip
def test_it_rejects_a_layout_it_cannot_build(data, message):
    with pytest.raises(LayoutError, match=message):
        parse_layout(data)


@pytest.mark.netns
def test_it_builds_and_removes_a_yaml_layout(lab_requirements):
    layout = parse_layout(
        yaml.safe_load(
            """
            nodes:
              - name: edge
                nics:
                  - {name: eth0, address: 10.0.0.21/24, default_route: true}
                  - {name: ens5, master: br0}
                  - eth7
                bridges: [br0]
            """
        )
    )
    name = "yamllayout"
    try:
        topology.build(name, layout)
        links = {link["ifname"]: link for link in topology.links(f"nplab-{name}-edge")}
        assert {"eth0", "ens5", "eth7", "br0"} <= set(links)
        assert links["ens5"]["master"] == "br0"
        assert all(link["linkinfo"]["info_kind"] == "veth" for k, link in links.items()
                   if k in ("eth0", "ens5", "eth7"))  # fmt: skip
    finally:
        topology.destroy(name)
    assert topology.list_namespaces(f"nplab-{name}-") == []


def test_it_parses_the_short_networks_form():
    assert parse_networks("ns1/a@data0, b ,ns2/c", "default") == [
        Attachment("ns1", "a", "data0"),
        Attachment("default", "b", None),
        Attachment("ns2", "c", None),
    ]


def test_it_parses_the_json_networks_form():
    value = '[{"name": "a", "interface": "x1"}, {"name": "b", "namespace": "other"}]'
    assert parse_networks(value, "default") == [
        Attachment("default", "a", "x1"),
        Attachment("other", "b", None),
    ]


def test_it_names_unnamed_interfaces_by_position():
    attachments = parse_networks("a, b@mine, c", "default")
    assert interface_names(attachments) == ["net1", "mine", "net3"]


@pytest.mark.parametrize("value", ["a/b/c", '[{"interface": "x"}]', "[not json"])
def test_it_rejects_malformed_networks_annotations(value):
    with pytest.raises(AnnotationError):
        parse_networks(value, "default")


def test_it_renders_a_plugin_error_like_libcni():
    assert plugin_error_text('{"code": 999, "msg": "boom", "details": "why"}', "") == "boom; why"
    assert plugin_error_text('{"code": 999, "msg": "boom"}', "") == "boom"
    assert plugin_error_text("garbage", "stderr text") == "stderr text"
