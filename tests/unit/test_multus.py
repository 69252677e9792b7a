"""Parsing of the Multus pod annotations: both forms of `networks`, `network-status`, errors."""

from __future__ import annotations

import json

import pytest

from inventory.rules.multus import (
    MultusAnnotationError,
    NetworkSelection,
    NetworkStatus,
    parse_network_status,
    parse_networks,
)

# --- networks: short form ------------------------------------------------------------------------


def test_it_parses_the_short_form_with_namespace_and_interface():
    (selection,) = parse_networks("lab/uplink@data0", pod_namespace="default")
    assert selection == NetworkSelection(
        namespace="lab", name="uplink", interface="data0", raw="lab/uplink@data0"
    )
    assert selection.nad_key == "lab/uplink"


def test_it_defaults_the_namespace_to_the_pods_and_the_interface_to_multus_netN():
    selections = parse_networks(" first ,  other/second@eth9, third", pod_namespace="team-a")
    assert [(s.namespace, s.name, s.interface, s.interface_defaulted) for s in selections] == [
        ("team-a", "first", "net1", True),
        ("other", "second", "eth9", False),
        ("team-a", "third", "net3", True),
    ]


@pytest.mark.parametrize("text", [None, "", "   "])
def test_it_reads_an_absent_or_blank_annotation_as_no_networks(text):
    assert parse_networks(text, pod_namespace="default") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,,b", "networks: entry 2 is empty (stray comma?)"),
        ("a,", "networks: entry 2 is empty (stray comma?)"),
        ("a/b/c", "networks: entry 1 'a/b/c': more than one '/'"),
        ("b@x@y", "networks: entry 1 'b@x@y': more than one '@'"),
        ("ns/@x", "networks: entry 1 'ns/@x': no network name"),
        ("/name", "networks: entry 1 '/name': empty namespace before '/'"),
        ("name@", "networks: entry 1 'name@': empty interface name after '@'"),
        ("Upper", "networks: entry 1 'Upper': name 'Upper' is not a DNS-1123 label"),
        ("NS/a", "networks: entry 1 'NS/a': namespace 'NS' is not a DNS-1123 label"),
        ("a@eth_0", "networks: entry 1 'a@eth_0': interface 'eth_0' is not a DNS-1123 label"),
        ("a@-x", "networks: entry 1 'a@-x': interface '-x' is not a DNS-1123 label"),
    ],
)
def test_it_rejects_bad_short_form_syntax_with_a_specific_message(text, message):
    with pytest.raises(MultusAnnotationError) as caught:
        parse_networks(text, pod_namespace="default")
    assert str(caught.value).startswith(message)


# --- networks: JSON form -------------------------------------------------------------------------


def test_it_parses_the_json_form_with_every_field():
    element = {
        "name": "uplink",
        "namespace": "lab",
        "interface": "data0",
        "mac": "02:AA:BB:CC:DD:EE",
        "ips": ["10.1.0.5/24"],
        "default-route": ["10.1.0.1"],
        "cni-args": {"foo": "bar"},
        "future-key": 1,
    }
    (selection,) = parse_networks(json.dumps([element]), pod_namespace="default")
    assert selection.namespace == "lab"
    assert selection.name == "uplink"
    assert selection.interface == "data0"
    assert selection.interface_defaulted is False
    assert selection.mac == "02:aa:bb:cc:dd:ee"
    assert selection.ips == ("10.1.0.5/24",)
    assert selection.default_route == ("10.1.0.1",)
    assert json.loads(selection.raw) == element  # cni-args and unknown keys are kept


def test_it_defaults_namespace_and_interface_in_the_json_form():
    text = '[{"name": "a"}, {"name": "b", "interface": "x1"}, {"name": "c", "namespace": ""}]'
    selections = parse_networks(text, pod_namespace="pods")
    assert [(s.namespace, s.name, s.interface) for s in selections] == [
        ("pods", "a", "net1"),
        ("pods", "b", "x1"),
        ("pods", "c", "net3"),
    ]


