"""The NADs the builder makes for SR-IOV VFs, run through the real host-device binary.

host-device finds a pciBusID under /sys/bus/pci/devices: its net/ directory (a netdev to move)
and its driver link (vfio-pci/uio: DPDK mode, nothing moved). The machines have no VFs, so each
run gets a private mount namespace in which the fixture node's devices directory
(tests/fixtures/sysfs.py) is mounted over /sys/bus/pci/devices, and a veth named like the netdev
VF stands in for it in the node's network namespace. The plugin, its netlink moves and its
answers are the real ones; only the PCI devices are fixtures."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest

from inventory.choices import OwnershipState as S
from inventory.models import Interface, PodAttachment
from inventory.services import nads
from inventory.sync.listing import apply_listing
from inventory.sync.snapshot import apply_snapshot
from nodeagent.facts import assemble
from nodeagent.sysfs import Sysfs
from tests.factories import make_cluster, make_node, make_user
from tests.fixtures import sysfs as fx
from tests.integration.test_sriov_vfs import listing, pod
from tests.preflight import skip_or_fail

pytestmark = [pytest.mark.netns, pytest.mark.django_db]

HOST_DEVICE = Path("/usr/lib/cni/host-device")
PCI_DEVICES = Path("/sys/bus/pci/devices")


def _run(*args: str, stdin: str = "") -> subprocess.CompletedProcess:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, check=False)


@pytest.fixture
def namespaces():
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("nsenter"):
        skip_or_fail("needs root, unshare and nsenter")
    if not os.access(HOST_DEVICE, os.X_OK) or not PCI_DEVICES.is_dir():
        skip_or_fail(f"needs {HOST_DEVICE} and {PCI_DEVICES} to mount over")
    suffix = uuid.uuid4().hex[:6]
    node, pod = f"nptest-sriov-node-{suffix}", f"nptest-sriov-pod-{suffix}"
    for name in (node, pod):
        assert _run("ip", "netns", "add", name).returncode == 0
    yield node, pod
    for name in (node, pod):
        _run("ip", "netns", "del", name)


def host_device(
    command: str, config: dict, *, devices: Path, node: str, pod: str, ifname: str
) -> subprocess.CompletedProcess:
    """One CNI call in the node's namespace, with ``devices`` as /sys/bus/pci/devices."""
    script = (
        f'mount --bind "$0" {PCI_DEVICES} && exec nsenter --net=/run/netns/{node} env '
        f"CNI_COMMAND={command} CNI_CONTAINERID=c-{ifname} CNI_NETNS=/run/netns/{pod} "
        f"CNI_IFNAME={ifname} CNI_PATH={HOST_DEVICE.parent} {HOST_DEVICE}"
    )
    return _run(
        "unshare", "-m", "--propagation", "private", "sh", "-c", script, str(devices),
        stdin=json.dumps(config),
    )  # fmt: skip


def link_names(netns: str) -> dict[str, dict]:
    out = _run("ip", "-n", netns, "-j", "link", "show").stdout
    return {link["ifname"]: link for link in json.loads(out or "[]")}


@pytest.fixture
def built(settings, tmp_path):
    """The fixture node in the inventory, and the builder's config for each VF."""
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = "3.9"
    root = fx.sriov_node(tmp_path / "sys")
    node = make_node(make_cluster(name="prod"), name="sriov-0", internal_ips=["10.0.0.9"])
    apply_snapshot(node, fx.sriov_node_snapshot(root))
    user = make_user()

    def config(address: str) -> dict:
        interface = Interface.objects.get(node=node, pci_address=address)
        result = nads.render(user=user, namespace="dpdk", name="vf", interface_ids=[interface.pk])
        assert result.ok, result.errors
        return result.nads[0].config

    return root / "bus" / "pci" / "devices", config


def test_the_real_plugin_moves_a_netdev_vf_by_the_builders_pci_bus_id(namespaces, built):
    node, pod = namespaces
    devices, config = built
    assert _run("ip", "-n", node, "link", "add", "ens3f0v0", "type", "veth", "peer", "name",
                "peer0").returncode == 0  # fmt: skip
    nad_config = config(fx.NETDEV_VF)
    assert nad_config["pciBusID"] == fx.NETDEV_VF

    added = host_device("ADD", nad_config, devices=devices, node=node, pod=pod, ifname="net1")

    assert added.returncode == 0, added.stdout + added.stderr
    assert [i["name"] for i in json.loads(added.stdout)["interfaces"]] == ["net1"]
    moved = link_names(pod)["net1"]
    assert moved.get("ifalias") == "ens3f0v0"  # host-device keeps the host name in the alias
    assert "ens3f0v0" not in link_names(node)

    deleted = host_device("DEL", nad_config, devices=devices, node=node, pod=pod, ifname="net1")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "ens3f0v0" in link_names(node) and "net1" not in link_names(pod)


