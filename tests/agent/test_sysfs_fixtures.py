"""PCI, SR-IOV and vfio facts from sysfs fixture trees (what veth links can never show)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import fastjsonschema
import pytest

from nodeagent.facts import assemble, link_kind
from nodeagent.schema import SNAPSHOT_SCHEMA
from nodeagent.sysfs import Sysfs
from tests.agent.conftest import ip
from tests.fixtures.sysfs import pci_device, raw_link

PF = "0000:3b:00.0"
VF0 = "0000:3b:02.0"
VF1 = "0000:3b:02.1"
VFIO = "0000:5e:00.1"
IN_POD = "0000:5e:00.0"
NVME = "0000:01:00.0"


@pytest.fixture
def sriov_host(tmp_path: Path) -> Path:
    """A PF with two VFs (VF1's netdev is in a pod, renamed net1), a NIC in a pod (netdev gone
    from this namespace), a DPDK function bound to vfio-pci, and an NVMe drive."""
    root = tmp_path / "sys"
    pci_device(root, PF, netdevs=("ens1f0",), total_vfs=8, num_vfs=2, virtfns=(VF0, VF1))
    pci_device(root, VF0, device="0x154c", driver="iavf", netdevs=("ens1f0v0",), physfn=PF)
    pci_device(root, VF1, device="0x154c", driver="iavf", netdevs=("net1",), physfn=PF)
    pci_device(
        root,
        IN_POD,
        vendor="0x15b3",
        device="0x1017",
        driver="mlx5_core",
        numa="1",
        netdevs=("ens2f0",),
    )
    pci_device(root, VFIO, vendor="0x15b3", device="0x1017", driver="vfio-pci", numa="1")
    pci_device(root, NVME, pci_class="0x010802", vendor="0x144d", device="0xa808", driver="nvme")
    return root


def assemble_host(root: Path, raw_links: list[dict]) -> tuple[dict, dict]:
    links, functions = assemble(raw_links, [], {1}, set(), Sysfs(str(root)))
    return {link["name"]: link for link in links}, {f["pci_address"]: f for f in functions}


def namespace_links() -> list[dict]:
    # What netlink shows in this namespace: the PF and VF0 only (VF1 and ens2f0 are in pods).
    return [raw_link(1, "ens1f0"), raw_link(2, "ens1f0v0")]


def test_it_reports_a_pci_nic_as_physical_with_driver_ids_and_numa(sriov_host):
    links, _ = assemble_host(sriov_host, namespace_links())
    pf = links["ens1f0"]
    assert pf["kind"] == "physical"
    assert pf["pci_address"] == PF
    assert (pf["driver"], pf["vendor_id"], pf["device_id"]) == ("i40e", "0x8086", "0x1572")
    assert pf["numa_node"] == 0 and pf["speed_mbps"] == 10000
    assert pf["default_route_v4"] is True and pf["wireless"] is False


def test_it_reports_sriov_counts_of_a_pf(sriov_host):
    links, _ = assemble_host(sriov_host, namespace_links())
    assert links["ens1f0"]["sriov_total_vfs"] == 8
    assert links["ens1f0"]["sriov_num_vfs"] == 2
    assert links["ens1f0"]["pf_pci_address"] is None


def test_it_reports_the_pf_of_a_vf_by_address_and_name(sriov_host):
    links, _ = assemble_host(sriov_host, namespace_links())
    vf = links["ens1f0v0"]
    assert (vf["pci_address"], vf["driver"], vf["device_id"]) == (VF0, "iavf", "0x154c")
    assert vf["pf_pci_address"] == PF and vf["pf_name"] == "ens1f0"
    assert vf["sriov_total_vfs"] is None


def test_it_lists_a_vfio_bound_function_with_its_driver(sriov_host):
    _, functions = assemble_host(sriov_host, namespace_links())
    assert functions[VFIO] == {
        "pci_address": VFIO,
        "driver": "vfio-pci",
        "vendor_id": "0x15b3",
        "device_id": "0x1017",
        "numa_node": 1,
        "sriov_total_vfs": None,
        "sriov_num_vfs": None,
        "pf_pci_address": None,
        "pf_name": None,
        "vf_index": None,
    }


def test_it_lists_pci_nics_whose_netdev_is_not_in_the_namespace(sriov_host):
    _, functions = assemble_host(sriov_host, namespace_links())
    # ens2f0 and the VF renamed net1 live in pods: still visible by their PCI address.
    assert functions[IN_POD]["driver"] == "mlx5_core"
    assert functions[VF1]["pf_pci_address"] == PF
    assert PF not in functions and VF0 not in functions  # these have their netdev here
    assert NVME not in functions  # not a network controller


def test_it_stops_listing_a_function_once_its_netdev_is_back(sriov_host):
    links = namespace_links() + [raw_link(3, "ens2f0")]
    named, functions = assemble_host(sriov_host, links)
    assert IN_POD not in functions
    assert named["ens2f0"]["pci_address"] == IN_POD


def test_it_reports_unreadable_sysfs_fields_as_null(sriov_host):
    base = sriov_host / "bus" / "pci" / "devices" / PF
    (base / "numa_node").unlink()
    (base / "numa_node").mkdir()  # read() fails with EISDIR, like an unreadable attribute
    (base / "vendor").write_text("not-a-vendor\n")
    (base / "sriov_numvfs").write_text("\n")
    (base / "driver").unlink()
    os.symlink("/nonexistent/driver", base / "driver-dangling")
    (sriov_host / "class" / "net" / "ens1f0" / "speed").write_text("-1\n")
    links, _ = assemble_host(sriov_host, namespace_links())
    pf = links["ens1f0"]
    assert pf["numa_node"] is None and pf["vendor_id"] is None
    assert pf["sriov_num_vfs"] is None and pf["driver"] is None and pf["speed_mbps"] is None
    assert pf["sriov_total_vfs"] == 8 and pf["pci_address"] == PF  # the rest still reported


def test_it_reports_numa_minus_one_as_unknown(sriov_host):
    (sriov_host / "bus" / "pci" / "devices" / PF / "numa_node").write_text("-1\n")
    links, _ = assemble_host(sriov_host, namespace_links())
    assert links["ens1f0"]["numa_node"] is None


def test_it_survives_a_link_with_no_sysfs_entry_at_all(tmp_path):
    links, functions = assemble_host(tmp_path / "empty", [raw_link(5, "ghost", "veth")])
    assert links["ghost"]["kind"] == "veth" and links["ghost"]["speed_mbps"] is None
    assert functions == {}


@pytest.mark.parametrize(
    ("info_kind", "flags", "has_device", "kind"),
    [
        (None, 0x8, False, "loopback"),
        (None, 0, True, "physical"),
        (None, 0, False, "other"),
        ("macvtap", 0, False, "macvlan"),
        ("ip6gretap", 0, False, "gre"),
        ("veth", 0, True, "veth"),
        ("nlmon", 0, False, "other"),
    ],
)
def test_it_derives_the_link_kind(info_kind, flags, has_device, kind):
    assert link_kind(info_kind, flags, has_device) == kind


def test_it_marks_wireless_links(tmp_path):
    root = tmp_path / "sys"
    pci_device(root, PF, driver="iwlwifi", pci_class="0x028000", netdevs=("wlp1s0",))
    (root / "class" / "net" / "wlp1s0" / "phy80211").mkdir()
    links, _ = assemble_host(root, [raw_link(1, "wlp1s0")])
    assert links["wlp1s0"]["wireless"] is True


@pytest.mark.netns
def test_the_agent_process_reads_the_sysfs_root_it_is_given(make_netns, start_agent, sriov_host):
    netns = make_netns("sysfs")
    ip("link", "add", "ens1f0", "type", "veth", "peer", "name", "ens1f0v0", netns=netns)
    agent = start_agent("--netns", netns, "--sysfs-root", str(sriov_host))
    status, _, body = agent.snapshot()
    assert status == 200, body
    snapshot = json.loads(body)
    fastjsonschema.compile(SNAPSHOT_SCHEMA)(snapshot)
    links = {link["name"]: link for link in snapshot["links"]}
    assert links["ens1f0"]["pci_address"] == PF and links["ens1f0"]["sriov_num_vfs"] == 2
    assert links["ens1f0v0"]["pf_name"] == "ens1f0"
    functions = {f["pci_address"]: f for f in snapshot["pci_functions"]}
    assert set(functions) == {VF1, IN_POD, VFIO}
    assert functions[VFIO]["driver"] == "vfio-pci"


def test_it_finds_the_pci_function_behind_a_virtio_nic(tmp_path):
    root = tmp_path / "sys"
    base = pci_device(root, "0000:00:03.0", vendor="0x1af4", device="0x1041", driver="virtio-pci")
    virtio = base / "virtio0"
    (virtio / "net" / "eth0").mkdir(parents=True)
    (root / "bus" / "virtio" / "drivers" / "virtio_net").mkdir(parents=True)
    os.symlink("../../../bus/virtio/drivers/virtio_net", virtio / "driver")
    os.symlink("../../../bus/virtio", virtio / "subsystem")
    (root / "class" / "net" / "eth0").mkdir(parents=True)
    os.symlink("../../../bus/pci/devices/0000:00:03.0/virtio0", root / "class/net/eth0/device")
    links, functions = assemble_host(root, [raw_link(2, "eth0")])
    assert links["eth0"]["pci_address"] == "0000:00:03.0"
    assert links["eth0"]["driver"] == "virtio_net" and links["eth0"]["vendor_id"] == "0x1af4"
    assert functions == {}


def test_it_reports_no_pci_functions_when_the_pci_scan_is_off(sriov_host):
    # A namespace that owns no PCI devices (a lab node) must not claim the machine's NICs.
    _, functions = assemble_host(sriov_host, namespace_links())
    assert functions  # the fixture has netdev-less functions...
    _, none = assemble(namespace_links(), [], {1}, set(), Sysfs(str(sriov_host)), pci_scan=False)
    assert none == []  # ...which the switch hides
