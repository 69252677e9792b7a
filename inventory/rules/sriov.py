"""SR-IOV facts as host-device sees them: is this a PF or a VF, and what host-device does with it.

Pure: no ORM, no I/O. host-device (containernetworking/plugins, plugins/main/host-device) takes
a PCI function by ``pciBusID`` in one of two ways, decided by the driver bound to it:

- a kernel network driver (``iavf``, ``mlx5_core``, ``ixgbevf``, ...): it finds the netdev under
  ``/sys/bus/pci/devices/<BDF>/net`` and moves it into the pod, renamed to the pod interface;
- a userspace driver (``vfio-pci``, ``uio_pci_generic``, ``igb_uio``): "DPDK mode", it moves
  nothing and the ADD succeeds with no interface; the pod drives the function from userspace
  (it needs the function's ``/dev/vfio`` group, which a device plugin or a privileged pod gives).

With no driver bound the ADD fails (reading the driver link), and a kernel driver without a
netdev on the host (moved into a pod) fails with "failed to find device name for pci address".
"""

from __future__ import annotations

import json
import re

USERSPACE_DRIVERS = frozenset({"vfio-pci", "uio_pci_generic", "igb_uio"})
_BDF = re.compile(r"[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]")

PF = "pf"
VF = "vf"
ROLES = (PF, VF)

# What host-device does with a function selected by pciBusID (host_device_mode).
MOVES_NETDEV = "netdev"
MOVES_NOTHING = "vfio"
NO_DRIVER = "no-driver"
NO_NETDEV = "no-netdev"
HOST_DEVICE_MODES = {
    MOVES_NETDEV: "host-device moves its netdev into the pod",
    MOVES_NOTHING: "host-device moves nothing (DPDK mode): the pod drives it through VFIO",
    NO_DRIVER: "no driver bound: host-device fails to take it",
    NO_NETDEV: "its netdev is not on the host: host-device cannot find it",
}


def role(*, pf_pci_address: str, sriov_total_vfs: int | None) -> str:
    """ "vf" for a virtual function, "pf" for an SR-IOV capable physical function (VFs enabled
    or not), "" for any other link."""
    if pf_pci_address:
        return VF
    return PF if (sriov_total_vfs or 0) > 0 else ""


def host_device_mode(*, pci_address: str, driver: str, has_netdev: bool) -> str:
    """How host-device would take this function by pciBusID (HOST_DEVICE_MODES), "" when it
    has no PCI address (pciBusID cannot select it)."""
    if not pci_address:
        return ""
    if driver in USERSPACE_DRIVERS:
        return MOVES_NOTHING
    if not driver:
        return NO_DRIVER
    return MOVES_NETDEV if has_netdev else NO_NETDEV


def config_pci_bus_id(config: str) -> str:
    """The PCI address a host-device NAD config selects by ``pciBusID`` (lowercase), "" when it
    selects by something else, is no host-device config, or is not JSON. host-device prefers
    device, hwaddr and kernelpath over pciBusID, so a config that also sets one of those does
    not take the device by its address."""
    try:
        parsed = json.loads(config) if isinstance(config, str) and len(config) < 65536 else None
    except (ValueError, RecursionError):
        return ""
    if not isinstance(parsed, dict):
        return ""
    plugins = parsed.get("plugins") if "type" not in parsed else [parsed]
    if not isinstance(plugins, list):
        return ""
    hosts = [p for p in plugins if isinstance(p, dict) and p.get("type") == "host-device"]
    if len(hosts) != 1 or any(hosts[0].get(key) for key in ("device", "hwaddr", "kernelpath")):
        return ""
    address = hosts[0].get("pciBusID")
    if not isinstance(address, str) or not _BDF.fullmatch(address.lower()):
        return ""
    return address.lower()


# -- the sentences of the ownership verdicts (rules/ownership.py) ------------------------------

NO_DRIVER_CLAUSE = (
    "has no driver bound: host-device cannot take it (its ADD fails reading the driver); bind a "
    "network or vfio-pci driver"
)


def vf_words(pf_pci_address: str, *, vf_index: int | None, pf_name: str) -> str:
    """ "VF 1 of ens3f0" for an SR-IOV VF ("VF of 0000:3b:00.0" when its number or its PF's
    netdev is unknown), "" for a function that is no VF."""
    if not pf_pci_address:
        return ""
    number = f" {vf_index}" if vf_index is not None else ""
    return f"VF{number} of {pf_name or pf_pci_address}"


def free_vf_reason(vf: str, *, driver: str, pci_address: str, pf_use: str = "") -> str:
    """Why a free VF (named by vf_words) is free, and how host-device takes it. ``pf_use`` is
    pf_use_clause of a PF the node uses: the VF is free all the same."""
    tail = f"; {pf_use}" if pf_use else ""
    if driver in USERSPACE_DRIVERS:
        return (
            f"{vf} bound to {driver} ({pci_address}), not in use: host-device takes it by "
            f"pciBusID and moves nothing (DPDK mode); the pod drives it through its VFIO "
            f"device{tail}"
        )
    details = f"driver {driver}, {pci_address}" if driver else pci_address
    return (
        f"{vf} ({details}): no address, no master, not in use; host-device moves its netdev "
        f"into the pod{tail}"
    )


def pf_use_clause(pf_name: str, pf_reason: str) -> str:
    """What a VF's reason says of a PF the node uses: it stays, the VF may go (a VF is a PCI
    function of its own; moving it does not touch the PF's traffic)."""
    return f"its PF {pf_name} stays with the node ({pf_reason})"


def pf_panel_sentence(
    *, name: str, state: str, reason: str, holder: str, num_vfs: int, uplink: bool
) -> str:
    """The sentence the node page shows next to a PF and its VFs: what the PF is to the node
    and whether its VFs may go to pods. ``uplink``: its reason says it is the node's uplink
    (crosscheck.is_uplink_reason). "" when its badge and reason say enough (in a pod, …)."""
    pf = f"PF {name}" if name else "This PF"
    if num_vfs <= 0:
        return f"{pf} has no VFs enabled: it is judged as any NIC; enable VFs for pods to use"
    vfs = "its VFs can be given to pods"
    if state == "system":
        what = "the node's uplink" if uplink else "used by the node"
        return f"{pf} is {what} and is never handed out; {vfs}"
    if state == "cni":
        return f"{pf} belongs to {holder or 'the primary CNI'} and is never handed out; {vfs}"
    if state == "enslaved" and holder != PF_HOLDER:
        return f"{pf} is held by {holder or 'its master'} and is never handed out; {vfs}"
    if state in ("enslaved", "reserved", "free"):
        return f"{pf} is not handed out while its VFs are enabled; {vfs}"
    return ""


PF_HOLDER = "SR-IOV VFs"  # the holder of a PF with VFs enabled that the node does not use


def pf_with_vfs_reason(*, num_vfs: int, in_pods: int) -> str:
    """Why a PF with VFs enabled is not handed out: it would take the VFs with it."""
    counted = f", {in_pods} in pods" if in_pods else ""
    return (
        f"SR-IOV PF with {num_vfs} VFs enabled{counted}: moving it would take the VFs away; "
        "hand out its VFs instead"
    )
