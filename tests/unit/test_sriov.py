"""The pure SR-IOV rules (inventory/rules/sriov.py) and the builder's SR-IOV findings."""

from __future__ import annotations

import json

import pytest

from inventory.queries import sriov_role_q
from inventory.rules import capacity, crosscheck, nad, sriov
from inventory.rules.nad.devices import device_findings
from inventory.rules.states import OwnershipState as S

VF = "0000:3b:02.1"


@pytest.mark.parametrize(
    ("pf_pci_address", "total", "role"),
    [(VF, None, "vf"), ("", 8, "pf"), ("", 0, ""), ("", None, ""), (VF, 8, "vf")],
)
def test_it_tells_pfs_from_vfs(pf_pci_address, total, role):
    assert sriov.role(pf_pci_address=pf_pci_address, sriov_total_vfs=total) == role


@pytest.mark.parametrize(
    ("pci", "driver", "has_netdev", "mode"),
    [
        (VF, "iavf", True, "netdev"),
        (VF, "iavf", False, "no-netdev"),
        (VF, "vfio-pci", False, "vfio"),
        (VF, "igb_uio", False, "vfio"),
        (VF, "", False, "no-driver"),
        ("", "veth", True, ""),
    ],
)
def test_it_says_what_host_device_does_with_a_function(pci, driver, has_netdev, mode):
    assert sriov.host_device_mode(pci_address=pci, driver=driver, has_netdev=has_netdev) == mode
    assert mode == "" or mode in sriov.HOST_DEVICE_MODES


@pytest.mark.parametrize(
    ("config", "address"),
    [
        ({"type": "host-device", "pciBusID": "0000:3B:02.1"}, VF),
        ({"plugins": [{"type": "host-device", "pciBusID": VF}, {"type": "tuning"}]}, VF),
        ({"type": "host-device", "pciBusID": VF, "device": "eth1"}, ""),  # device wins
        ({"type": "host-device", "pciBusID": "3b:02.1"}, ""),  # not a full BDF
        ({"type": "host-device", "pciBusID": 5}, ""),
        ({"type": "macvlan", "pciBusID": VF}, ""),
        ({"plugins": [{"type": "host-device", "pciBusID": VF}] * 2}, ""),
        ({"plugins": "x"}, ""),
        ([1, 2], ""),
    ],
)
def test_it_reads_the_pci_bus_id_a_nad_config_selects(config, address):
    assert sriov.config_pci_bus_id(json.dumps(config)) == address


@pytest.mark.parametrize("text", ["", "{", "[" * 5000 + "]" * 5000, "x" * 70000, None])
def test_it_reads_no_pci_bus_id_from_garbage(text):
    assert sriov.config_pci_bus_id(text) == ""


def vfio_vf(**facts) -> nad.DeviceFacts:
    values = {
        "node": "n1",
        "name": "",
        "pci_address": VF,
        "driver": "vfio-pci",
        "has_netdev": False,
        "pf_pci_address": "0000:3b:00.0",
    }
    return nad.DeviceFacts(**{**values, **facts})


def codes(device: nad.DeviceFacts, selector: str, team: str = "") -> list[tuple[str, str]]:
    return [(f.code, f.severity) for f in device_findings(device, selector=selector, team=team)]


def test_a_free_vfio_vf_is_a_warning_by_pci_bus_id_and_an_error_otherwise():
    assert codes(vfio_vf(), "pciBusID") == [("USERSPACE_DPDK", "warning")]
    assert codes(vfio_vf(), "hwaddr") == [("DEVICE_NOT_FREE", "error")]
    assert codes(vfio_vf(), "device") == [("DEVICE_NOT_FREE", "error")]


def test_a_vfio_vf_reserved_by_another_team_is_refused():
    device = vfio_vf(state=S.RESERVED, holder="team red", reserved_team="red")
    assert ("DEVICE_RESERVED", "error") in codes(device, "pciBusID", team="blue")
    assert codes(device, "pciBusID", team="red") == [("USERSPACE_DPDK", "warning")]


