"""May this interface be handed to a pod? The ownership verdict, wireless NICs, PCI functions
without a netdev. Shared by the builder (refuses) and the linter (reports)."""

from __future__ import annotations

import re

from inventory.rules.nad.facts import DeviceFacts, Finding, error, warning
from inventory.rules.sriov import USERSPACE_DRIVERS
from inventory.rules.states import OwnershipState

# Drivers of Wi-Fi NICs: cfg80211 ties them to their phy, so the link cannot change netns
# (plugins #957). The agent may also report kind "wireless".
WIRELESS_KINDS = frozenset({"wireless", "wlan", "wifi"})
WIRELESS_DRIVERS = frozenset(
    {
        "iwlwifi",
        "ath9k",
        "ath9k_htc",
        "ath10k_pci",
        "ath11k_pci",
        "ath12k",
        "brcmfmac",
        "brcmsmac",
        "mt7921e",
        "mt7921u",
        "mt76x2e",
        "mt7915e",
        "rtw88_pci",
        "rtw89_pci",
        "rtl8192ce",
        "rtl8821ae",
        "mwifiex_pcie",
        "wl",
    }
)

# The ownership reasons of a node's uplink: the default route, a Kubernetes node address, or a
# NIC pinned as the uplink although a snapshot no longer shows it so (rules/crosscheck.py).
# read/admission.py hands the pattern to PostgreSQL (~*): keep it to what both read alike.
PRIMARY_REASON = re.compile(r"default route|internal ?ip|external ?ip|node's uplink", re.I)

_STATE_WORDS = {
    OwnershipState.SYSTEM: "used by the node itself",
    OwnershipState.CNI: "used by the primary CNI or the Kubernetes infrastructure",
    OwnershipState.ENSLAVED: "enslaved to a bond, team or bridge",
    OwnershipState.VIRTUAL: "a virtual link that cannot be handed to a pod",
    OwnershipState.USERSPACE: "bound to a userspace (DPDK) driver",
    OwnershipState.POD: "already in a pod",
    OwnershipState.MISSING: "missing from the node",
    OwnershipState.UNKNOWN: "of unknown state (the node's agent has not answered recently)",
}


def where(device: DeviceFacts) -> str:
    return f"{device.node}/{device.name}" if device.name else f"{device.node}/{device.pci_address}"


def _because(device: DeviceFacts) -> str:
    parts = []
    if device.reason:
        parts.append(f": {device.reason}")
    if device.holder:
        parts.append(f" (held by {device.holder})")
    return "".join(parts)


def is_primary_nic(device: DeviceFacts) -> bool:
    return device.state == OwnershipState.SYSTEM and bool(PRIMARY_REASON.search(device.reason))


def is_wireless(device: DeviceFacts) -> bool:
    return device.kind.lower() in WIRELESS_KINDS or device.driver in WIRELESS_DRIVERS


def _userspace_finding(device: DeviceFacts, *, selector: str) -> Finding:
    """A function bound to vfio-pci/uio: only pciBusID reaches it (host-device's DPDK mode)."""
    label = where(device)
    if selector == "pciBusID":
        return warning(
            "USERSPACE_DPDK",
            "devices",
            f"{label} is bound to {device.driver or 'a userspace driver'}: host-device "
            "moves nothing (DPDK mode) and the pod gets no kernel interface, only the PCI "
            "address to drive from userspace.",
            "Use it from a DPDK application, normally through an SR-IOV device plugin "
            "(resourceName); bind a kernel driver for a kernel interface.",
        )
    return error(
        "DEVICE_NOT_FREE",
        "devices",
        f"{label} is {_STATE_WORDS[OwnershipState.USERSPACE]}{_because(device)}; it "
        f"has no kernel interface for a {selector} selector to find.",
        "Select it by pciBusID for a DPDK application, or bind a kernel network driver to it.",
    )


