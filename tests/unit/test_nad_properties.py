"""Property tests: whatever the request, a NAD the builder emits is one host-device can use,
and the linter finds no error in it."""

from __future__ import annotations

import json

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_nad_fixtures import DEBIAN_PLUGIN, NEW_PLUGIN, OLD_PLUGIN

from inventory.rules import nad
from inventory.rules.nad import DeviceFacts, IpamRequest, NadRequest, PluginFacts
from inventory.rules.nad.names import is_dns1123_label, is_full_bdf, normalize_mac
from inventory.rules.nad.versions import multus_ceiling, plugin_supported_versions, version_key

STATES = (
    "free", "free", "free", "reserved", "system", "cni", "enslaved", "virtual", "userspace",
    "pod", "missing", "unknown", "bogus",
)  # fmt: skip
NODES = ("node-a", "node-b", "worker-1.example.com", "N_3", "n" * 80)
TEAMS = ("", "team-a", "team-b")

names = st.one_of(
    st.sampled_from(("eth0", "eth1", "net1", "ens1f0", "eno1", "wlan0", "a/b", "", "x" * 16)),
    st.text(min_size=0, max_size=17),
)
macs = st.one_of(
    st.sampled_from(("", "52:54:00:12:34:56", "AA-BB-CC-00-00-01", "01:00:5e:00:00:01",
                     "00:00:00:00:00:00", "5254.0012.3456", "52:54:00:12:34", "zz")),
    st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b)),
)  # fmt: skip
pcis = st.one_of(
    st.sampled_from(("", "0000:3b:00.0", "3b:00.0", "0000:3b:00", "10000:01:00.1", "junk")),
    st.from_regex(r"\A[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]\Z"),
)
kernelpaths = st.sampled_from(
    (
        "",
        "/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/ens1f0",
        "/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0",
        "/sys/devices/pci0000:3a/0000:3a:00.0/0000:3b:00.0/net/",
        "/sys/devices/virtual/net/veth1",
        "sys/devices/pci0000:00/0000:00:19.0",
        "/sys/class/net/eth1",
        "/proc/net",
    )
)
plugins = st.one_of(
    st.sampled_from((None, OLD_PLUGIN, DEBIAN_PLUGIN, NEW_PLUGIN)),
    st.builds(
        PluginFacts,
        version=st.sampled_from((None, "0.7.6", "0.9.1", "1.2.0", "1.4.1", "1.5.0", "1.6.2", "x")),
        supported_versions=st.lists(st.sampled_from(nad.CNI_VERSIONS), max_size=4).map(tuple),
    ),
)
devices = st.builds(
    DeviceFacts,
    node=st.sampled_from(NODES),
    name=names,
    mac=macs,
    pci_address=pcis,
    kernelpath=kernelpaths,
    kind=st.sampled_from(("physical", "physical", "veth", "wireless")),
    driver=st.sampled_from(("ice", "veth", "vfio-pci", "iwlwifi", "")),
    state=st.sampled_from(STATES),
    reason=st.sampled_from(("", "carries the default route", "loopback", "Calico")),
    holder=st.sampled_from(("", "team-b", "lab/web-0 via lab/uplink")),
    reserved_team=st.sampled_from(TEAMS),
    has_netdev=st.booleans(),
    plugin=plugins,
)
ipams = st.sampled_from(
    (
        IpamRequest(),
        IpamRequest(type="static", addresses=("10.1.0.5/24",), gateway="10.1.0.1"),
        IpamRequest(type="static", addresses=("10.1.0.5",)),
        IpamRequest(type="host-local", subnet="10.1.0.0/24", range_start="10.1.0.10"),
        IpamRequest(type="whereabouts", range="10.1.0.0/24", exclude=("10.1.0.0/28",)),
        IpamRequest(type="whereabouts", range="10.1.0.0/24", exclude=("10.2.0.0/28",)),
        IpamRequest(type="dhcp"),
        IpamRequest(type="bogus"),
    )
)
requests = st.builds(
    NadRequest,
    namespace=st.sampled_from(("lab", "team-a", "Bad_NS")),
    name=st.one_of(st.sampled_from(("uplink", "a" * 60, "Bad", "")), st.text(max_size=70)),
    devices=st.lists(devices, max_size=3).map(tuple),
    selector=st.sampled_from(("auto", "auto", "device", "hwaddr", "pciBusID", "kernelpath", "mac")),
    pod_interface=st.sampled_from(("net1", "data0", "eth0", "Data_0", "a:b", "x" * 16, "")),
    other_pod_interfaces=st.sampled_from((("eth0",), ("eth0", "net2"), ())),
    ipam=ipams,
    cni_version=st.sampled_from(("auto", "auto", *nad.CNI_VERSIONS, "9.9.9")),
    multus_version=st.sampled_from(("", "3.9", "4.0.1", "4.1.0", "junk")),
    team=st.sampled_from(TEAMS),
    resource_name=st.sampled_from(("", "", "", "intel.com/sriov_netdevice", "bad")),
)

