"""A simulated SR-IOV NIC for one lab node: a sysfs tree as the kernel lays it out.

The lab's nodes are network namespaces whose NICs are veths: no PCI device, no VF. A node whose
layout has ``sriov`` gets a directory laid out as sysfs (``bus/pci/devices/<BDF>`` with
``driver``, ``physfn`` and ``virtfnN`` links, ``class/net/<ifname>/device``) describing one PF
and its VFs; the node's veths named in the layout stand in for the PF's and the netdev VFs'
netdevs. Two programs read it, and only these two:

- the node's agent (``--sysfs-root``), which reports the PF and its VFs as on a real node;
- the node's host-device, run by the lab's Multus with that tree's devices directory mounted over
  ``/sys/bus/pci/devices`` in a private mount namespace (lab/multus.py), so a ``pciBusID`` NAD
  really moves the VF's stand-in veth into the pod, and a VF bound to vfio-pci really takes
  host-device's DPDK mode (it moves nothing).

What stays simulated: there is no PCI hardware, so the VFs share nothing with the PF (each is a
veth of its own on the lab switch), ``sriov_numvfs`` cannot be changed, and a vfio VF has no
``/dev/vfio`` group for a DPDK application to open (docs/LAB.md).
"""

from __future__ import annotations

import os
from pathlib import Path

# Addresses as on an Intel X710 port (i40e PF, iavf VFs at device 0x154c).
PF_ADDRESS = "0000:3b:00.0"
VF_DEVICE_ID = "0x154c"
TOTAL_VFS = 8


def pci_device(
    root: Path,
    bdf: str,
    *,
    pci_class: str = "0x020000",
    vendor: str = "0x8086",
    device: str = "0x1572",
    numa: str = "0",
    driver: str | None = "i40e",
    netdevs: tuple[str, ...] = (),
    total_vfs: int | None = None,
    num_vfs: int | None = None,
    physfn: str | None = None,
    virtfns: tuple[str, ...] = (),
    speed: str = "10000",
) -> Path:
    """One PCI function below ``root`` (a fake /sys), with its netdevs under class/net."""
    base = root / "bus" / "pci" / "devices" / bdf
    base.mkdir(parents=True)
    for name, value in (("class", pci_class), ("vendor", vendor), ("device", device)):
        (base / name).write_text(value + "\n")
    (base / "numa_node").write_text(numa + "\n")
    if driver:
        # Absolute, so that it still resolves with the devices directory mounted over
        # /sys/bus/pci/devices: host-device resolves it and stats the driver directory (the
        # agent reads only the link's last component, like the kernel's relative links).
        (root / "bus" / "pci" / "drivers" / driver).mkdir(parents=True, exist_ok=True)
        os.symlink(root / "bus" / "pci" / "drivers" / driver, base / "driver")
    if total_vfs is not None:
        (base / "sriov_totalvfs").write_text(f"{total_vfs}\n")
        (base / "sriov_numvfs").write_text(f"{num_vfs}\n")
        # Where the PF's SR-IOV capability puts VF N: routing ID PF + offset + N * stride.
        offset, stride = _offset_and_stride(bdf, virtfns)
        (base / "sriov_offset").write_text(f"{offset}\n")
        (base / "sriov_stride").write_text(f"{stride}\n")
    if physfn:
        os.symlink(f"../{physfn}", base / "physfn")
    for index, vf in enumerate(virtfns):
        os.symlink(f"../{vf}", base / f"virtfn{index}")
    for ifname in netdevs:
        (base / "net" / ifname).mkdir(parents=True)
        link_dir = root / "class" / "net" / ifname
        link_dir.mkdir(parents=True)
        os.symlink(f"../../../bus/pci/devices/{bdf}", link_dir / "device")
        (link_dir / "speed").write_text(speed + "\n")
    return base


def _routing_id(bdf: str) -> int:
    _domain, bus, rest = bdf.split(":")
    device, function = rest.split(".")
    return int(bus, 16) << 8 | int(device, 16) << 3 | int(function, 16)


def _offset_and_stride(pf: str, virtfns: tuple[str, ...]) -> tuple[int, int]:
    if not virtfns:
        return 16, 1  # what an X710 port says
    offset = _routing_id(virtfns[0]) - _routing_id(pf)
    stride = _routing_id(virtfns[1]) - _routing_id(virtfns[0]) if len(virtfns) > 1 else 1
    return offset, stride


def vf_address(index: int) -> str:
    """VF N of the PF at PF_ADDRESS: routing ID PF + 16 + N (offset 16, stride 1)."""
    return f"0000:3b:{2 + index // 8:02x}.{index % 8}"


def build_tree(root: Path, *, pf: str, vfs: tuple[str, ...], vfio_vfs: int) -> dict[str, str]:
    """Lay the PF (netdev ``pf``), its netdev VFs (netdevs ``vfs``, driver iavf) and ``vfio_vfs``
    VFs bound to vfio-pci out below ``root``. Returns each function's PCI address by role
    ("pf", the netdev VFs' names, "vfio0", "vfio1", ...)."""
    count = len(vfs) + vfio_vfs
    addresses = {"pf": PF_ADDRESS}
    virtfns = tuple(vf_address(index) for index in range(count))
    pci_device(
        root, PF_ADDRESS, netdevs=(pf,), total_vfs=TOTAL_VFS, num_vfs=count, virtfns=virtfns,
        speed="25000",
    )  # fmt: skip
    for index, address in enumerate(virtfns):
        if index < len(vfs):
            name = vfs[index]
            pci_device(
                root, address, device=VF_DEVICE_ID, driver="iavf", netdevs=(name,),
                physfn=PF_ADDRESS,
            )  # fmt: skip
            addresses[name] = address
        else:
            pci_device(root, address, device=VF_DEVICE_ID, driver="vfio-pci", physfn=PF_ADDRESS)
            addresses[f"vfio{index - len(vfs)}"] = address
    return addresses