def test_a_vf_in_a_pod_is_refused_once():
    device = vfio_vf(state=S.POD, holder="pod dpdk/a")
    assert codes(device, "pciBusID") == [("DEVICE_IN_POD", "error")]


def test_a_pf_with_vfs_is_refused_with_its_own_code():
    pf = nad.DeviceFacts(
        node="n1",
        name="ens3f0",
        pci_address="0000:3b:00.0",
        state=S.ENSLAVED,
        reason="SR-IOV PF with 4 VFs enabled",
        holder="SR-IOV VFs",
        sriov_num_vfs=4,
    )
    (finding,) = device_findings(pf, selector="pciBusID", team="")
    assert (finding.code, finding.severity) == ("PF_WITH_VFS", "error")
    assert "ip link set ens3f0 vf N" in finding.message


def test_an_enslaved_nic_without_vfs_keeps_the_generic_refusal():
    port = nad.DeviceFacts(node="n1", name="eth3", state=S.ENSLAVED, reason="slave of bond bond0")
    assert codes(port, "device") == [("DEVICE_NOT_FREE", "error")]


def test_a_netdev_vf_is_never_selected_by_name_automatically():
    vf = nad.DeviceFacts(
        node="n1",
        name="ens3f0v0",
        mac="ba:dc:0f:fe:e0:00",
        pci_address="0000:3b:02.0",
        driver="iavf",
        pf_pci_address="0000:3b:00.0",
    )
    result = nad.build(nad.NadRequest(namespace="a", name="vf", devices=(vf,)))
    assert result.ok, result.errors
    assert result.nads[0].config["pciBusID"] == "0000:3b:02.0"
    plain = nad.build(
        nad.NadRequest(
            namespace="a",
            name="nic",
            devices=(nad.DeviceFacts(node="n1", name="eth3", pci_address="0000:5e:00.0"),),
        )
    )
    assert plain.nads[0].config["device"] == "eth3"  # a NIC that is no VF keeps its name


def test_the_sql_role_filter_refuses_an_unknown_role():
    with pytest.raises(ValueError, match="pf, vf or none"):
        sriov_role_q("maybe")


def test_the_linter_reports_a_cluster_nad_that_points_at_a_pf_with_vfs_or_a_vfio_vf():
    pf = nad.DeviceFacts(
        node="n1",
        name="ens3f0",
        pci_address="0000:3b:00.0",
        state=S.ENSLAVED,
        reason="SR-IOV PF with 4 VFs enabled",
        holder="SR-IOV VFs",
        sriov_num_vfs=4,
    )
    devices = {"n1": [pf, vfio_vf()]}

    def lint_codes(address: str) -> set[str]:
        config = {"cniVersion": "1.0.0", "name": "x", "type": "host-device", "pciBusID": address}
        findings = nad.lint(
            namespace="a", name="x", config=json.dumps(config), devices_by_node=devices
        )
        return {f.code for f in findings}

    assert "PF_WITH_VFS" in lint_codes("0000:3b:00.0")
    found = lint_codes(VF)
    assert "USERSPACE_DPDK" in found and "NO_NETDEV" not in found and "PF_WITH_VFS" not in found


def test_a_request_can_ask_for_vfs_only_or_for_no_vf():
    nics = [
        capacity.Candidate(id=1, node="a", name="ens3f0v0", pci_address="0000:3b:02.0",
                           pf="ens3f0", vf_index=0),
        capacity.Candidate(id=2, node="a", name="", pci_address=VF, pf="ens3f0", vf_index=1),
        capacity.Candidate(id=3, node="a", name="ens3f1", pci_address="0000:3b:00.1",
                           sriov_total_vfs=8),
    ]  # fmt: skip
    vfs = capacity.match(nics, capacity.Constraints(count=2, vf=True))
    assert [n.id for n in vfs.picked] == [2, 1] and vfs.steps[0].text == "an SR-IOV VF"
    assert [n.label for n in vfs.picked] == [f"a/{VF}", "a/ens3f0v0"]  # no name: its address
    no_vf = capacity.match(nics, capacity.Constraints(count=1, vf=False))
    assert [n.id for n in no_vf.picked] == [3]
    refused = capacity.match(nics, capacity.Constraints(count=1, vf=False, sriov=False))
    assert not refused.ok and refused.failed_step.field == "vf"  # the VFs pass "not capable"
    fails = {near.candidate.id: near.fails for near in refused.closest}
    assert fails == {
        1: ("SR-IOV VF 0 of ens3f0",),
        2: ("SR-IOV VF 1 of ens3f0",),
        3: ("SR-IOV capable (8 VFs)",),
    }