def test_the_real_plugin_takes_a_vfio_vf_by_pci_bus_id_and_moves_nothing(namespaces, built):
    node, pod = namespaces
    devices, config = built
    nad_config = config(fx.VFIO_VF)
    assert nad_config["pciBusID"] == fx.VFIO_VF
    before = set(link_names(pod))

    added = host_device("ADD", nad_config, devices=devices, node=node, pod=pod, ifname="net1")

    assert added.returncode == 0, added.stdout + added.stderr
    assert json.loads(added.stdout).get("interfaces") is None  # DPDK mode: no interface
    assert set(link_names(pod)) == before
    deleted = host_device("DEL", nad_config, devices=devices, node=node, pod=pod, ifname="net1")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr


def test_the_real_plugin_fails_on_the_vfs_the_portal_does_not_offer(namespaces, built):
    # What the portal says of them (rules/sriov.py): a kernel-driver VF whose netdev is not on
    # the host cannot be found, a VF with no driver bound fails reading its driver.
    node, pod = namespaces
    devices, _ = built
    in_pod = {"cniVersion": "0.3.1", "name": "x", "type": "host-device", "pciBusID": fx.POD_VF}
    failed = host_device("ADD", in_pod, devices=devices, node=node, pod=pod, ifname="net1")
    assert failed.returncode != 0
    assert "failed to find device name for pci address" in failed.stdout + failed.stderr

    (devices / fx.POD_VF / "driver").unlink()
    failed = host_device("ADD", in_pod, devices=devices, node=node, pod=pod, ifname="net1")
    assert failed.returncode != 0
    assert "error with host device" in failed.stdout + failed.stderr


@pytest.mark.parametrize("selector", ["device", "hwaddr"])
def test_a_nic_the_real_plugin_moved_by_name_or_mac_is_in_its_pod_not_missing(
    namespaces, settings, tmp_path, selector
):
    # ens3f1 (a PCI NIC, no VFs) moved by a device or hwaddr NAD: the plugin's result, which
    # Multus copies into the pod's network-status, has the interface's MAC and no device-info.
    # The agent then reports the NIC by its PCI address only; sync kept the MAC it last saw.
    node_ns, pod_ns = namespaces
    settings.CLUSTER_NAME = "prod"
    settings.MULTUS_VERSION = ""
    root = fx.sriov_node(tmp_path / "sys")
    node = make_node(make_cluster(name="prod"), name="sriov-0", internal_ips=["10.0.0.9"])
    apply_snapshot(node, fx.sriov_node_snapshot(root))
    nic_mac = "52:54:00:00:00:04"  # what netlink showed for ens3f1 (ifindex 4)
    assert Interface.objects.get(node=node, pci_address=fx.IDLE_PF).mac == nic_mac
    assert _run("ip", "-n", node_ns, "link", "add", "ens3f1", "address", nic_mac, "type", "veth",
                "peer", "name", "peer1").returncode == 0  # fmt: skip
    config = {"cniVersion": "1.0.0", "name": "nic", "type": "host-device"}
    config[selector] = "ens3f1" if selector == "device" else nic_mac.upper()
    devices = root / "bus" / "pci" / "devices"

    added = host_device("ADD", config, devices=devices, node=node_ns, pod=pod_ns, ifname="net1")

    assert added.returncode == 0, added.stdout + added.stderr
    (result,) = json.loads(added.stdout)["interfaces"]
    assert (result["name"], result["mac"]) == ("net1", nic_mac)
    assert "ens3f1" not in link_names(node_ns)
    # The node as the agent sees it now: no ens3f1 in netlink, its net/ empty in sysfs.
    shutil.rmtree(devices / fx.IDLE_PF / "net" / "ens3f1")
    links = [link for link in fx.sriov_node_links() if link["name"] != "ens3f1"]
    snapshot = fx.sriov_node_snapshot(root)
    snapshot["links"], snapshot["pci_functions"] = assemble(links, [], {2}, set(), Sysfs(str(root)))
    apply_snapshot(node, snapshot)
    nic = Interface.objects.get(node=node, pci_address=fx.IDLE_PF)
    assert (nic.state, nic.has_netdev, nic.mac) == (S.MISSING, False, nic_mac)  # no pod listed

    status = [{"name": "dpdk/nic", "interface": "net1", "mac": result["mac"]}]
    item = listing("sriov-0", pods=[pod("app-0", "sriov-0", status)], nad_configs={"nic": config})
    apply_listing(node.cluster, item)

    nic.refresh_from_db()
    assert (nic.state, nic.reason, nic.holder) == (
        S.POD,
        "in pod dpdk/app-0 as net1 via NAD dpdk/nic",
        "pod dpdk/app-0",
    )
    assert PodAttachment.objects.get(pod_name="app-0").interface_id == nic.pk
    deleted = host_device("DEL", config, devices=devices, node=node_ns, pod=pod_ns, ifname="net1")
    assert deleted.returncode == 0, deleted.stdout + deleted.stderr
    assert "ens3f1" in link_names(node_ns)
