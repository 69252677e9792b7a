"""Plain-data fixtures shared by the NAD tests (no database, no I/O; no tests here)."""

from __future__ import annotations

from dataclasses import replace

from inventory.rules import nad
from inventory.rules.nad import DeviceFacts, NadRequest, PluginFacts

UP_TO_1_0 = ("0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0")
# Debian's containernetworking-plugins 1.1.1 (the lab's): has the EEXIST bug.
OLD_PLUGIN = PluginFacts("1.1.1", UP_TO_1_0)
# Debian builds print "version unknown": only supportedVersions tell the range.
DEBIAN_PLUGIN = PluginFacts(None, UP_TO_1_0)
NEW_PLUGIN = PluginFacts("1.6.2", (*UP_TO_1_0, "1.1.0"))


def nic(node: str = "node-a", name: str = "ens1f0", **changes) -> DeviceFacts:
    """A free PCI NIC on a node with a fixed host-device."""
    device = DeviceFacts(
        node=node,
        name=name,
        mac="52:54:00:12:34:56",
        pci_address="0000:3b:00.0",
        kernelpath=f"/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/{name}",
        driver="ice",
        plugin=NEW_PLUGIN,
    )
    return replace(device, **changes)


def veth(node: str = "node-a", name: str = "eth1", **changes) -> DeviceFacts:
    """A lab NIC: a veth, no PCI address, kernelpath under /sys/devices/virtual."""
    device = DeviceFacts(
        node=node,
        name=name,
        mac="aa:bb:cc:00:00:01",
        kernelpath=f"/sys/devices/virtual/net/{name}",
        kind="veth",
        driver="veth",
        plugin=OLD_PLUGIN,
    )
    return replace(device, **changes)


def request(*devices: DeviceFacts, **changes) -> NadRequest:
    base = NadRequest(
        namespace="lab", name="uplink", devices=devices or (nic(),), multus_version="4.1.0"
    )
    return replace(base, **changes)


def only(findings, code: str) -> nad.Finding:
    """The one finding with this code (fails the test when there are none or several)."""
    matching = [f for f in findings if f.code == code]
    assert len(matching) == 1, f"expected one {code}, got {[f.code for f in findings]}"
    return matching[0]


def codes(findings, severity: str | None = None) -> set[str]:
    return {f.code for f in findings if severity is None or f.severity == severity}
