"""nad.lint() and nad.lint_manifest(): NADs found in the cluster or pasted, checked with the
builder's rules and against the inventory; parse_manifest's findings for bad pastes."""

from __future__ import annotations

import json

import pytest
from test_nad_fixtures import DEBIAN_PLUGIN, NEW_PLUGIN, OLD_PLUGIN, codes, nic, only, request, veth

from inventory.rules import nad


def config(**fields) -> str:
    base = {"cniVersion": "0.3.1", "name": "uplink", "type": "host-device", "device": "ens1f0"}
    base.update(fields)
    return json.dumps({k: v for k, v in base.items() if v is not None}, indent=2)


INVENTORY = {"node-a": [nic(node="node-a")], "node-b": [nic(node="node-b", mac="52:54:00:00:00:b")]}


def run(text: str, **kwargs) -> list[nad.Finding]:
    kwargs.setdefault("multus_version", "4.1.0")
    return nad.lint(namespace="lab", name="uplink", config=text, **kwargs)


# (id, config, lint kwargs, code, severity, message fragment)
LINT_RULES = [
    (
        "hash-comment",
        '{\n  "cniVersion": "0.3.1",\n  # the uplink\n  "type": "host-device"\n}',
        {},
        "CONFIG_INVALID_JSON",
        "error",
        "spec.config is not valid JSON: it contains a comment (`# the uplink`), and JSON has no "
        "comments (line 3, column 3).",
    ),
    (
        "slash-comment",
        '{"type": "host-device", // pick eth1\n "device": "eth1"}',
        {},
        "CONFIG_INVALID_JSON",
        "error",
        "it contains a comment (`// pick eth1`), and JSON has no comments (line 1, column 25).",
    ),
    (
        "trailing-comma",
        '{\n  "type": "host-device",\n  "device": "eth1",\n}',
        {},
        "CONFIG_INVALID_JSON",
        "error",
        "spec.config is not valid JSON: it has a trailing comma before `}`, which JSON does not "
        "allow (line 4, column 1).",
    ),
    (
        "trailing-comma-in-list",
        '{"type": "host-device", "device": "eth1", "ipam": {"type": "static", '
        '"addresses": [{"address": "10.1.0.5/24"},]}}',
        {},
        "CONFIG_INVALID_JSON",
        "error",
        "it has a trailing comma before `]`",
    ),
    (
        "single-quotes",
        "{'type': 'host-device'}",
        {},
        "CONFIG_INVALID_JSON",
        "error",
        "it uses single quotes; JSON strings need double quotes (line 1, column 2).",
    ),
    (
        "truncated",
        '{"type": "host-device"',
        {},
        "CONFIG_INVALID_JSON",
        "error",
        "spec.config is not valid JSON: expecting ',' delimiter (line 1, column 23).",
    ),
    (
        "empty",
        "  ",
        {},
        "CONFIG_EMPTY",
        "warning",
        'spec.config is empty: Multus uses the CNI config file on disk with this name ("uplink") '
        "on whichever node the pod lands, which cannot be verified from here.",
    ),
    ("array", "[]", {}, "CONFIG_NOT_OBJECT", "error", "spec.config is a JSON list, not an object."),
    (
        "no-type-no-plugins",
        json.dumps({"cniVersion": "0.3.1", "name": "uplink", "device": "eth1"}),
        {},
        "CONFIG_NO_TYPE",
        "error",
        'spec.config has neither "type" nor "plugins": Multus reads a config without a type as a '
        "conflist and finds no plugins in it (multus-cni #251).",
    ),
    (
        "conflist-two-host-devices",
        json.dumps(
            {
                "cniVersion": "0.3.1",
                "name": "uplink",
                "plugins": [
                    {"type": "host-device", "device": "ens1f0"},
                    {"type": "host-device", "device": "ens1f1"},
                ],
            }
        ),
        {},
        "MULTIPLE_HOST_DEVICES",
        "error",
        "The plugins list holds 2 host-device entries: the pod gets one interface, not one per "
        "device (multus-cni #637).",
    ),
    (
        "macvlan",
        json.dumps({"cniVersion": "0.3.1", "name": "uplink", "type": "macvlan"}),
        {},
        "NOT_HOST_DEVICE",
        "info",
        "This NAD uses macvlan, not host-device: NICPortal does not judge it",
    ),
    (
        "conflist-without-host-device",
        json.dumps({"name": "uplink", "plugins": [{"type": "bridge"}, {"type": "tuning"}]}),
        {},
        "NOT_HOST_DEVICE",
        "info",
        "This NAD uses bridge, tuning, not host-device",
    ),
    (
        "no-selector",
        config(device=None),
        {},
        "NO_SELECTOR",
        "error",
        'The config selects no device: host-device fails with `specify either "device", '
        '"hwaddr", "kernelpath" or "pciBusID"`.',
    ),
    (
        "several-selectors",
        config(hwaddr="52:54:00:12:34:56", pciBusID="0000:3b:00.0"),
        {},
        "SELECTOR_AMBIGUOUS",
        "warning",
        'The config sets device, hwaddr, pciBusID: host-device silently uses only "device" (it '
        "tries device, then hwaddr, then kernelpath, then pciBusID).",
    ),
    (
        "kernelpath-beats-pci",
        config(
            device=None, kernelpath="/sys/devices/pci0000:00/0000:00:19.0", pciBusID="0000:00:19.0"
        ),
        {},
        "SELECTOR_AMBIGUOUS",
        "warning",
        'silently uses only "kernelpath"',
    ),
    (
        "kernelpath-relative",
        config(device=None, kernelpath="sys/devices/pci0000:00/0000:00:19.0"),
        {},
        "KERNELPATH_INVALID",
        "error",
        '"kernelpath": "sys/devices/pci0000:00/0000:00:19.0" cannot work: it is a relative path; '
        "host-device requires an absolute path that begins with /sys/devices/.",
    ),
    (
        "kernelpath-class",
        config(device=None, kernelpath="/sys/class/net/eth1"),
        {},
        "KERNELPATH_INVALID",
        "error",
        "it does not begin with /sys/devices/",
    ),
    (
        "kernelpath-virtual",
        config(device=None, kernelpath="/sys/devices/virtual/net/veth1"),
        {},
        "KERNELPATH_VIRTUAL",
        "error",
        "it is under /sys/devices/virtual/",
    ),
    (
        "kernelpath-netdev-dir",
        config(device=None, kernelpath="/sys/devices/pci0000:00/0000:00:19.0/net/eno1"),
        {},
        "KERNELPATH_NOT_DEVICE_DIR",
        "error",
        "points at a network interface's own directory: host-device lists <kernelpath>/net",
    ),
    (
        "pci-short",
        config(device=None, pciBusID="3b:00.0"),
        {},
        "PCI_ADDRESS_SHORT",
        "error",
        '"pciBusID": "3b:00.0" has no PCI domain: host-device fails with `lstat '
        "/sys/bus/pci/devices/3b:00.0: no such file or directory`.",
    ),
    (
        "pci-garbage",
        config(device=None, pciBusID="0000:3b:00"),
        {},
        "PCI_ADDRESS_INVALID",
        "error",
        '"pciBusID": "0000:3b:00" is not a PCI address (dddd:bb:dd.f).',
    ),
    (
        "mac-garbage",
        config(device=None, hwaddr="52:54:00:12:34"),
        {},
        "HWADDR_INVALID",
        "error",
        "`failed to parse MAC address`",
    ),
    (
        "device-name-invalid",
        config(device="a/b"),
        {},
        "DEVICE_NAME_INVALID",
        "error",
        '"device": "a/b" is not a valid interface name',
    ),
    (
        "selector-not-a-string",
        config(device=None, pciBusID=7),
        {},
        "SELECTOR_INVALID",
        "error",
        '"pciBusID" must be a string, not 7',
    ),
    (
        "name-mismatch",
        config(name="other"),
        {},
        "CONFIG_NAME_MISMATCH",
        "warning",
        'The config\'s "name" is "other", not the NAD name "uplink"',
    ),
    (
        "cni-version-missing",
        config(cniVersion=None),
        {},
        "CNI_VERSION_MISSING",
        "warning",
        "The config has no cniVersion: plugins read it as 0.1.0",
    ),
    (
        "cni-version-beyond-plugin",
        config(cniVersion="1.1.0"),
        {"plugins_by_node": {"node-a": OLD_PLUGIN}},
        "CNI_VERSION_UNSUPPORTED",
        "error",
        "cniVersion 1.1.0 is not accepted by host-device v1.1.1 on node node-a",
    ),
    (
        "cni-version-beyond-multus",
        config(cniVersion="0.4.0"),
        {"multus_version": "3.9"},
        "CNI_VERSION_MULTUS",
        "error",
        "cniVersion 0.4.0 is newer than Multus 3.9 accepts (0.3.1 at most).",
    ),
    (
        "capabilities",
        config(capabilities={"mac": True, "ips": True}),
        {},
        "CAPABILITIES_IGNORED",
        "warning",
        "The config declares ips and mac (capabilities/runtimeConfig), but host-device honours "
        "neither",
    ),
    (
        "runtime-config-mac",
        config(runtimeConfig={"mac": "52:54:00:00:00:01"}),
        {},
        "CAPABILITIES_IGNORED",
        "warning",
        "The config declares mac",
    ),
    (
        "device-absent-everywhere",
        config(device="ens9"),
        {"devices_by_node": INVENTORY},
        "DEVICE_MISSING",
        "error",
        'No node has an interface matching "device": "ens9": pods using this NAD fail with '
        "`failed to find host device: Link not found`.",
    ),
    (
        "device-absent-on-a-node",
        config(),
        {"devices_by_node": {**INVENTORY, "node-c": [nic(node="node-c", name="eno1")]}},
        "DEVICE_ABSENT_ON_NODES",
        "warning",
        '"ens1f0" does not exist on node-c: pods scheduled there fail with `failed to find host '
        "device: Link not found`.",
    ),
    (
        "hwaddr-absent",
        config(device=None, hwaddr="52:54:00:ff:ff:ff"),
        {"devices_by_node": INVENTORY},
        "DEVICE_MISSING",
        "error",
        'No node has an interface matching "hwaddr": "52:54:00:ff:ff:ff"',
    ),
    (
        "primary-nic",
        config(device="eno1"),
        {"devices_by_node": {"node-a": [nic(name="eno1", state="system", reason="default route")]}},
        "PRIMARY_NIC",
        "error",
        "node-a/eno1 is the node's primary NIC: default route.",
    ),
    (
        "cni-owned",
        config(device="cni0"),
        {"devices_by_node": {"node-a": [nic(name="cni0", state="cni", reason="Flannel bridge")]}},
        "DEVICE_NOT_FREE",
        "error",
        "node-a/cni0 is used by the primary CNI or the Kubernetes infrastructure: Flannel bridge.",
    ),
    (
        "held-by-another-pod",
        config(),
        {
            "devices_by_node": {
                "node-a": [nic(state="pod", holder="pod other/db-0", pod_nad="other/fast")]
            }
        },
        "DEVICE_IN_POD",
        "warning",
        "node-a/ens1f0 is in a pod through NAD other/fast (pod other/db-0): pods using this NAD "
        "on that node fail",
    ),
    (
        "reserved",
        config(),
        {"devices_by_node": {"node-a": [nic(state="reserved", reserved_team="team-b")]}},
        "DEVICE_RESERVED",
        "warning",
        "node-a/ens1f0 is reserved by team team-b; only that team should attach it.",
    ),
    (
        "eexist-old-plugin",
        config(device="eth0"),
        {
            "devices_by_node": {"node-a": [veth(name="eth0")]},
            "plugins_by_node": {"node-a": OLD_PLUGIN},
        },
        "EEXIST_RISK",
        "error",
        'On node node-a, "device": "eth0" would fail with `failed to move link file exists`',
    ),
    (
        "eexist-version-unknown",
        config(device="eth0"),
        {"plugins_by_node": {"node-a": DEBIAN_PLUGIN}},
        "EEXIST_RISK",
        "error",
        "so it is treated as affected",
    ),
    (
        "eexist-no-facts",
        config(device="eth0"),
        {},
        "EEXIST_RISK",
        "warning",
        '"device": "eth0" would fail with `failed to move link file exists`',
    ),
    (
        "ipam-bad-address",
        config(ipam={"type": "static", "addresses": [{"address": "10.1.0.5"}]}),
        {},
        "IPAM_ADDRESS_INVALID",
        "error",
        'Address "10.1.0.5" is not usable: it has no prefix length.',
    ),
    (
        "ipam-host-local-range",
        config(
            ipam={
                "type": "host-local",
                "ranges": [[{"subnet": "10.1.0.0/24", "rangeStart": "10.2.0.1"}]],
            }
        ),
        {},
        "IPAM_RANGE_OUTSIDE",
        "error",
        "range_start 10.2.0.1 is not inside subnet 10.1.0.0/24.",
    ),
    (
        "ipam-host-local-legacy-subnet",
        config(ipam={"type": "host-local", "subnet": "10.1.0.1/24"}),
        {},
        "IPAM_RANGE_INVALID",
        "error",
        "it has host bits set (did you mean 10.1.0.0/24?)",
    ),
    (
        "ipam-whereabouts-exclude",
        config(ipam={"type": "whereabouts", "range": "10.1.0.0/24", "exclude": ["10.2.0.0/28"]}),
        {},
        "IPAM_EXCLUDE_OUTSIDE",
        "error",
        'Exclude "10.2.0.0/28" is not inside the range 10.1.0.0/24.',
    ),
    (
        "ipam-host-local-several-nodes",
        config(ipam={"type": "host-local", "subnet": "10.1.0.0/24"}),
        {"devices_by_node": INVENTORY},
        "HOST_LOCAL_MULTI_NODE",
        "warning",
        "the pods on these 2 nodes will get the same addresses",
    ),
    (
        "ipam-without-type",
        config(ipam={"subnet": "10.1.0.0/24"}),
        {},
        "IPAM_TYPE_MISSING",
        "warning",
        '"ipam" has no "type": host-device ignores it',
    ),
    (
        "ipam-not-ours",
        config(ipam={"type": "calico-ipam"}),
        {},
        "IPAM_NOT_CHECKED",
        "info",
        'IPAM type "calico-ipam" is not one NICPortal checks.',
    ),
    (
        "ipam-not-an-object",
        config(ipam="static"),
        {},
        "IPAM_INVALID",
        "error",
        '"ipam" must be a JSON object, not str.',
    ),
]


