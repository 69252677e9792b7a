"""Device facts from sysfs, under a configurable root so that tests can use fixture trees.

Every reader returns None for a field it cannot read (missing file, EINVAL from a down link's
``speed``, garbage, a directory where a file should be): one odd driver must not break the
snapshot of the whole node.
"""

from __future__ import annotations

import os
import re

PCI_BDF = re.compile(r"^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$")
_HEX_ID = re.compile(r"^0x[0-9a-f]{4}$")
# PCI base class 0x02 = network controller (Ethernet 0x0200, InfiniBand 0x0207, ...).
_NETWORK_CLASS_PREFIX = "0x02"


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().strip()
    except (OSError, ValueError):
        return None


def _read_int(path: str) -> int | None:
    text = _read(path)
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def _read_hex_id(path: str) -> str | None:
    text = _read(path)
    if text is None:
        return None
    text = text.lower()
    return text if _HEX_ID.match(text) else None


def _link_target_name(path: str) -> str | None:
    """Basename of a symlink's target (``driver -> ../../bus/pci/drivers/ixgbe`` -> ixgbe)."""
    try:
        return os.path.basename(os.readlink(path)) or None
    except (OSError, ValueError):
        return None


def _pci_target(path: str) -> str | None:
    name = _link_target_name(path)
    return name if name and PCI_BDF.match(name) else None


def _routing_id(bdf: str) -> tuple[str, int] | None:
    """A function's PCI domain and routing ID (bus << 8 | device << 3 | function)."""
    try:
        domain, bus, rest = bdf.split(":")
        device, function = rest.split(".")
        return domain, int(bus, 16) << 8 | int(device, 16) << 3 | int(function, 16)
    except ValueError:
        return None


def _listdir(path: str) -> list[str]:
    try:
        return sorted(os.listdir(path))
    except (OSError, ValueError):
        return []


class Sysfs:
    """Reads link and PCI facts below ``root`` (``/sys`` on a node)."""

    def __init__(self, root: str = "/sys") -> None:
        self.root = root

    def pci_device_dir(self, bdf: str) -> str:
        return os.path.join(self.root, "bus", "pci", "devices", bdf)

    def pci_function(self, bdf: str) -> dict:
        """Facts of one PCI function, whether or not it has a netdev."""
        base = self.pci_device_dir(bdf)
        numa = _read_int(os.path.join(base, "numa_node"))
        pf = _pci_target(os.path.join(base, "physfn"))
        return {
            "pci_address": bdf,
            "driver": _link_target_name(os.path.join(base, "driver")),
            "vendor_id": _read_hex_id(os.path.join(base, "vendor")),
            "device_id": _read_hex_id(os.path.join(base, "device")),
            # The kernel says -1 when the platform has no NUMA information.
            "numa_node": numa if numa is not None and numa >= 0 else None,
            "sriov_total_vfs": _read_int(os.path.join(base, "sriov_totalvfs")),
            "sriov_num_vfs": _read_int(os.path.join(base, "sriov_numvfs")),
            "pf_pci_address": pf,
            "vf_index": self.vf_index(pf, bdf) if pf else None,
        }

    def vf_index(self, pf: str, vf: str) -> int | None:
        """N of the PF's ``virtfnN`` link that points at ``vf``: the number ``ip link set PF vf
        N ...`` and the SR-IOV operator use. None when no link points at it.

        The kernel places VF N at routing ID PF + sriov_offset + N * sriov_stride (the PF's
        SR-IOV capability), so one readlink confirms the number; the PF's virtfn links are
        searched only when that fails (no such files, a link missing): searching them for every
        VF of a PF with 128 VFs costs thousands of readlinks per scan."""
        pf_dir = self.pci_device_dir(pf)
        offset = _read_int(os.path.join(pf_dir, "sriov_offset"))
        stride = _read_int(os.path.join(pf_dir, "sriov_stride"))
        pf_id, vf_id = _routing_id(pf), _routing_id(vf)
        if offset is not None and stride and pf_id and vf_id and pf_id[0] == vf_id[0]:
            index, rest = divmod(vf_id[1] - pf_id[1] - offset, stride)
            if rest == 0 and index >= 0:
                if _pci_target(os.path.join(pf_dir, f"virtfn{index}")) == vf:
                    return index
        for entry in _listdir(pf_dir):
            index_text = entry.removeprefix("virtfn")
            if index_text != entry and index_text.isdigit() and index_text.isascii():
                if _pci_target(os.path.join(pf_dir, entry)) == vf:
                    return int(index_text)
        return None

    def pci_netdev_names(self, bdf: str) -> list[str]:
        # The sysfs mount is tagged with the network namespace that mounted it, so this lists
        # only the netdevs of that namespace (see collector.py for why the netns worker remounts).
        base = self.pci_device_dir(bdf)
        names = _listdir(os.path.join(base, "net"))
        # virtio NICs hang their netdev one level lower: <bdf>/virtio0/net/eth0. (Not */net:
        # virtfnN symlinks would lend a VF's netdev to its PF.)
        for child in _listdir(base):
            if child.startswith("virtio"):
                names += _listdir(os.path.join(base, child, "net"))
        return names

    def link_device(self, ifname: str) -> dict:
        """sysfs facts of one netdev: device, driver, PCI/SR-IOV, speed, wireless."""
        base = os.path.join(self.root, "class", "net", ifname)
        facts: dict = {
            "has_device": False,
            "speed_mbps": None,
            "driver": None,
            "pci_address": None,
            "vendor_id": None,
            "device_id": None,
            "numa_node": None,
            "sriov_total_vfs": None,
            "sriov_num_vfs": None,
            "pf_pci_address": None,
            "vf_index": None,
            "wireless": os.path.exists(os.path.join(base, "wireless"))
            or os.path.exists(os.path.join(base, "phy80211")),
        }
        speed = _read_int(os.path.join(base, "speed"))
        # -1 (SPEED_UNKNOWN) is what a NIC without link says; not a speed.
        facts["speed_mbps"] = speed if speed is not None and speed > 0 else None
        device = os.path.join(base, "device")
        if not os.path.exists(device):
            return facts
        facts["has_device"] = True
        facts["driver"] = _link_target_name(os.path.join(device, "driver"))
        try:
            device_name = os.path.basename(os.path.realpath(device))
        except (OSError, ValueError):
            return facts
        subsystem = _link_target_name(os.path.join(device, "subsystem"))
        bdf = device_name if PCI_BDF.match(device_name) and subsystem in (None, "pci") else None
        if bdf is None and subsystem == "virtio":
            # A virtio NIC's device is virtioN, a child of the PCI function.
            parent = os.path.basename(os.path.dirname(os.path.realpath(device)))
            bdf = parent if PCI_BDF.match(parent) else None
        if bdf:
            pci = self.pci_function(bdf)
            pci.pop("driver")
            facts.update(pci)
        return facts

    def pci_network_functions(self) -> list[str]:
        """BDFs of all PCI functions of class network controller, sorted."""
        found = []
        for bdf in _listdir(os.path.join(self.root, "bus", "pci", "devices")):
            if not PCI_BDF.match(bdf):
                continue
            pci_class = _read(os.path.join(self.pci_device_dir(bdf), "class"))
            if pci_class and pci_class.lower().startswith(_NETWORK_CLASS_PREFIX):
                found.append(bdf)
        return found
