"""The snapshot contract (schema, identity) and the command line / environment settings."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import fastjsonschema
import pytest

from nodeagent.config import parse_args, parse_listen
from nodeagent.schema import SCHEMA_VERSION, SNAPSHOT_SCHEMA, identity
from nodeagent.snapshot import etag_of

validate = fastjsonschema.compile(SNAPSHOT_SCHEMA)

LINK = {
    "ifindex": 2,
    "name": "ens1f0",
    "altnames": ["enp59s0f0"],
    "alias": None,
    "mac": "3c:fd:fe:00:00:01",
    "permanent_mac": "3c:fd:fe:00:00:01",
    "kind": "physical",
    "master": None,
    "master_kind": None,
    "operstate": "up",
    "carrier": True,
    "mtu": 1500,
    "speed_mbps": 25000,
    "driver": "i40e",
    "pci_address": "0000:3b:00.0",
    "vendor_id": "0x8086",
    "device_id": "0x158b",
    "numa_node": 0,
    "sriov_total_vfs": 64,
    "sriov_num_vfs": 0,
    "pf_pci_address": None,
    "pf_name": None,
    "wireless": False,
    "addresses": [{"family": 4, "address": "10.0.0.5", "prefixlen": 24, "scope": "global"}],
    "default_route_v4": True,
    "default_route_v6": False,
}
DOCUMENT = {
    "schema_version": SCHEMA_VERSION,
    "node": "node-a",
    "agent_version": "0.1.0",
    "collected_at": "2025-01-31T12:00:00.123456Z",
    "netns": None,
    "links": [LINK],
    "pci_functions": [],
    "cni": {"bin_dirs": [], "host_device": None},
}


def test_it_accepts_a_complete_document():
    validate(copy.deepcopy(DOCUMENT))


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("links", 0, "kind"), "ethernet"),
        (("links", 0, "pci_address"), "3b:00.0"),
        (("links", 0, "vendor_id"), "8086"),
        (("links", 0, "operstate"), "UP"),
        (("schema_version",), 2),
        (("collected_at",), "2025-01-31 12:00:00"),
    ],
)
def test_it_rejects_a_document_with_a_bad_field(path, value):
    document = copy.deepcopy(DOCUMENT)
    target = document
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate(document)


def test_it_rejects_a_link_missing_a_field():
    document = copy.deepcopy(DOCUMENT)
    del document["links"][0]["permanent_mac"]
    with pytest.raises(fastjsonschema.JsonSchemaException):
        validate(document)


def test_the_schema_is_plain_json_data():
    assert json.loads(json.dumps(SNAPSHOT_SCHEMA)) == SNAPSHOT_SCHEMA


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, ("pci", "0000:3b:00.0")),
        ({"pci_address": None}, ("perm_mac", "3c:fd:fe:00:00:01")),
        ({"pci_address": None, "permanent_mac": None}, ("mac", "3c:fd:fe:00:00:01")),
        ({"pci_address": None, "permanent_mac": None, "mac": None}, ("name", "ens1f0")),
    ],
)
def test_it_keys_an_interface_by_its_strongest_identity(changes, expected):
    assert identity({**LINK, **changes}) == expected


def test_the_etag_ignores_collected_at_but_not_the_facts():
    later = {**DOCUMENT, "collected_at": "2030-01-01T00:00:00Z"}
    assert etag_of(DOCUMENT) == etag_of(later)
    changed = copy.deepcopy(DOCUMENT)
    changed["links"][0]["operstate"] = "down"
    assert etag_of(changed) != etag_of(DOCUMENT)


def test_it_reads_every_setting_from_the_environment():
    config = parse_args(
        [],
        {
            "NICPORTAL_AGENT_LISTEN": "127.0.0.1:9551",
            "NICPORTAL_AGENT_KEY_FILE": "/run/key",
            "NICPORTAL_AGENT_NODE_NAME": "node-7",
            "NICPORTAL_AGENT_NETNS": "lab-node-7",
            "NICPORTAL_AGENT_PORTAL_URL": "http://127.0.0.1:8000",
            "NICPORTAL_AGENT_SYSFS_ROOT": "/tmp/sys",
            "NICPORTAL_AGENT_CNI_BIN_DIRS": "/a:/b",
        },
    )
    assert (config.host, config.port, config.key_file) == ("127.0.0.1", 9551, "/run/key")
    assert config.master_key is False and config.cluster_name == "default"
    assert (config.node_name, config.netns) == ("node-7", "lab-node-7")
    assert config.portal_url == "http://127.0.0.1:8000" and config.sysfs_root == "/tmp/sys"
    assert config.cni_bin_dirs == ("/a", "/b")


def test_flags_win_over_the_environment():
    config = parse_args(
        ["--node-name", "flag-node", "--listen", "[::1]:9552"],
        {
            "NICPORTAL_AGENT_LISTEN": "0.0.0.0:1",
            "NICPORTAL_AGENT_NODE_NAME": "env-node",
            "NICPORTAL_AGENT_MASTER_KEY_FILE": "/m",
            "NICPORTAL_AGENT_CLUSTER_NAME": "prod",
        },
    )
    assert (config.node_name, config.host, config.port) == ("flag-node", "::1", 9552)
    assert (config.key_file, config.master_key, config.cluster_name) == ("/m", True, "prod")
    assert config.netns is None and config.sysfs_root == "/sys"
    assert "/usr/lib/cni" in config.cni_bin_dirs


@pytest.mark.parametrize(
    "argv",
    [
        ["--key-file", "/k", "--node-name", "n"],
        ["--listen", "0.0.0.0:9550", "--node-name", "n"],
        ["--listen", "nowhere", "--key-file", "/k", "--node-name", "n"],
        ["--listen", ":1", "--key-file", "/k", "--node-name", "n", "--portal-url", "ftp://x"],
        ["--listen", ":1", "--key-file", "/k", "--node-name", "n", "--netns", "../x"],
        ["--listen", ":1", "--key-file", "/k", "--node-name", "Not_A_Node"],
        ["--listen", ":1", "--key-file", "/k", "--master-key-file", "/m", "--node-name", "n"],
        ["--listen", ":1", "--token-file", "/t", "--node-name", "n"],
    ],
    ids=[
        "no-listen",
        "no-key",
        "bad-listen",
        "bad-portal-url",
        "bad-netns",
        "bad-node-name",
        "two-keys",
        "retired-token-file",
    ],
)
def test_it_rejects_incomplete_or_bad_settings(argv):
    with pytest.raises(SystemExit) as exit_info:
        parse_args(argv, {})
    assert exit_info.value.code == 2


def test_it_parses_listen_addresses():
    assert parse_listen("0.0.0.0:9550") == ("0.0.0.0", 9550)
    assert parse_listen(":9550") == ("0.0.0.0", 9550)
    with pytest.raises(ValueError):
        parse_listen("host:99999")


def test_the_retired_token_file_is_refused_with_directions(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--listen", ":1", "--node-name", "n"], {"NICPORTAL_AGENT_TOKEN_FILE": "/t"})
    assert "docs/agent-auth.md" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "flag", "message"),
    [
        ("\n", "--key-file", "is empty"),
        ("\n", "--master-key-file", "is empty"),
        ("not-hex-and-too-short", "--key-file", "64 hex digits"),
    ],
)
def test_the_agent_exits_with_a_clear_message_on_a_bad_key_file(tmp_path, content, flag, message):
    (tmp_path / "key").write_text(content)
    result = subprocess.run(
        [sys.executable, "-m", "nodeagent", "--listen", "127.0.0.1:0", "--node-name", "n"]
        + [flag, str(tmp_path / "key")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "event=bad_key_file" in result.stderr and message in result.stderr


def test_the_pci_scan_can_be_switched_off_by_flag_or_environment():
    base = ["--listen", "127.0.0.1:1", "--key-file", "k", "--node-name", "n"]
    assert parse_args(base, environ={}).pci_scan is True
    assert parse_args([*base, "--no-pci-scan"], environ={}).pci_scan is False
    assert parse_args(base, environ={"NICPORTAL_AGENT_PCI_SCAN": "0"}).pci_scan is False


def test_it_accepts_fields_a_newer_agent_adds():
    # Adding an optional field is not an incompatible change: an older portal must still read it.
    document = copy.deepcopy(DOCUMENT)
    document["uptime_seconds"] = 12
    document["links"][0]["firmware_version"] = "4.1"
    validate(document)