@pytest.mark.parametrize(
    ("text", "kwargs", "code", "severity", "fragment"),
    [row[1:] for row in LINT_RULES],
    ids=[row[0] for row in LINT_RULES],
)
def test_lint_reports_each_rule_with_the_message_a_user_reads(
    text, kwargs, code, severity, fragment
):
    finding = only(run(text, **kwargs), code)
    assert finding.severity == severity
    assert fragment in finding.message


def test_a_nad_the_builder_made_lints_clean_against_the_same_inventory():
    devices = (nic(node="node-a"), nic(node="node-b", mac="52:54:00:00:00:0b"))
    result = nad.build(request(*devices, selector="hwaddr"))
    for rendered in result.nads:
        findings = nad.lint_manifest(
            rendered.yaml,
            devices_by_node={d.node: [d] for d in devices},
            plugins_by_node={d.node: d.plugin for d in devices},
            multus_version="4.1.0",
        )
        assert codes(findings, "error") == set()
        assert codes(findings, "warning") == set()


def test_lint_uses_only_the_nodes_a_portal_nad_was_made_for():
    result = nad.build(request(nic(node="node-a")))
    inventory = {**INVENTORY, "node-c": [nic(node="node-c", name="eno1")]}
    findings = nad.lint_manifest(result.nads[0].yaml, devices_by_node=inventory)
    assert "DEVICE_ABSENT_ON_NODES" not in codes(findings)


