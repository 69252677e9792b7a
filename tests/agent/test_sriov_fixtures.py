"""SR-IOV facts of the sysfs fixture node (tests/fixtures/sysfs.py) as the real agent code
reports them: a netdev VF, a vfio VF, a VF in a pod, a PF with VFs, a PF without."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fastjsonschema
import pytest

from nodeagent.facts import assemble
from nodeagent.schema import SNAPSHOT_SCHEMA
from nodeagent.sysfs import Sysfs
from tests.agent.conftest import ip
from tests.fixtures import sysfs as fx

validate = fastjsonschema.compile(SNAPSHOT_SCHEMA)


@pytest.fixture
def node_root(tmp_path: Path) -> Path:
    return fx.sriov_node(tmp_path / "sys")


def facts(root: Path) -> tuple[dict, dict]:
    links, functions = assemble(fx.sriov_node_links(), [], {2}, set(), Sysfs(str(root)))
    return {link["name"]: link for link in links}, {f["pci_address"]: f for f in functions}


def test_a_netdev_vf_names_its_pf_its_index_and_its_driver(node_root):
    links, _ = facts(node_root)
    vf = links["ens3f0v0"]
    assert (vf["pci_address"], vf["driver"], vf["device_id"]) == (fx.NETDEV_VF, "iavf", "0x154c")
    assert (vf["pf_pci_address"], vf["pf_name"], vf["vf_index"]) == (fx.PF, "ens3f0", 0)


def test_a_vfio_vf_is_a_function_without_netdev_with_its_pf_and_index(node_root):
    _, functions = facts(node_root)
    vf = functions[fx.VFIO_VF]
    assert vf["driver"] == "vfio-pci"
    assert (vf["pf_pci_address"], vf["pf_name"], vf["vf_index"]) == (fx.PF, "ens3f0", 1)


def test_a_vf_in_a_pod_is_still_listed_by_its_pci_address(node_root):
    _, functions = facts(node_root)
    vf = functions[fx.POD_VF]
    assert (vf["driver"], vf["pf_name"], vf["vf_index"]) == ("iavf", "ens3f0", 2)


def test_a_pf_reports_its_vf_counts_and_is_no_vf(node_root):
    links, functions = facts(node_root)
    pf, idle = links["ens3f0"], links["ens3f1"]
    assert (pf["sriov_total_vfs"], pf["sriov_num_vfs"]) == (8, 3)
    assert (idle["sriov_total_vfs"], idle["sriov_num_vfs"]) == (8, 0)
    assert pf["pf_pci_address"] is None and pf["vf_index"] is None
    assert links["eno1"]["sriov_total_vfs"] is None  # not SR-IOV capable
    assert set(functions) == {fx.VFIO_VF, fx.POD_VF}  # the others have their netdev here


def test_a_vf_whose_pf_lists_no_virtfn_link_for_it_has_no_index(node_root):
    (node_root / "bus" / "pci" / "devices" / fx.PF / "virtfn1").unlink()
    _, functions = facts(node_root)
    assert functions[fx.VFIO_VF]["vf_index"] is None
    assert functions[fx.VFIO_VF]["pf_pci_address"] == fx.PF


def test_a_vf_whose_pf_netdev_is_not_in_the_namespace_has_no_pf_name(node_root):
    links, functions = assemble(
        [fx.raw_link(5, "ens3f0v0")], [], set(), set(), Sysfs(str(node_root))
    )
    assert links[0]["pf_name"] is None and links[0]["pf_pci_address"] == fx.PF
    by_address = {f["pci_address"]: f for f in functions}
    assert by_address[fx.VFIO_VF]["pf_name"] is None


def test_the_snapshot_schema_takes_the_sriov_facts_and_refuses_bad_ones(node_root):
    links, functions = assemble(fx.sriov_node_links(), [], {2}, set(), Sysfs(str(node_root)))
    snapshot = {
        "schema_version": 1,
        "node": "sriov-0",
        "agent_version": "test",
        "collected_at": "2026-12-01T12:00:00Z",
        "netns": None,
        "links": links,
        "pci_functions": functions,
        "cni": {"bin_dirs": [], "host_device": None},
    }
    validate(snapshot)
    for bad in (-1, "1", 70000):
        broken = json.loads(json.dumps(snapshot))
        broken["pci_functions"][0]["vf_index"] = bad
        with pytest.raises(fastjsonschema.JsonSchemaException, match="vf_index"):
            validate(broken)
    older = json.loads(json.dumps(snapshot))  # an agent from before vf_index and pf_name
    for link in older["links"]:
        del link["vf_index"]
    for function in older["pci_functions"]:
        del function["vf_index"], function["pf_name"]
    validate(older)


@pytest.mark.netns
def test_the_agent_process_reports_the_sriov_node(make_netns, start_agent, tmp_path):
    root = fx.sriov_node(tmp_path / "sys")
    netns = make_netns("sriov")
    ip("link", "add", "ens3f0", "type", "veth", "peer", "name", "ens3f0v0", netns=netns)
    agent = start_agent("--netns", netns, "--sysfs-root", str(root))
    status, _, body = agent.snapshot()
    assert status == 200, body
    snapshot = json.loads(body)
    validate(snapshot)
    links = {link["name"]: link for link in snapshot["links"]}
    assert links["ens3f0v0"]["vf_index"] == 0 and links["ens3f0v0"]["pf_name"] == "ens3f0"
    functions = {f["pci_address"]: f for f in snapshot["pci_functions"]}
    assert functions[fx.VFIO_VF]["driver"] == "vfio-pci"
    assert functions[fx.VFIO_VF]["vf_index"] == 1


@pytest.mark.parametrize(
    ("offset", "stride"),
    [
        (None, None),  # no SR-IOV capability files: the virtfn links are searched
        ("16", "0"),  # a stride of 0 is no stride
        ("15", "1"),  # a wrong offset: the guessed virtfn link points elsewhere
        ("garbage", "1"),
    ],
)
def test_the_vf_number_survives_missing_or_wrong_offset_and_stride(node_root, offset, stride):
    pf_dir = node_root / "bus" / "pci" / "devices" / fx.PF
    for name, value in (("sriov_offset", offset), ("sriov_stride", stride)):
        (pf_dir / name).unlink()
        if value is not None:
            (pf_dir / name).write_text(value + "\n")
    links, functions = facts(node_root)
    assert links["ens3f0v0"]["vf_index"] == 0
    assert (functions[fx.VFIO_VF]["vf_index"], functions[fx.POD_VF]["vf_index"]) == (1, 2)


def test_the_vf_number_is_read_from_the_pfs_offset_and_stride(node_root):
    # virtfn1 now points at VF 2 too: a search of the links would find virtfn1 first, the
    # offset and stride say 2 and virtfn2 confirms it. VF 1 has no link left at all.
    pf_dir = node_root / "bus" / "pci" / "devices" / fx.PF
    (pf_dir / "virtfn1").unlink()
    os.symlink(f"../{fx.POD_VF}", pf_dir / "virtfn1")
    _, functions = facts(node_root)
    assert functions[fx.POD_VF]["vf_index"] == 2
    assert functions[fx.VFIO_VF]["vf_index"] is None
