"""nad.build(): every refusal and warning a user can get, with the message they read, and the
shape of what is emitted (config, YAML, placement)."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
import yaml
from test_nad_fixtures import (
    DEBIAN_PLUGIN,
    NEW_PLUGIN,
    OLD_PLUGIN,
    codes,
    nic,
    only,
    request,
    veth,
)

from inventory.rules import nad
from inventory.rules.nad import IpamRequest, PluginFacts

# --- refusals and warnings, one row per rule ---------------------------------------------------

# (id, request, code, severity, fragment of the message a user reads)
RULES = [
    (
        "name-upper-case",
        request(name="Uplink"),
        "NAME_INVALID",
        "error",
        'NAD name "Uplink" is not a DNS-1123 label: it has upper-case letters.',
    ),
    (
        "name-too-long",
        request(name="a" * 64),
        "NAME_INVALID",
        "error",
        "it is 64 characters long (at most 63)",
    ),
    (
        "name-leading-dash",
        request(name="-uplink"),
        "NAME_INVALID",
        "error",
        "must start and end with a letter or digit",
    ),
    (
        "namespace-invalid",
        request(namespace="Lab_1"),
        "NAMESPACE_INVALID",
        "error",
        'Namespace "Lab_1" is not a DNS-1123 label',
    ),
    (
        "selector-unknown",
        request(selector="mac"),
        "SELECTOR_INVALID",
        "error",
        'Selector "mac" is not one host-device knows.',
    ),
    (
        "resource-name-invalid",
        request(resource_name="sriov_netdevice"),
        "RESOURCE_NAME_INVALID",
        "error",
        '"sriov_netdevice" is not a device-plugin resource name.',
    ),
    ("no-devices", request(devices=()), "NO_DEVICES", "error", "No interface was chosen."),
    (
        "two-devices-on-one-node",
        request(nic(), nic(name="ens1f1", mac="52:54:00:12:34:57", pci_address="0000:3b:00.1")),
        "MULTIPLE_DEVICES_PER_NODE",
        "error",
        "Two interfaces on node node-a (ens1f0 and ens1f1): one attachment moves one device, a "
        "list of host-devices gives the pod a single interface (multus-cni #637).",
    ),
    (
        "primary-nic",
        request(
            nic(name="eno1", state="system", reason="carries the default route (via 10.0.0.1)")
        ),
        "PRIMARY_NIC",
        "error",
        "node-a/eno1 is the node's primary NIC: carries the default route (via 10.0.0.1). "
        "host-device would take it away from the node, which then drops off the cluster "
        "(multus-cni #557).",
    ),
    (
        "primary-nic-by-internal-ip",
        request(nic(state="system", reason="holds the node's InternalIP 10.0.0.5")),
        "PRIMARY_NIC",
        "error",
        "holds the node's InternalIP 10.0.0.5",
    ),
    (
        "system-loopback",
        request(nic(name="lo", state="system", reason="loopback")),
        "DEVICE_NOT_FREE",
        "error",
        "node-a/lo is used by the node itself: loopback.",
    ),
    (
        "cni-owned",
        request(nic(name="vxlan.calico", state="cni", reason="Calico VXLAN", holder="calico")),
        "DEVICE_NOT_FREE",
        "error",
        "node-a/vxlan.calico is used by the primary CNI or the Kubernetes infrastructure: "
        "Calico VXLAN (held by calico).",
    ),
    (
        "enslaved",
        request(nic(state="enslaved", reason="port of bridge br0", holder="br0")),
        "DEVICE_NOT_FREE",
        "error",
        "enslaved to a bond, team or bridge: port of bridge br0 (held by br0)",
    ),
    (
        "virtual",
        request(veth(state="virtual", reason="a bridge")),
        "DEVICE_NOT_FREE",
        "error",
        "node-a/eth1 is a virtual link that cannot be handed to a pod: a bridge.",
    ),
    (
        "unknown-state",
        request(nic(state="unknown", reason="agent silent for 10 min")),
        "DEVICE_NOT_FREE",
        "error",
        "of unknown state (the node's agent has not answered recently): agent silent for 10 min",
    ),
    (
        "userspace-by-name",
        request(
            nic(state="userspace", driver="vfio-pci", has_netdev=False, reason="bound to vfio-pci"),
            selector="hwaddr",
        ),
        "DEVICE_NOT_FREE",
        "error",
        "bound to a userspace (DPDK) driver: bound to vfio-pci; it has no kernel interface for a "
        "hwaddr selector to find.",
    ),
    (
        "in-a-pod",
        request(nic(state="pod", reason="in pod team-a/web-0", holder="team-a/web-0 via lab/x")),
        "DEVICE_IN_POD",
        "error",
        "node-a/ens1f0 is already in a pod: in pod team-a/web-0 (held by team-a/web-0 via lab/x); "
        "a second pod would fail with `failed to find host device: Link not found`.",
    ),
    (
        "missing",
        request(nic(state="missing", reason="gone since 10:02")),
        "DEVICE_MISSING",
        "error",
        "node-a/ens1f0 is missing from the node: gone since 10:02",
    ),
    (
        "reserved-by-another-team",
        request(
            nic(state="reserved", reserved_team="team-b", reason="until Friday: load tests"),
            team="team-a",
        ),
        "DEVICE_RESERVED",
        "error",
        "node-a/ens1f0 is reserved by team team-b: until Friday: load tests.",
    ),
    (
        "reserved-without-team-given",
        request(nic(state="reserved", reserved_team="team-b")),
        "DEVICE_RESERVED",
        "error",
        "reserved by team team-b",
    ),
    (
        "wireless-by-kind",
        request(nic(name="wlp2s0", kind="wireless", driver="iwlwifi")),
        "WIRELESS_NIC",
        "error",
        "node-a/wlp2s0 is a wireless NIC: wireless links are tied to their phy and cannot be "
        "moved into a pod's network namespace (containernetworking/plugins #957).",
    ),
    (
        "wireless-by-driver",
        request(nic(name="wlan0", driver="brcmfmac")),
        "WIRELESS_NIC",
        "error",
        "node-a/wlan0 is a wireless NIC",
    ),
    (
        "pci-function-without-netdev",
        request(nic(has_netdev=False), selector="pciBusID"),
        "NO_NETDEV",
        "error",
        "`failed to find device name for pci address 0000:3b:00.0`",
    ),
    (
        "dpdk-by-pci",
        request(nic(state="userspace", driver="vfio-pci", has_netdev=False), selector="pciBusID"),
        "USERSPACE_DPDK",
        "warning",
        "node-a/ens1f0 is bound to vfio-pci: host-device moves nothing (DPDK mode)",
    ),
    (
        "eexist-old-plugin",
        request(nic(name="eth0", plugin=OLD_PLUGIN), selector="device"),
        "EEXIST_RISK",
        "error",
        'On node node-a, "device": "eth0" would fail with `failed to move link file exists`: '
        "host-device before v1.5.0 moves the link into the pod under its host name, and the pod "
        'already has an interface named "eth0" (the primary CNI\'s interface) (multus-cni '
        "#1209, seen with MicroK8s + Calico); the node runs host-device v1.1.1, older than "
        "v1.5.0 where the bug was fixed.",
    ),
    (
        "eexist-version-unknown",
        request(nic(name="eth0", plugin=DEBIAN_PLUGIN), selector="device"),
        "EEXIST_RISK",
        "error",
        'a host-device that prints "version unknown" and accepts cniVersion up to 1.0.0 (so a '
        "v1.0.0-v1.5.x release); v1.0.0-v1.4.x have the bug (fixed in v1.5.0) and nothing tells "
        "them apart from v1.5.x, so it is treated as affected.",
    ),
    (
        "eexist-no-plugin-facts",
        request(nic(name="eth0", plugin=None), selector="device"),
        "EEXIST_RISK",
        "error",
        "so the bug (fixed in v1.5.0) cannot be ruled out",
    ),
    (
        "eexist-name-of-the-pod-interface",
        request(nic(name="net1", plugin=OLD_PLUGIN), selector="device"),
        "EEXIST_RISK",
        "error",
        'the pod may already have an interface named "net1" (another attachment: Multus names '
        "them net1, net2… by default)",
    ),
    (
        "hwaddr-without-mac",
        request(nic(mac=""), selector="hwaddr"),
        "SELECTOR_VALUE_MISSING",
        "error",
        "node-a/ens1f0 has no MAC address: hwaddr cannot select it.",
    ),
    (
        "pci-on-a-veth",
        request(veth(), selector="pciBusID"),
        "SELECTOR_VALUE_MISSING",
        "error",
        "node-a/eth1 has no PCI address (a veth or other virtual link): pciBusID cannot select it.",
    ),
    (
        "kernelpath-missing",
        request(veth(kernelpath=""), selector="kernelpath"),
        "SELECTOR_VALUE_MISSING",
        "error",
        "node-a/eth1 has no sysfs device path (a virtual link): kernelpath cannot select it.",
    ),
    (
        "kernelpath-of-a-veth",
        request(veth(), selector="kernelpath"),
        "KERNELPATH_VIRTUAL",
        "error",
        'node-a/eth1: kernelpath "/sys/devices/virtual/net/eth1" cannot work: it is under '
        "/sys/devices/virtual/",
    ),
    (
        "kernelpath-relative",
        request(nic(kernelpath="sys/devices/pci0000:00/0000:00:19.0"), selector="kernelpath"),
        "KERNELPATH_INVALID",
        "error",
        "cannot work: it is a relative path.",
    ),
    (
        "kernelpath-outside-sys-devices",
        request(nic(kernelpath="/sys/class/net/ens1f0"), selector="kernelpath"),
        "KERNELPATH_INVALID",
        "error",
        "cannot work: it does not begin with /sys/devices/.",
    ),
    (
        "pci-short",
        request(nic(pci_address="3b:00.0"), selector="pciBusID"),
        "PCI_ADDRESS_SHORT",
        "error",
        'node-a/ens1f0: PCI address "3b:00.0" has no domain',
    ),
    (
        "pci-garbage",
        request(nic(pci_address="pci-3b"), selector="pciBusID"),
        "PCI_ADDRESS_INVALID",
        "error",
        'node-a/ens1f0: "pci-3b" is not a PCI address (dddd:bb:dd.f).',
    ),
    (
        "mac-garbage",
        request(nic(mac="52:54:00:12:34"), selector="hwaddr"),
        "HWADDR_INVALID",
        "error",
        'node-a/ens1f0: "52:54:00:12:34" is not a unicast MAC address host-device can match.',
    ),
    (
        "mac-multicast",
        request(nic(mac="01:00:5e:00:00:01"), selector="hwaddr"),
        "HWADDR_INVALID",
        "error",
        '"01:00:5e:00:00:01" is not a unicast MAC address',
    ),
    (
        "device-name-invalid",
        request(nic(name="ens 1"), selector="device"),
        "DEVICE_NAME_INVALID",
        "error",
        "node-a/ens 1: \"ens 1\" is not a valid interface name: it contains ' '",
    ),
    (
        "selector-and-resource-name",
        request(selector="pciBusID", resource_name="intel.com/sriov_netdevice"),
        "SELECTOR_WITH_RESOURCE_NAME",
        "error",
        "A pciBusID selector and a resourceName together",
    ),
    (
        "no-selector-possible",
        request(veth(mac="", name="bad/name")),
        "SELECTOR_NONE_POSSIBLE",
        "error",
        "node-a/bad/name can be selected neither by name (unsafe or invalid), nor by PCI "
        "address, nor by MAC address.",
    ),
    (
        "pod-interface-empty",
        request(pod_interface=""),
        "POD_INTERFACE_INVALID",
        "error",
        'Pod interface name "" is not a valid Linux interface name: it is empty.',
    ),
    (
        "pod-interface-16-chars",
        request(pod_interface="a" * 16),
        "POD_INTERFACE_INVALID",
        "error",
        "it is 16 bytes long (the kernel allows at most 15)",
    ),
    (
        "pod-interface-colon",
        request(pod_interface="net:1"),
        "POD_INTERFACE_INVALID",
        "error",
        "it contains ':' (the kernel refuses '/', ':' and whitespace)",
    ),
    (
        "pod-interface-slash",
        request(pod_interface="net/1"),
        "POD_INTERFACE_INVALID",
        "error",
        "it contains '/'",
    ),
    (
        "pod-interface-tab",
        request(pod_interface="net\t1"),
        "POD_INTERFACE_INVALID",
        "error",
        "it contains '\\t'",
    ),
    (
        "pod-interface-dot",
        request(pod_interface=".."),
        "POD_INTERFACE_INVALID",
        "error",
        '".." is reserved',
    ),
    (
        "pod-interface-not-dns-on-multus-3",
        request(pod_interface="Data_0", multus_version="3.9"),
        "POD_INTERFACE_NOT_DNS1123",
        "error",
        'Pod interface name "Data_0" is not a DNS-1123 label; Multus up to v4.0 (MicroK8s ships '
        "v3.9) refuses such names in the networks annotation.",
    ),
    (
        "pod-interface-not-dns-multus-unknown",
        request(pod_interface="Data_0", multus_version=""),
        "POD_INTERFACE_NOT_DNS1123",
        "warning",
        "The cluster's Multus version is unknown.",
    ),
    (
        "pod-interface-taken",
        request(pod_interface="eth0"),
        "POD_INTERFACE_TAKEN",
        "error",
        'The pod already has an interface named "eth0"',
    ),
    (
        "pod-interface-lo",
        request(pod_interface="lo"),
        "POD_INTERFACE_TAKEN",
        "error",
        'The pod already has an interface named "lo"',
    ),
    (
        "cni-version-not-a-spec",
        request(cni_version="0.5.0"),
        "CNI_VERSION_INVALID",
        "error",
        'cniVersion "0.5.0" is not a CNI spec version.',
    ),
    (
        "cni-version-above-plugin",
        request(nic(plugin=OLD_PLUGIN), cni_version="1.1.0"),
        "CNI_VERSION_UNSUPPORTED",
        "error",
        "cniVersion 1.1.0 is not accepted by host-device v1.1.1 on node node-a (it accepts "
        "0.1.0, 0.2.0, 0.3.0, 0.3.1, 0.4.0, 1.0.0)",
    ),
    (
        "cni-version-above-multus",
        request(cni_version="1.0.0", multus_version="3.9"),
        "CNI_VERSION_MULTUS",
        "error",
        "cniVersion 1.0.0 is newer than Multus 3.9 accepts (0.3.1 at most).",
    ),
    (
        "cni-version-multus-unknown",
        request(cni_version="1.0.0", multus_version=""),
        "CNI_VERSION_UNVERIFIED",
        "warning",
        "cniVersion 1.0.0 cannot be checked against the cluster's Multus",
    ),
    (
        "multus-unknown",
        request(multus_version=""),
        "MULTUS_VERSION_UNKNOWN",
        "warning",
        "The cluster's Multus version is unknown: NICPortal assumed it accepts cniVersion 0.3.1 "
        "at most, which every Multus release does (MicroK8s' v3.9 included).",
    ),
    (
        "multus-unreadable",
        request(multus_version="latest"),
        "MULTUS_VERSION_UNKNOWN",
        "warning",
        'The cluster\'s Multus version "latest" cannot be read',
    ),
    (
        "no-common-cni-version",
        request(nic(plugin=PluginFacts(None, ("1.0.0",))), multus_version="3.9"),
        "CNI_VERSION_NO_COMMON",
        "error",
        "No cniVersion is accepted by the host-device on every target node and by Multus (0.3.1 "
        "at most): node-a: 1.0.0.",
    ),
    (
        "plugin-unknown",
        request(nic(plugin=None)),
        "PLUGIN_UNKNOWN",
        "warning",
        "Nothing is known about the host-device binary on node node-a",
    ),
]


@pytest.mark.parametrize(
    ("req", "code", "severity", "fragment"),
    [row[1:] for row in RULES],
    ids=[row[0] for row in RULES],
)
def test_it_reports_each_rule_with_the_message_a_user_reads(req, code, severity, fragment):
    result = nad.build(req)
    finding = only(result.findings, code)
    assert finding.severity == severity
    assert fragment in finding.message
    assert finding.fix or severity != "error"
    if severity == "error":
        assert not result.ok
        assert result.nads == ()
        assert result.pod_snippet == ""


def test_the_rule_table_covers_every_builder_code():
    covered = {row[2] for row in RULES}
    # IPAM codes have their own table below.
    assert covered >= {
        "NAME_INVALID", "NAMESPACE_INVALID", "SELECTOR_INVALID", "RESOURCE_NAME_INVALID",
        "NO_DEVICES", "MULTIPLE_DEVICES_PER_NODE", "PRIMARY_NIC", "DEVICE_NOT_FREE",
        "DEVICE_IN_POD", "DEVICE_MISSING", "DEVICE_RESERVED", "WIRELESS_NIC", "NO_NETDEV",
        "USERSPACE_DPDK", "EEXIST_RISK", "SELECTOR_VALUE_MISSING", "KERNELPATH_VIRTUAL",
        "KERNELPATH_INVALID", "PCI_ADDRESS_SHORT", "PCI_ADDRESS_INVALID", "HWADDR_INVALID",
        "DEVICE_NAME_INVALID", "SELECTOR_WITH_RESOURCE_NAME", "SELECTOR_NONE_POSSIBLE",
        "POD_INTERFACE_INVALID", "POD_INTERFACE_NOT_DNS1123", "POD_INTERFACE_TAKEN",
        "CNI_VERSION_INVALID", "CNI_VERSION_UNSUPPORTED", "CNI_VERSION_MULTUS",
        "CNI_VERSION_UNVERIFIED", "MULTUS_VERSION_UNKNOWN", "CNI_VERSION_NO_COMMON",
        "PLUGIN_UNKNOWN",
    }  # fmt: skip


def test_it_offers_the_mac_and_the_pci_address_instead_of_an_unsafe_name():
    result = nad.build(request(nic(name="eth0", plugin=OLD_PLUGIN), selector="device"))
    assert only(result.findings, "EEXIST_RISK").fix == (
        'Select the device by "hwaddr": "52:54:00:12:34:56" or "pciBusID": "0000:3b:00.0" '
        "instead of its name, or upgrade the node's CNI plugins to v1.5.0 or newer."
    )


def test_it_offers_only_the_mac_for_a_veth():
    result = nad.build(request(veth(name="eth0"), selector="device"))
    assert only(result.findings, "EEXIST_RISK").fix.startswith(
        'Select the device by "hwaddr": "aa:bb:cc:00:00:01" instead of its name'
    )


def test_it_suggests_the_full_pci_address_for_a_short_one():
    result = nad.build(request(nic(pci_address="3B:00.0"), selector="pciBusID"))
    assert only(result.findings, "PCI_ADDRESS_SHORT").fix == 'Use "0000:3b:00.0".'


def test_it_accepts_eth0_by_name_with_a_fixed_plugin():
    result = nad.build(request(nic(name="eth0", plugin=NEW_PLUGIN), selector="device"))
    assert result.ok, result.findings
    assert result.nads[0].config["device"] == "eth0"


def test_it_accepts_a_device_reserved_by_the_requesters_team():
    device = nic(state="reserved", reserved_team="team-a", holder="team-a")
    result = nad.build(request(device, team="team-a"))
    assert result.ok, result.findings


def test_it_refuses_a_free_device_with_another_teams_active_reservation():
    result = nad.build(request(nic(reserved_team="team-b"), team="team-a"))
    assert "reserved by team team-b" in only(result.findings, "DEVICE_RESERVED").message


def test_it_allows_non_dns_pod_interface_names_on_multus_4_1():
    result = nad.build(request(pod_interface="Data_0", multus_version="4.1.0"))
    assert "POD_INTERFACE_NOT_DNS1123" not in codes(result.findings)
    assert result.ok


def test_it_builds_a_dpdk_attachment_by_pci_address_with_a_warning():
    device = nic(state="userspace", driver="vfio-pci", has_netdev=False)
    result = nad.build(request(device))
    assert result.ok
    assert result.nads[0].config["pciBusID"] == "0000:3b:00.0"
    assert "USERSPACE_DPDK" in codes(result.findings, "warning")


# --- auto selector ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("device", "selector", "value"),
    [
        (nic(plugin=NEW_PLUGIN), "device", "ens1f0"),
        (nic(plugin=OLD_PLUGIN), "device", "ens1f0"),  # not a name the pod has
        (nic(name="eth0", plugin=NEW_PLUGIN), "device", "eth0"),  # v1.6: temporary netns
        (nic(name="eth0", plugin=OLD_PLUGIN), "pciBusID", "0000:3b:00.0"),
        (nic(name="eth0", plugin=DEBIAN_PLUGIN), "pciBusID", "0000:3b:00.0"),
        (nic(name="eth0", plugin=None), "pciBusID", "0000:3b:00.0"),
        (veth(name="eth0"), "hwaddr", "aa:bb:cc:00:00:01"),
        (veth(name="net1"), "hwaddr", "aa:bb:cc:00:00:01"),
        (veth(name="eth0", mac="AA-BB-CC-00-00-02"), "hwaddr", "aa:bb:cc:00:00:02"),
    ],
    ids=[
        "fixed-plugin",
        "old-plugin-safe-name",
        "eth0-fixed-plugin",
        "eth0-old-plugin-pci",
        "eth0-version-unknown-pci",
        "eth0-no-facts-pci",
        "eth0-veth-mac",
        "pod-interface-name-veth-mac",
        "mac-normalized",
    ],
)
def test_auto_picks_the_safe_selector(device, selector, value):
    result = nad.build(request(device))
    assert result.ok, result.findings
    (rendered,) = result.nads
    present = [s for s in nad.SELECTORS if s in rendered.config]
    assert present == [selector]
    assert rendered.config[selector] == value
    assert "SELECTOR_CHOSEN" in codes(result.findings, "info")


def test_auto_says_why_it_did_not_use_the_name():
    result = nad.build(request(nic(name="eth0", plugin=OLD_PLUGIN)))
    message = only(result.findings, "SELECTOR_CHOSEN").message
    assert message.startswith(
        'node-a/eth0 is selected by pciBusID: the pod already has an interface named "eth0" and '
        "the node runs host-device v1.1.1, older than v1.5.0"
    )


def selector_of(result) -> tuple[str, str]:
    (rendered,) = result.nads
    (selector,) = [s for s in nad.SELECTORS if s in rendered.config]
    return selector, rendered.config[selector]


def test_auto_does_not_select_by_a_name_another_node_has():
    # eth2 on node-b is team platform's; a NAD for node-a's eth2 selecting by name would take
    # node-b's from a pod scheduled there.
    elsewhere = {("device", "eth2"): ("node-b", "node-c")}
    result = nad.build(request(veth(name="eth2"), elsewhere=elsewhere))
    assert result.ok, result.findings
    assert selector_of(result) == ("hwaddr", "aa:bb:cc:00:00:01")
    message = only(result.findings, "SELECTOR_CHOSEN").message
    assert message == (
        "node-a/eth2 is selected by hwaddr: node-b, node-c also have an interface named "
        '"eth2", which a NAD selecting by name would take from a pod there; it has no PCI '
        "address, and its MAC names this NIC only."
    )
    assert "SELECTOR_MATCHES_OTHER_NODES" not in codes(result.findings)


def test_auto_prefers_the_pci_address_unless_another_node_has_one_like_it():
    elsewhere = {("device", "ens1f0"): ("node-b",)}
    assert selector_of(nad.build(request(nic(), elsewhere=elsewhere))) == (
        "pciBusID",
        "0000:3b:00.0",
    )
    # Identical servers: the same slot has the same address on node-b.
    elsewhere[("pciBusID", "0000:3b:00.0")] = ("node-b",)
    result = nad.build(request(nic(), elsewhere=elsewhere))
    assert selector_of(result) == ("hwaddr", "52:54:00:12:34:56")
    assert (
        "its PCI address is also on another node"
        in only(result.findings, "SELECTOR_CHOSEN").message
    )


def test_a_name_only_the_target_nodes_have_still_gives_one_nad_by_name():
    devices = (
        veth(node="node-a", name="fast0"),
        veth(node="node-b", name="fast0", mac="aa:bb:cc:00:00:0b"),
    )
    result = nad.build(request(*devices, elsewhere={}))
    assert [n.name for n in result.nads] == ["uplink"]
    assert result.nads[0].config["device"] == "fast0"


def test_eth3_on_two_nodes_of_three_gives_one_nad_per_node_by_mac():
    devices = (veth(node="n1", name="eth3"), veth(node="n2", name="eth3", mac="aa:bb:cc:00:00:02"))
    result = nad.build(request(*devices, elsewhere={("device", "eth3"): ("n3",)}))
    assert result.ok, result.findings
    assert [(n.name, n.config["hwaddr"]) for n in result.nads] == [
        ("uplink-n1", "aa:bb:cc:00:00:01"),
        ("uplink-n2", "aa:bb:cc:00:00:02"),
    ]


def test_an_explicit_selector_that_matches_another_nodes_nic_is_warned_about():
    result = nad.build(
        request(veth(name="eth2"), selector="device", elsewhere={("device", "eth2"): ("node-b",)})
    )
    assert result.ok
    warning = only(result.findings, "SELECTOR_MATCHES_OTHER_NODES")
    assert warning.severity == "warning"
    assert warning.message.startswith(
        '"device": "eth2" (for node-a/eth2) also matches an interface on node-b'
    )


def test_kernelpath_is_emitted_as_the_device_directory():
    result = nad.build(request(nic(), selector="kernelpath"))
    assert result.ok, result.findings
    assert (
        result.nads[0].config["kernelpath"] == "/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0"
    )


# --- cniVersion ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plugins", "multus", "expected"),
    [
        ((NEW_PLUGIN,), "3.9", "0.3.1"),
        ((NEW_PLUGIN,), "v3.9.3", "0.3.1"),
        ((NEW_PLUGIN,), "4.0.2", "1.0.0"),
        ((NEW_PLUGIN,), "4.1.0", "1.1.0"),
        ((OLD_PLUGIN,), "4.1.0", "1.0.0"),
        ((DEBIAN_PLUGIN,), "4.2", "1.0.0"),
        ((PluginFacts("0.9.1", ()),), "4.1", "0.4.0"),
        ((PluginFacts("0.7.6", ()),), "4.1", "0.3.1"),
        ((NEW_PLUGIN,), "", "0.3.1"),
        ((None,), "4.1", "0.3.1"),
        ((NEW_PLUGIN, OLD_PLUGIN), "4.1.0", "1.0.0"),
        ((NEW_PLUGIN, PluginFacts("0.8.6", ())), "4.1.0", "0.4.0"),
    ],
)
def test_auto_cni_version_is_the_highest_every_node_and_multus_accept(plugins, multus, expected):
    devices = tuple(nic(node=f"node-{i}", plugin=plugin) for i, plugin in enumerate(plugins))
    result = nad.build(request(*devices, multus_version=multus))
    assert result.ok, result.findings
    assert {n.config["cniVersion"] for n in result.nads} == {expected}


def test_an_explicit_supported_cni_version_is_kept():
    result = nad.build(request(nic(plugin=OLD_PLUGIN), cni_version="0.4.0"))
    assert result.ok
    assert result.nads[0].config["cniVersion"] == "0.4.0"


# --- IPAM ------------------------------------------------------------------------------------

IPAM_RULES = [
    ("type", IpamRequest(type="calico-ipam"), "IPAM_TYPE_INVALID", "error",
     'IPAM type "calico-ipam" is not one NICPortal can build.'),
    ("unused", IpamRequest(type="none", addresses=("10.1.0.5/24",)), "IPAM_UNUSED_FIELDS",
     "error", '"addresses" was given but IPAM type "none" does not use it.'),
    ("subnet-on-static", IpamRequest(type="static", addresses=("10.1.0.5/24",),
                                     subnet="10.1.0.0/24"),
     "IPAM_UNUSED_FIELDS", "error", '"subnet" was given but IPAM type "static" does not use it.'),
    ("static-empty", IpamRequest(type="static"), "IPAM_ADDRESS_MISSING", "error",
     "Static IPAM needs at least one address."),
    ("no-prefix", IpamRequest(type="static", addresses=("10.1.0.5",)), "IPAM_ADDRESS_INVALID",
     "error", 'Address "10.1.0.5" is not usable: it has no prefix length.'),
    ("bad-octet", IpamRequest(type="static", addresses=("10.1.0.300/24",)),
     "IPAM_ADDRESS_INVALID", "error", 'Address "10.1.0.300/24" is not usable:'),
    ("network-address", IpamRequest(type="static", addresses=("10.1.0.0/24",)),
     "IPAM_ADDRESS_INVALID", "error",
     'Address "10.1.0.0/24" is not usable: it is the network address of 10.1.0.0/24.'),
    ("gateway-garbage", IpamRequest(type="static", addresses=("10.1.0.5/24",), gateway="gw"),
     "IPAM_GATEWAY_INVALID", "error", 'Gateway "gw" is not an IP address'),
    ("gateway-outside", IpamRequest(type="static", addresses=("10.1.0.5/24",),
                                    gateway="10.2.0.1"),
     "IPAM_GATEWAY_OUTSIDE", "error",
     "Gateway 10.2.0.1 is not inside 10.1.0.0/24: the pod could not reach it."),
    ("host-local-no-subnet", IpamRequest(type="host-local"), "IPAM_RANGE_MISSING", "error",
     'host-local IPAM needs a "subnet".'),
    ("host-bits", IpamRequest(type="host-local", subnet="10.1.0.5/24"), "IPAM_RANGE_INVALID",
     "error", 'Subnet "10.1.0.5/24" is not a valid CIDR: it has host bits set (did you mean '
     "10.1.0.0/24?)."),
    ("range-outside", IpamRequest(type="host-local", subnet="10.1.0.0/24",
                                  range_start="10.1.1.10"),
     "IPAM_RANGE_OUTSIDE", "error", "range_start 10.1.1.10 is not inside subnet 10.1.0.0/24."),
    ("range-garbage", IpamRequest(type="host-local", subnet="10.1.0.0/24", range_end="x"),
     "IPAM_RANGE_INVALID", "error", 'range_end "x" is not an IP address'),
    ("range-reversed", IpamRequest(type="host-local", subnet="10.1.0.0/24",
                                   range_start="10.1.0.50", range_end="10.1.0.10"),
     "IPAM_RANGE_REVERSED", "error", "range_end 10.1.0.10 comes before range_start 10.1.0.50."),
    ("whereabouts-no-range", IpamRequest(type="whereabouts"), "IPAM_RANGE_MISSING", "error",
     'whereabouts IPAM needs a "range".'),
    ("exclude-garbage", IpamRequest(type="whereabouts", range="10.1.0.0/24",
                                    exclude=("10.1.0.x/30",)),
     "IPAM_EXCLUDE_INVALID", "error", 'Exclude "10.1.0.x/30" is not a CIDR'),
    ("exclude-outside", IpamRequest(type="whereabouts", range="10.1.0.0/24",
                                    exclude=("10.9.0.0/30",)),
     "IPAM_EXCLUDE_OUTSIDE", "error", 'Exclude "10.9.0.0/30" is not inside the range 10.1.0.0/24.'),
    ("route-garbage", IpamRequest(type="static", addresses=("10.1.0.5/24",),
                                  routes=("default",)),
     "IPAM_ROUTE_INVALID", "error", 'Route "default": destination "default" is not a CIDR'),
    ("route-family", IpamRequest(type="static", addresses=("10.1.0.5/24",),
                                 routes=("10.2.0.0/16 via fd00::1",)),
     "IPAM_ROUTE_INVALID", "error", "it is not of the destination's IP family"),
    ("route-unreachable", IpamRequest(type="static", addresses=("10.1.0.5/24",),
                                      routes=("10.2.0.0/16 via 10.3.0.1",)),
     "IPAM_ROUTE_GATEWAY_UNREACHABLE", "warning",
     "gateway 10.3.0.1 is not on the attachment's subnet (10.1.0.0/24)"),
    ("dhcp", IpamRequest(type="dhcp"), "DHCP_DAEMON", "warning",
     "dhcp IPAM needs the CNI dhcp daemon"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("ipam", "code", "severity", "fragment"),
    [row[1:] for row in IPAM_RULES],
    ids=[row[0] for row in IPAM_RULES],
)
def test_it_validates_ipam_with_the_field_and_the_bad_value(ipam, code, severity, fragment):
    result = nad.build(request(ipam=ipam))
    finding = only(result.findings, code)
    assert (finding.severity, finding.field.split(".")[0]) == (severity, "ipam")
    assert fragment in finding.message
    assert result.ok == (severity != "error")


def test_host_local_across_nodes_warns_about_colliding_addresses():
    ipam = IpamRequest(type="host-local", subnet="10.1.0.0/24")
    result = nad.build(request(nic(node="node-a"), nic(node="node-b"), ipam=ipam))
    assert result.ok
    assert only(result.findings, "HOST_LOCAL_MULTI_NODE").message.startswith(
        "host-local allocates addresses per node, from files on each node: the pods on these 2 "
        "nodes will get the same addresses from 10.1.0.0/24."
    )


def test_static_addresses_across_nodes_warn_that_every_pod_gets_the_same_one():
    ipam = IpamRequest(type="static", addresses=("10.1.0.5/24",))
    result = nad.build(request(nic(node="node-a"), nic(node="node-b"), ipam=ipam))
    assert result.ok
    assert "get the same address" in only(result.findings, "STATIC_ADDRESS_SHARED").message


@pytest.mark.parametrize(
    ("ipam", "expected"),
    [
        (IpamRequest(), None),
        (
            IpamRequest(
                type="static",
                addresses=("10.1.0.5/24", "fd00::5/64"),
                gateway="10.1.0.1",
                routes=("0.0.0.0/0", "10.2.0.0/16 via 10.1.0.254"),
            ),
            {
                "type": "static",
                "addresses": [
                    {"address": "10.1.0.5/24", "gateway": "10.1.0.1"},
                    {"address": "fd00::5/64"},
                ],
                "routes": [{"dst": "0.0.0.0/0"}, {"dst": "10.2.0.0/16", "gw": "10.1.0.254"}],
            },
        ),
        (
            IpamRequest(
                type="host-local",
                subnet="10.1.0.0/24",
                range_start="10.1.0.100",
                range_end="10.1.0.200",
                gateway="10.1.0.1",
            ),
            {
                "type": "host-local",
                "ranges": [
                    [
                        {
                            "subnet": "10.1.0.0/24",
                            "rangeStart": "10.1.0.100",
                            "rangeEnd": "10.1.0.200",
                            "gateway": "10.1.0.1",
                        }
                    ]
                ],
            },
        ),
        (
            IpamRequest(
                type="whereabouts", range="192.168.2.225/28", exclude=("192.168.2.229/30",)
            ),
            {"type": "whereabouts", "range": "192.168.2.225/28", "exclude": ["192.168.2.229/30"]},
        ),
        (IpamRequest(type="dhcp"), {"type": "dhcp"}),
    ],
    ids=["none", "static", "host-local", "whereabouts", "dhcp"],
)
def test_it_writes_the_ipam_object_each_plugin_reads(ipam, expected):
    result = nad.build(request(ipam=ipam))
    assert result.ok, result.findings
    assert result.nads[0].config.get("ipam") == expected


# --- placement and rendering -------------------------------------------------------------------


def test_a_name_free_on_several_nodes_is_one_nad_with_node_affinity():
    result = nad.build(request(nic(node="node-a"), nic(node="node-b"), selector="device"))
    assert result.ok, result.findings
    (rendered,) = result.nads
    assert (rendered.name, rendered.nodes) == ("uplink", ("node-a", "node-b"))
    snippet = yaml.safe_load(result.pod_snippet)
    assert snippet["metadata"]["annotations"] == {"k8s.v1.cni.cncf.io/networks": "lab/uplink@net1"}
    terms = snippet["spec"]["affinity"]["nodeAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]["nodeSelectorTerms"]
    assert terms == [
        {
            "matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": ["node-a", "node-b"]}
            ]
        }
    ]


def test_node_specific_selectors_give_one_nad_per_node_with_a_node_selector():
    result = nad.build(
        request(nic(node="node-a"), nic(node="node-b", mac="52:54:00:12:34:99"), selector="hwaddr")
    )
    assert result.ok, result.findings
    assert [(n.name, n.nodes, n.config["name"]) for n in result.nads] == [
        ("uplink-node-a", ("node-a",), "uplink-node-a"),
        ("uplink-node-b", ("node-b",), "uplink-node-b"),
    ]
    documents = list(yaml.safe_load_all(result.pod_snippet))
    assert [d["spec"]["nodeSelector"] for d in documents] == [
        {"kubernetes.io/hostname": "node-a"},
        {"kubernetes.io/hostname": "node-b"},
    ]
    assert [d["metadata"]["annotations"]["k8s.v1.cni.cncf.io/networks"] for d in documents] == [
        "lab/uplink-node-a@net1",
        "lab/uplink-node-b@net1",
    ]
    assert "# pods on node-a use lab/uplink-node-a" in result.pod_snippet


def test_one_node_keeps_the_requested_name():
    result = nad.build(request(nic(node="worker-1"), selector="pciBusID"))
    assert [n.name for n in result.nads] == ["uplink"]
    assert yaml.safe_load(result.pod_snippet)["spec"] == {
        "nodeSelector": {"kubernetes.io/hostname": "worker-1"}
    }


def test_different_names_on_each_node_give_one_nad_per_node():
    result = nad.build(request(nic(node="a", name="ens1"), nic(node="b", name="ens2")))
    assert [(n.name, n.config["device"]) for n in result.nads] == [
        ("uplink-a", "ens1"),
        ("uplink-b", "ens2"),
    ]


@pytest.mark.parametrize(
    "nodes",
    [
        ("worker-1.example.com", "worker-2.example.com"),
        ("w" * 70 + "1", "w" * 70 + "2"),
        ("a.b", "a-b"),
        ("Node_A", "node-b"),
    ],
    ids=["fqdn", "long-common-prefix", "same-after-sanitizing", "upper-case"],
)
def test_per_node_nad_names_are_distinct_dns_labels(nodes):
    devices = tuple(
        nic(node=node, mac=f"52:54:00:00:00:0{i}") for i, node in enumerate(nodes, start=1)
    )
    result = nad.build(request(*devices, name="a" * 40, selector="hwaddr"))
    assert result.ok, result.findings
    names = [n.name for n in result.nads]
    assert len(set(names)) == len(names)
    for name in names:
        assert len(name) <= 63
        assert name.startswith("a" * 20)
        assert nad.names.is_dns1123_label(name)


def test_resource_name_gives_no_selector_and_the_annotation():
    result = nad.build(request(devices=(), resource_name="intel.com/sriov_netdevice"))
    assert result.ok, result.findings
    (rendered,) = result.nads
    assert not set(nad.SELECTORS) & set(rendered.config)
    assert rendered.annotations == {"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_netdevice"}
    assert rendered.manifest["metadata"]["annotations"] == rendered.annotations
    snippet = yaml.safe_load(result.pod_snippet)
    assert snippet["spec"]["containers"][0]["resources"]["limits"] == {
        "intel.com/sriov_netdevice": "1"
    }


@pytest.mark.parametrize(
    "req",
    [
        request(),
        request(nic(node="node-a"), nic(node="node-b"), selector="hwaddr"),
        request(
            ipam=IpamRequest(type="whereabouts", range="10.1.0.0/24", exclude=("10.1.0.0/28",))
        ),
        request(devices=(), resource_name="example.com/nic"),
    ],
    ids=["one", "per-node", "ipam", "resource-name"],
)
def test_the_yaml_round_trips_to_the_manifest_and_the_config(req):
    result = nad.build(req)
    assert result.ok, result.findings
    for rendered in result.nads:
        assert yaml.safe_load(rendered.yaml) == rendered.manifest
        assert json.loads(rendered.manifest["spec"]["config"]) == rendered.config
        assert rendered.config_json == rendered.manifest["spec"]["config"]
        assert "  config: |" in rendered.yaml  # a literal block, readable JSON
        assert rendered.manifest["apiVersion"] == "k8s.cni.cncf.io/v1"
        assert rendered.manifest["kind"] == "NetworkAttachmentDefinition"
        assert rendered.manifest["metadata"]["namespace"] == "lab"
        assert rendered.config["type"] == "host-device"
        assert rendered.config["name"] == rendered.name


def test_the_config_keys_come_in_a_stable_readable_order():
    result = nad.build(request(ipam=IpamRequest(type="dhcp")))
    assert list(result.nads[0].config) == ["cniVersion", "name", "type", "device", "ipam"]
    assert result.nads[0].config_json == json.dumps(result.nads[0].config, indent=2)


def test_a_request_is_not_changed_by_building_it():
    req = request(nic(node="node-a"), nic(node="node-b"))
    before = replace(req)
    nad.build(req)
    assert req == before