def test_a_device_in_a_pod_through_this_very_nad_is_information_not_an_error():
    # What the inventory holds for a PCI NIC moved into a pod: the holder the ownership engine
    # writes ("pod ns/name"), the NAD of the attachment, and no netdev left on the host.
    device = nic(state="pod", holder="pod lab/web-0", pod_nad="lab/uplink", has_netdev=False)
    findings = run(config(), devices_by_node={"node-a": [device]})
    assert codes(findings, "error") == set()
    assert codes(findings, "warning") == set()
    in_use = only(findings, "DEVICE_IN_USE")
    assert in_use.severity == "info"
    assert "node-a/ens1f0 is in a pod through this NAD (pod lab/web-0)" in in_use.message


def test_a_device_held_through_another_nad_is_a_warning_naming_that_nad():
    device = nic(state="pod", holder="pod lab/web-0", pod_nad="lab/other", has_netdev=False)
    findings = run(config(), devices_by_node={"node-a": [device]})
    assert codes(findings, "error") == set()
    assert "NO_NETDEV" not in codes(findings)  # its netdev is in the pod, not missing
    assert "through NAD lab/other" in only(findings, "DEVICE_IN_POD").message


def test_the_reservation_holders_own_nad_gets_no_reservation_warning():
    device = nic(state="reserved", holder="team platform", reserved_team="platform")
    findings = run(config(), devices_by_node={"node-a": [device]}, team="platform")
    assert "DEVICE_RESERVED" not in codes(findings)
    assert codes(findings, "warning") == set()
    assert "reserved by team platform, which this NAD was applied for" in (
        only(findings, "DEVICE_RESERVED_FOR_TEAM").message
    )