def test_it_reads_an_empty_json_list_as_no_networks():
    assert parse_networks("[]", pod_namespace="default") == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[{", "networks: not valid JSON: "),
        ('{"name": "a"}', "networks: JSON must be a list of objects, got an object"),
        ('"a"', "networks: JSON must be a list of objects, got a string"),
        ('["a"]', "networks: element 1 must be an object, got a string"),
        ('[{"name": "a"}, {"interface": "x"}]', 'networks: element 2 has no "name"'),
        ('[{"name": ""}]', 'networks: element 1 has no "name"'),
        ('[{"name": 5}]', 'networks: element 1: "name" must be a string, got a number'),
        ('[{"name": "a", "namespace": []}]', '"namespace" must be a string, got a list'),
        ('[{"name": "a", "interface": true}]', '"interface" must be a string, got a boolean'),
        ('[{"name": "a", "mac": {}}]', '"mac" must be a string, got an object'),
        ('[{"name": "a", "ips": "10.0.0.1"}]', '"ips" must be a list of strings, got a string'),
        ('[{"name": "a", "ips": ["x", 1]}]', '"ips"[1] must be a string, got a number'),
        ('[{"name": "a", "default-route": [null]}]', '"default-route"[0] must be a string'),
        ('[{"name": "a", "cni-args": "x"}]', '"cni-args" must be an object, got a string'),
        ("[" * 100_000, "networks: not valid JSON: "),
    ],
)
def test_it_rejects_malformed_json_networks_with_a_specific_message(text, message):
    with pytest.raises(MultusAnnotationError) as caught:
        parse_networks(text, pod_namespace="default")
    assert message in str(caught.value)


# --- network-status ------------------------------------------------------------------------------

STATUS = [
    {
        "name": "k8s-pod-network",
        "interface": "eth0",
        "ips": ["10.1.2.3"],
        "mac": "AA:BB:CC:00:11:22",
        "default": True,
        "dns": {},
        "gateway": ["10.1.2.1"],
    },
    {
        "name": "lab/uplink",
        "interface": "net1",
        "ips": [],
        "mac": "02:00:00:00:00:0A",
        "mtu": 9000,
        "dns": {"nameservers": ["10.0.0.53"]},
        "device-info": {
            "type": "pci",
            "version": "1.1.0",
            "pci": {"pci-address": "0000:3B:00.1"},
        },
        "something-new": {"ignored": True},
    },
]


def test_it_parses_network_status_entries():
    default, uplink = parse_network_status(json.dumps(STATUS))
    assert default == NetworkStatus(
        name="k8s-pod-network",
        interface="eth0",
        ips=("10.1.2.3",),
        mac="aa:bb:cc:00:11:22",
        default=True,
        gateway=("10.1.2.1",),
    )
    assert uplink.name == "lab/uplink"
    assert uplink.interface == "net1"
    assert uplink.mac == "02:00:00:00:00:0a"
    assert uplink.mtu == 9000
    assert uplink.default is False
    assert uplink.dns == {"nameservers": ["10.0.0.53"]}
    assert uplink.pci_address == "0000:3b:00.1"
    assert uplink.device_info["type"] == "pci"


def test_it_leaves_the_pci_address_empty_without_pci_device_info():
    text = '[{"name": "a/b", "device-info": {"type": "vdpa", "vdpa": {}}}]'
    (entry,) = parse_network_status(text)
    assert entry.pci_address == ""


@pytest.mark.parametrize("text", [None, "", " \n"])
def test_it_reads_an_absent_network_status_as_empty(text):
    assert parse_network_status(text) == ()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope", "network-status: not valid JSON: "),
        ('{"name": "a"}', "network-status: JSON must be a list of objects, got an object"),
        ("[1]", "network-status: element 1 must be an object, got a number"),
        ('[{"interface": "net1"}]', 'network-status: element 1 has no "name"'),
        ('[{"name": ["a"]}]', '"name" must be a string, got a list'),
        ('[{"name": "a", "interface": 1}]', '"interface" must be a string, got a number'),
        ('[{"name": "a", "mac": 1}]', '"mac" must be a string, got a number'),
        ('[{"name": "a", "ips": "1.2.3.4"}]', '"ips" must be a list of strings, got a string'),
        ('[{"name": "a", "mtu": "1500"}]', '"mtu" must be an integer, got a string'),
        ('[{"name": "a", "mtu": true}]', '"mtu" must be an integer, got a boolean'),
        ('[{"name": "a", "mtu": 1500.5}]', '"mtu" must be an integer, got a number'),
        ('[{"name": "a", "default": "true"}]', '"default" must be true or false, got a string'),
        ('[{"name": "a", "dns": []}]', '"dns" must be an object, got a list'),
        ('[{"name": "a", "device-info": "pci"}]', '"device-info" must be an object, got a str'),
        ('[{"name": "a", "device-info": {"pci": 1}}]', '"device-info.pci" must be an object'),
        (
            '[{"name": "a", "device-info": {"pci": {"pci-address": 3}}}]',
            '"device-info.pci.pci-address" must be a string, got a number',
        ),
        ('[{"name": "a", "gateway": [1]}]', '"gateway"[0] must be a string, got a number'),
    ],
)
def test_it_rejects_wrong_types_in_network_status_with_a_specific_message(text, message):
    with pytest.raises(MultusAnnotationError) as caught:
        parse_network_status(text)
    assert message in str(caught.value)