# Requests that are mostly right, so that many builds succeed and the properties are exercised
# on real output (the wild strategy above mostly produces refusals).
tame_devices = st.builds(
    DeviceFacts,
    node=st.sampled_from(NODES),
    name=st.sampled_from(("ens1f0", "eth0", "eth1", "net1", "eno2")),
    mac=st.one_of(st.just(""), macs),
    pci_address=st.sampled_from(("", "0000:3b:00.0", "0000:af:00.1", "3b:00.0")),
    kernelpath=kernelpaths,
    kind=st.sampled_from(("physical", "veth")),
    driver=st.sampled_from(("ice", "veth", "vfio-pci")),
    state=st.sampled_from(("free", "free", "free", "reserved", "userspace", "pod")),
    reserved_team=st.sampled_from(("", "", "team-a", "team-b")),
    has_netdev=st.sampled_from((True, True, True, False)),
    plugin=plugins,
)
tame_requests = st.builds(
    NadRequest,
    namespace=st.just("lab"),
    name=st.one_of(st.just("uplink"), st.from_regex(r"\A[a-z][a-z0-9-]{0,40}[a-z0-9]\Z")),
    devices=st.lists(tame_devices, min_size=1, max_size=3, unique_by=lambda d: d.node).map(tuple),
    selector=st.sampled_from(("auto", "auto", "device", "hwaddr", "pciBusID", "kernelpath")),
    pod_interface=st.sampled_from(("net1", "data0", "net1")),
    other_pod_interfaces=st.sampled_from((("eth0",), ("eth0", "net2"), ())),
    ipam=ipams,
    cni_version=st.sampled_from(("auto", "auto", "auto", *nad.CNI_VERSIONS)),
    multus_version=st.sampled_from(("", "3.9", "4.0.1", "4.1.0")),
    team=st.sampled_from(TEAMS),
    resource_name=st.sampled_from(("", "", "", "", "intel.com/sriov_netdevice")),
)
requests = st.one_of(tame_requests, requests)

SETTINGS = settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)


@SETTINGS
@given(requests)
def test_every_emitted_nad_is_one_host_device_can_use(request: NadRequest):
    result = nad.build(request)
    if not result.ok:
        assert result.nads == () and result.pod_snippet == ""
        return
    assert result.nads
    by_node = {d.node: d for d in request.devices}
    for rendered in result.nads:
        config = rendered.config
        assert config["type"] == "host-device"
        assert config["name"] == rendered.name == rendered.manifest["metadata"]["name"]
        assert is_dns1123_label(rendered.name)
        assert yaml.safe_load(rendered.yaml) == rendered.manifest
        assert json.loads(rendered.manifest["spec"]["config"]) == config

        present = [s for s in nad.SELECTORS if s in config]
        if request.resource_name:
            assert present == []
        else:
            assert len(present) == 1
        if "kernelpath" in config:
            path = config["kernelpath"]
            assert path.startswith("/sys/devices/")
            assert not path.startswith("/sys/devices/virtual/")
            assert "/net/" not in path and not path.endswith("/net")
        if "pciBusID" in config:
            assert is_full_bdf(config["pciBusID"])
        if "hwaddr" in config:
            assert normalize_mac(config["hwaddr"]) == config["hwaddr"]

        version = config["cniVersion"]
        ceiling = multus_ceiling(request.multus_version)
        if ceiling and request.cni_version == "auto":
            assert version_key(version) <= version_key(ceiling)
        for node in rendered.nodes:
            device = by_node[node]
            if device.plugin and device.plugin.supported_versions:
                assert version in device.plugin.supported_versions
            elif plugin_supported_versions(device.plugin):
                assert version in plugin_supported_versions(device.plugin)
            assert device.kind != "wireless"
            if device.state == "userspace":
                # The one exception, with a warning: DPDK through pciBusID moves nothing.
                assert present in (["pciBusID"], [])
            elif device.state == "reserved" or device.reserved_team:
                assert request.team and request.team in (device.reserved_team, device.holder)
            else:
                assert device.state == "free"
            if present == ["device"] and nad.plugin_has_eexist_bug(device.plugin) is not False:
                assert config["device"] not in (
                    *request.other_pod_interfaces,
                    request.pod_interface,
                )


@SETTINGS
@given(requests.filter(lambda r: "eth0" in r.other_pod_interfaces and not r.team))
def test_the_linter_finds_no_error_in_what_the_builder_emits(request: NadRequest):
    result = nad.build(request)
    for rendered in result.nads:
        inventory = {d.node: [d] for d in request.devices if d.node in rendered.nodes}
        findings = nad.lint_manifest(
            rendered.yaml,
            devices_by_node=inventory if inventory else None,
            plugins_by_node={d.node: d.plugin for d in request.devices if d.plugin},
            multus_version=request.multus_version,
        )
        assert [f for f in findings if f.severity == "error"] == []