def test_another_teams_nad_on_a_reserved_nic_is_still_warned_about():
    device = nic(state="reserved", holder="team platform", reserved_team="platform")
    for team in ("", "ml"):
        findings = run(config(), devices_by_node={"node-a": [device]}, team=team)
        assert only(findings, "DEVICE_RESERVED").severity == "warning"
        assert "DEVICE_RESERVED_FOR_TEAM" not in codes(findings)


def primary(node: str, mac: str) -> nad.DeviceFacts:
    return veth(node=node, name="eth0", mac=mac, state="system", reason="carries the default route")


def test_no_fix_offers_the_primary_nic_by_mac_or_a_plugin_upgrade():
    # A pasted NAD on eth0: eth0 is every node's uplink. The EEXIST finding must not suggest
    # selecting eth0 by its own MAC, nor upgrading host-device (which would then move it out).
    inventory = {"node-a": [primary("node-a", "aa:bb:cc:00:00:0a")]}
    findings = run(
        config(device="eth0"), devices_by_node=inventory, plugins_by_node={"node-a": OLD_PLUGIN}
    )
    assert only(findings, "PRIMARY_NIC").severity == "error"
    risk = only(findings, "EEXIST_RISK")
    for finding in findings:
        assert "aa:bb:cc:00:00:0a" not in finding.fix, finding
    assert "upgrade" not in risk.fix
    assert "Point the NAD at a free interface instead of eth0" in risk.fix