@pytest.mark.parametrize(
    ("state", "reason", "holder", "num_vfs", "sentence"),
    [
        ("system", "carries the default route", "node", 4,
         "PF ens3f0 is the node's uplink and is never handed out; its VFs can be given to pods"),
        ("system", "has address 192.168.7.1/24: used by the node", "node", 4,
         "PF ens3f0 is used by the node and is never handed out; its VFs can be given to pods"),
        ("cni", "created by Calico", "Calico", 4,
         "PF ens3f0 belongs to Calico and is never handed out; its VFs can be given to pods"),
        ("enslaved", "slave of bond bond1", "bond bond1", 4,
         "PF ens3f0 is held by bond bond1 and is never handed out; its VFs can be given to pods"),
        ("enslaved", "SR-IOV PF with 4 VFs enabled", "SR-IOV VFs", 4,
         "PF ens3f0 is not handed out while its VFs are enabled; its VFs can be given to pods"),
        ("free", "physical NIC", "", 0,
         "PF ens3f0 has no VFs enabled: it is judged as any NIC; enable VFs for pods to use"),
        ("pod", "in pod a/b as net1 via NAD a/n", "pod a/b", 4, ""),
        ("unknown", "agent silent", "", 4, ""),
    ],
)  # fmt: skip
def test_the_node_page_says_what_a_pf_is_to_the_node_and_whether_its_vfs_may_go(
    state, reason, holder, num_vfs, sentence
):
    uplink = crosscheck.is_uplink_reason(reason)
    said = sriov.pf_panel_sentence(
        name="ens3f0", state=state, reason=reason, holder=holder, num_vfs=num_vfs, uplink=uplink
    )
    assert said == sentence


def test_the_uplink_pf_is_refused_as_the_primary_nic_and_its_vfs_are_named_instead():
    pf = nad.DeviceFacts(
        node="n1",
        name="ens3f0",
        pci_address="0000:3b:00.0",
        state=S.SYSTEM,
        reason="carries the default route",
        holder="node",
        sriov_num_vfs=4,
    )
    (finding,) = device_findings(pf, selector="pciBusID", team="")
    assert (finding.code, finding.severity) == ("PRIMARY_NIC", "error")
    assert (
        finding.fix.startswith("Pick one of its free VFs") and "leaves ens3f0 alone" in finding.fix
    )
    plain = nad.DeviceFacts(node="n1", name="eno1", state=S.SYSTEM, reason=pf.reason, holder="node")
    (other,) = device_findings(plain, selector="device", team="")
    assert other.code == "PRIMARY_NIC" and "VF" not in other.fix


def test_a_free_vf_of_the_uplink_pf_passes_the_linter():
    reason = (
        "VF 0 of ens3f0 (driver iavf, 0000:3b:02.0): no address, no master, not in use; "
        "host-device moves its netdev into the pod; its PF ens3f0 stays with the node (carries "
        "the default route)"
    )
    vf = nad.DeviceFacts(
        node="n1", name="ens3f0v0", pci_address="0000:3b:02.0", driver="iavf",
        pf_pci_address="0000:3b:00.0", state=S.FREE, reason=reason,
    )  # fmt: skip
    config = {"cniVersion": "1.0.0", "name": "x", "type": "host-device", "pciBusID": vf.pci_address}
    findings = nad.lint(
        namespace="a", name="x", config=json.dumps(config), devices_by_node={"n1": [vf]}
    )
    assert [f.code for f in findings if f.severity == "error"] == []
    assert device_findings(vf, selector="pciBusID", team="") == []