def device_findings(
    device: DeviceFacts, *, selector: str, team: str, strict_reservations: bool = True
) -> list[Finding]:
    """Why `device` cannot (or should not) be moved into a pod with `selector`.
    `team` is the requester's; `strict_reservations` False (the linter, which does not know who
    uses a NAD) turns another team's reservation into a warning."""
    findings: list[Finding] = []
    state = device.state
    label = where(device)
    pick_other = "Pick a free interface on this node (the inventory lists them)."

    if is_wireless(device):
        findings.append(
            error(
                "WIRELESS_NIC",
                "devices",
                f"{label} is a wireless NIC: wireless links are tied to their phy and cannot be "
                "moved into a pod's network namespace (containernetworking/plugins #957).",
                "Use a wired NIC, or move the whole phy with `iw phy <phy> set netns`.",
            )
        )

    # A VF bound to vfio-pci is free or reserved like a netdev NIC (rules/ownership.py), but
    # only pciBusID reaches it.
    userspace_driver = device.driver in USERSPACE_DRIVERS
    userspace_vf = userspace_driver and state in (
        OwnershipState.FREE,
        OwnershipState.RESERVED,
    )
    reserved_team = device.reserved_team or (
        device.holder if state == OwnershipState.RESERVED else ""
    )
    if state in (OwnershipState.FREE, OwnershipState.RESERVED):
        if reserved_team and reserved_team != team:
            make = error if strict_reservations else warning
            findings.append(
                make(
                    "DEVICE_RESERVED",
                    "devices",
                    f"{label} is reserved by team {reserved_team}"
                    + (f": {device.reason}" if device.reason else "")
                    + ("." if strict_reservations else "; only that team should attach it."),
                    f"Ask team {reserved_team} to release it, or pick a free interface.",
                )
            )
        elif state == OwnershipState.RESERVED and not reserved_team:
            findings.append(
                error(
                    "DEVICE_RESERVED",
                    "devices",
                    f"{label} is reserved by another team{_because(device)}.",
                    pick_other,
                )
            )
    elif is_primary_nic(device):
        findings.append(
            error(
                "PRIMARY_NIC",
                "devices",
                f"{label} is the node's primary NIC{_because(device)}. host-device would take "
                "it away from the node, which then drops off the cluster (multus-cni #557).",
                pick_other,
            )
        )
    elif state == OwnershipState.USERSPACE:
        findings.append(_userspace_finding(device, selector=selector))
    elif state == OwnershipState.ENSLAVED and device.sriov_num_vfs > 0:
        findings.append(
            error(
                "PF_WITH_VFS",
                "devices",
                f"{label} is an SR-IOV PF with {device.sriov_num_vfs} VFs enabled"
                f"{_because(device)}. Its VFs are configured through it (ip link set "
                f"{device.name or 'PF'} vf N ...): moved into a pod it takes that away from "
                "the node and from every pod using one of its VFs.",
                "Pick one of its free VFs (listed under it), or disable its VFs first "
                "(echo 0 > sriov_numvfs).",
            )
        )
    elif state == OwnershipState.POD:
        findings.append(
            error(
                "DEVICE_IN_POD",
                "devices",
                f"{label} is already in a pod{_because(device)}; a second pod would fail with "
                "`failed to find host device: Link not found`.",
                "Wait until that pod is gone, or pick a free interface.",
            )
        )
    elif state == OwnershipState.MISSING:
        findings.append(
            error(
                "DEVICE_MISSING",
                "devices",
                f"{label} is missing from the node{_because(device)}; the pod would fail with "
                "`failed to find host device: Link not found`.",
                "Look for it stranded in a dead pod's namespace, or pick a present interface.",
            )
        )
    else:
        words = _STATE_WORDS.get(state, f'in state "{state}"')
        findings.append(
            error(
                "DEVICE_NOT_FREE",
                "devices",
                f"{label} is {words}{_because(device)}.",
                pick_other,
            )
        )

    if userspace_vf:
        findings.append(_userspace_finding(device, selector=selector))
    # A function bound to a userspace driver never has a netdev: the findings above say it.
    if not device.has_netdev and state != OwnershipState.USERSPACE and not userspace_driver:
        findings.append(
            error(
                "NO_NETDEV",
                "devices",
                f"{label} is a PCI function without a network interface: host-device fails with "
                f"`failed to find device name for pci address {device.pci_address}`.",
                "Bind a kernel network driver to it, or, for DPDK, bind vfio-pci and use it "
                "through pciBusID or a device plugin.",
            )
        )
    return findings