def test_the_eexist_fix_offers_the_mac_of_a_usable_device():
    inventory = {"node-a": [veth(name="eth0", mac="aa:bb:cc:00:00:0a")]}
    findings = run(
        config(device="eth0"), devices_by_node=inventory, plugins_by_node={"node-a": OLD_PLUGIN}
    )
    assert '"hwaddr": "aa:bb:cc:00:00:0a"' in only(findings, "EEXIST_RISK").fix


def test_pods_are_not_pinned_to_nodes_where_the_device_is_unusable():
    inventory = {
        "node-a": [nic(node="node-a", state="system", reason="carries the default route")],
        "node-b": [nic(node="node-b", mac="52:54:00:00:00:0b")],
        "node-c": [nic(node="node-c", name="eno1")],
    }
    absent = only(run(config(), devices_by_node=inventory), "DEVICE_ABSENT_ON_NODES")
    assert absent.fix == "Pin the pods to node-b (node affinity)."
    inventory["node-b"] = [nic(node="node-b", state="system", reason="carries the default route")]
    absent = only(run(config(), devices_by_node=inventory), "DEVICE_ABSENT_ON_NODES")
    assert "Pin" not in absent.fix and "free on the nodes where its pods run" in absent.fix


def test_a_fixed_plugin_has_no_eexist_risk():
    findings = run(config(device="eth0"), plugins_by_node={"node-a": NEW_PLUGIN})
    assert "EEXIST_RISK" not in codes(findings)


def test_a_device_plugin_nad_needs_no_selector():
    findings = run(
        config(device=None),
        annotations={"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_netdevice"},
    )
    assert codes(findings, "error") == set()


@pytest.mark.parametrize(
    ("fields", "fragment"),
    [
        ({"device": None, "pciBusID": "0000:3b:00.0"}, "host-device replaces pciBusID"),
        ({}, "host-device uses device and ignores the device the device plugin allocated"),
    ],
)
def test_a_selector_next_to_a_resource_name_is_explained(fields, fragment):
    findings = run(
        config(**fields),
        annotations={"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov_netdevice"},
    )
    assert fragment in only(findings, "SELECTOR_WITH_RESOURCE_NAME").message


def test_a_conflist_with_one_host_device_is_linted_like_a_plain_config():
    text = json.dumps(
        {
            "cniVersion": "0.3.1",
            "name": "uplink",
            "plugins": [{"type": "host-device", "pciBusID": "3b:00.0"}, {"type": "tuning"}],
        }
    )
    assert codes(run(text), "error") == {"PCI_ADDRESS_SHORT"}


def test_lint_checks_the_nad_name():
    findings = nad.lint(namespace="lab", name="Uplink", config=config(name="Uplink"))
    assert "NAME_INVALID" in codes(findings, "error")


# --- pasted manifests --------------------------------------------------------------------------

