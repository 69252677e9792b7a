"""The simulated SR-IOV NIC of the lab (lab/sriov.py, lab/layouts/sriov-demo.yaml), end to end.

node-c's uplink ens3f0 is an SR-IOV PF with two netdev VFs (veths stand in for their netdevs)
and two VFs bound to vfio-pci, described by a sysfs tree that the node's real agent reads
(``--sysfs-root``) and over which the lab's Multus mounts /sys/bus/pci/devices for the node's
real host-device. The portal's sweep finds the PF and its VFs; the VFs of the uplink PF are
free; the NAD the builder makes for a VF (by pciBusID) starts a pod through the real plugin,
which moves the netdev VF and takes the vfio VF in DPDK mode, and the next sweep puts each VF
in its pod while the PF keeps carrying the node's traffic.
"""

from __future__ import annotations

import os
import shutil
from html import unescape
from pathlib import Path

import pytest

from inventory.choices import OwnershipState as S
from inventory.models import Interface
from inventory.services import nads, polling
from lab import control
from lab.handle import LabHandle
from lab.sriov import PF_ADDRESS, vf_address
from lab.state import state_dir
from tests.factories import make_user

pytestmark = [pytest.mark.lab, pytest.mark.django_db(transaction=True)]

LAYOUT = Path(__file__).resolve().parents[2] / "lab" / "layouts" / "sriov-demo.yaml"
VF0, VF1, VFIO0 = vf_address(0), vf_address(1), vf_address(2)


@pytest.fixture(scope="module")
def sriov_lab(lab_requirements):
    name = f"sr{os.getpid()}"
    try:
        state = control.up(name, layout_path=LAYOUT)
    except Exception:
        control.down(name)
        raise
    handle = LabHandle(state)
    try:
        yield handle
    finally:
        handle.close()
        control.down(name)
        shutil.rmtree(state_dir(name), ignore_errors=True)


@pytest.fixture
def portal(sriov_lab, settings):
    sriov_lab.reset()
    settings.KUBECONFIG = str(sriov_lab.portal_kubeconfig)
    settings.AGENT_MASTER_KEY = sriov_lab.agent_master_key
    settings.CLUSTER_NAME = "lab"
    settings.AGENT_NAMESPACE = "nicportal"
    settings.MULTUS_VERSION = ""
    sweep()
    yield sriov_lab
    sriov_lab.reset()


def sweep() -> None:
    report = polling.sweep_inline(workers=2)
    assert report.cluster_error == "", report.cluster_error


def rows() -> dict[str, Interface]:
    return {i.pci_address: i for i in Interface.objects.filter(node__name="node-c")}


def test_the_agent_reports_the_pf_and_its_vfs_and_the_uplinks_vfs_are_free(portal, client):
    found = rows()
    pf = found[PF_ADDRESS]
    assert (pf.name, pf.sriov_total_vfs, pf.sriov_num_vfs) == ("ens3f0", 8, 4)
    assert (pf.state, pf.reason) == (S.SYSTEM, "carries the default route")
    for address, name, driver in ((VF0, "ens3f0v0", "iavf"), (VFIO0, "", "vfio-pci")):
        vf = found[address]
        assert (vf.name, vf.driver, vf.pf_pci_address) == (name, driver, PF_ADDRESS)
        assert vf.state == S.FREE, vf.reason
        assert vf.reason.endswith("its PF ens3f0 stays with the node (carries the default route)")
    assert not any(i.pci_address for i in Interface.objects.filter(node__name="node-a"))
    client.force_login(make_user())
    html = unescape(client.get("/nodes/node-c/").content.decode())
    role = html[html.index(f'data-testid="pf-role-{PF_ADDRESS}"') :].split("</div>")[0]
    assert role.endswith(
        "PF ens3f0 is the node's uplink and is never handed out; its VFs can be given to pods."
    )


def test_the_builders_vf_nads_work_through_the_real_plugin_and_the_pf_stays(portal):
    user = make_user()
    found = rows()
    refused = nads.render(
        user=user, namespace="default", name="pf", interface_ids=[found[PF_ADDRESS].pk]
    )
    assert [f.code for f in refused.errors] == ["PRIMARY_NIC"]
    for name, address in (("vf0", VF0), ("vfio0", VFIO0)):
        built = nads.render(
            user=user, namespace="default", name=name, interface_ids=[found[address].pk]
        )
        assert built.ok, built.errors
        assert built.nads[0].config["pciBusID"] == address
        portal.create_nad("default", name, built.nads[0].config)

    netdev_pod = portal.create_pod("default", "vf-user", "node-c", "vf0")
    dpdk_pod = portal.create_pod("default", "dpdk-user", "node-c", "vfio0")
    assert netdev_pod["status"]["phase"] == "Running", portal.pod_events("default", "vf-user")
    assert dpdk_pod["status"]["phase"] == "Running", portal.pod_events("default", "dpdk-user")
    moved = {link["ifname"]: link for link in portal.pod_links("default", "vf-user")}
    assert moved["net1"].get("ifalias") == "ens3f0v0"  # the real plugin moved the VF's netdev
    assert "ens3f0v0" not in portal.link_names("node-c")
    assert "net1" not in {link["ifname"] for link in portal.pod_links("default", "dpdk-user")}
    assert "ens3f0" in portal.link_names("node-c")  # the PF, and the node's route, stay

    sweep()
    found = rows()
    assert (found[VF0].state, found[VF0].holder) == (S.POD, "pod default/vf-user")
    assert (found[VFIO0].state, found[VFIO0].holder) == (S.POD, "pod default/dpdk-user")
    assert found[VF1].state == S.FREE and found[PF_ADDRESS].state == S.SYSTEM

    portal.delete_pod("default", "vf-user")
    assert "ens3f0v0" in portal.link_names("node-c")  # back on DEL