GOOD = """\
apiVersion: k8s.cni.cncf.io/v1
kind: NetworkAttachmentDefinition
metadata:
  name: uplink
  namespace: lab
spec:
  config: |
    {"cniVersion": "0.3.1", "name": "uplink", "type": "host-device", "device": "ens1f0"}
"""

MANIFEST_RULES = [
    ("bad-yaml", "metadata:\n  name: [uplink\n", "MANIFEST_INVALID_YAML",
     "The manifest is not valid YAML"),
    ("tab-indent", "kind: NetworkAttachmentDefinition\nmetadata:\n\tname: uplink\n",
     "MANIFEST_INVALID_YAML", "(line 3, column 1)"),
    ("huge-integer", "metadata:\n  uid: " + "9" * 5_000 + "\n", "MANIFEST_INVALID_YAML",
     "The manifest holds a value that cannot be read"),
    ("impossible-date", "metadata:\n  creationTimestamp: 2026-13-45\n", "MANIFEST_INVALID_YAML",
     "The manifest holds a value that cannot be read"),
    ("empty", "", "MANIFEST_EMPTY", "The manifest is empty."),
    ("two-documents", GOOD + "---\n" + GOOD, "MANIFEST_MULTIPLE_DOCUMENTS",
     "The text holds 2 YAML documents."),
    ("scalar", "hello", "MANIFEST_NOT_OBJECT", "The manifest is a str, not a Kubernetes object."),
    ("wrong-kind", GOOD.replace("NetworkAttachmentDefinition", "ConfigMap"), "MANIFEST_WRONG_KIND",
     'kind is "ConfigMap", not NetworkAttachmentDefinition.'),
    ("wrong-api", GOOD.replace("k8s.cni.cncf.io/v1", "v1"), "MANIFEST_WRONG_API_VERSION",
     'apiVersion is "v1", not k8s.cni.cncf.io/v1.'),
    ("no-name", GOOD.replace("  name: uplink\n", ""), "MANIFEST_NO_NAME",
     "metadata.name is missing."),
    ("config-as-mapping",
     GOOD.split("  config: |")[0] + "  config:\n    type: host-device\n    device: ens1f0\n",
     "MANIFEST_CONFIG_NOT_STRING",
     "spec.config is a YAML dict, but it must be a JSON string: the API server rejects the "
     "object."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("text", "code", "fragment"),
    [row[1:] for row in MANIFEST_RULES],
    ids=[row[0] for row in MANIFEST_RULES],
)
def test_parse_manifest_refuses_bad_pastes(text, code, fragment):
    obj, findings = nad.parse_manifest(text)
    assert obj is None
    assert fragment in only(findings, code).message
    assert only(nad.lint_manifest(text), code)


def test_parse_manifest_reads_yaml_and_json():
    obj, findings = nad.parse_manifest(GOOD)
    assert findings == []
    assert obj["metadata"]["name"] == "uplink"
    as_json = json.dumps(obj, indent="\t")  # tabs: valid JSON, refused by PyYAML
    assert nad.parse_manifest(as_json) == (obj, [])


def test_a_manifest_without_spec_config_is_unverifiable_not_broken():
    text = GOOD.split("spec:")[0] + "spec: {}\n"
    obj, findings = nad.parse_manifest(text)
    assert obj is not None
    assert only(findings, "CONFIG_EMPTY").severity == "warning"
    linted = nad.lint_manifest(text)
    assert [f.code for f in linted] == ["CONFIG_EMPTY"]


def test_lint_manifest_passes_the_inventory_and_the_annotations_on():
    text = GOOD.replace(
        "  namespace: lab\n",
        "  namespace: lab\n  annotations:\n    k8s.v1.cni.cncf.io/resourceName: example.com/nic\n",
    )
    findings = nad.lint_manifest(
        text, devices_by_node={"node-a": [nic(name="ens1f0", state="cni", reason="Cilium")]}
    )
    assert "SELECTOR_WITH_RESOURCE_NAME" in codes(findings)
    assert "node-a/ens1f0 is used by the primary CNI" in only(findings, "DEVICE_NOT_FREE").message


def test_a_pasted_config_with_a_comment_is_reported_with_its_position():
    text = GOOD.replace('"device": "ens1f0"}', '"device": "ens1f0" # uplink\n    }')
    (finding,) = [f for f in nad.lint_manifest(text) if f.severity == "error"]
    assert finding.code == "CONFIG_INVALID_JSON"
    assert "(`# uplink`)" in finding.message and "(line 1, column 85)" in finding.message
