"""The agent's facts about a real namespace agree with what iproute2 says about it."""

from __future__ import annotations

import json
import os
import subprocess

import fastjsonschema
import pytest

from nodeagent.schema import SNAPSHOT_SCHEMA
from tests.agent.conftest import ip, ip_json

pytestmark = pytest.mark.netns

validate_snapshot = fastjsonschema.compile(SNAPSHOT_SCHEMA)
ALIAS = 'eth7 <b>"quoted"</b> & more'


def build_node(netns: str) -> None:
    """A lab-like node: uplink with v4/v6 default routes, a bridge with a member, a spare NIC."""
    ip("link", "add", "eth0", "type", "veth", "peer", "name", "sw0", netns=netns)
    ip("link", "add", "eth1", "type", "veth", "peer", "name", "sw1", netns=netns)
    ip("link", "add", "br0", "type", "bridge", netns=netns)
    ip("link", "set", "sw0", "master", "br0", netns=netns)
    ip("link", "add", "mv0", "link", "eth0", "type", "macvlan", "mode", "bridge", netns=netns)
    ip("link", "set", "eth1", "alias", ALIAS, netns=netns)
    ip("link", "property", "add", "dev", "eth0", "altname", "uplink-primary", netns=netns)
    ip("link", "set", "eth0", "mtu", "9000", netns=netns)
    for name in ("eth0", "sw0", "br0", "mv0"):
        ip("link", "set", name, "up", netns=netns)
    ip("addr", "add", "10.77.0.2/24", "dev", "eth0", netns=netns)
    ip("-6", "addr", "add", "2001:db8:77::2/64", "dev", "eth0", "nodad", netns=netns)
    ip("addr", "add", "10.88.0.1/16", "dev", "br0", netns=netns)
    ip("route", "add", "default", "via", "10.77.0.1", "dev", "eth0", netns=netns)
    ip("-6", "route", "add", "default", "via", "2001:db8:77::1", "dev", "eth0", netns=netns)


def sysfs_in(netns: str, path: str) -> str | None:
    # `ip netns exec` remounts /sys for the namespace, as the agent's worker does.
    result = subprocess.run(
        ["ip", "netns", "exec", netns, "cat", path], capture_output=True, text=True, check=False
    )
    return result.stdout.strip() if result.returncode == 0 else None


def expected_kind(entry: dict) -> str:
    info_kind = entry.get("linkinfo", {}).get("info_kind")
    if info_kind:
        return {"macvtap": "macvlan"}.get(info_kind, info_kind)
    return "loopback" if "LOOPBACK" in entry["flags"] else "physical"


@pytest.fixture
def node_snapshot(make_netns, start_agent):
    netns = make_netns("facts")
    build_node(netns)
    agent = start_agent("--netns", netns)
    status, headers, body = agent.snapshot()
    assert status == 200, body
    return netns, json.loads(body)


def test_it_reports_a_document_that_the_portal_schema_accepts(node_snapshot):
    netns, snapshot = node_snapshot
    validate_snapshot(snapshot)
    assert snapshot["node"] == "node-a"
    assert snapshot["netns"] == netns
    assert snapshot["agent_version"] == "0.1.0"


def test_it_reports_every_link_fact_as_ip_link_shows_it(node_snapshot):
    netns, snapshot = node_snapshot
    ip_links = {entry["ifname"]: entry for entry in ip_json("-d", "link", "show", netns=netns)}
    agent_links = {link["name"]: link for link in snapshot["links"]}
    assert set(agent_links) == set(ip_links) == {"lo", "eth0", "sw0", "eth1", "sw1", "br0", "mv0"}
    for name, entry in ip_links.items():
        link = agent_links[name]
        mac = entry.get("address")
        flags = entry["flags"]
        assert link["ifindex"] == entry["ifindex"], name
        assert link["altnames"] == entry.get("altnames", []), name
        assert link["alias"] == entry.get("ifalias"), name
        assert link["mac"] == (None if mac == "00:00:00:00:00:00" else mac), name
        assert link["permanent_mac"] == entry.get("permaddr"), name
        assert link["kind"] == expected_kind(entry), name
        assert link["master"] == entry.get("master"), name
        assert link["operstate"] == entry["operstate"].lower(), name
        assert link["carrier"] == (("LOWER_UP" in flags) if "UP" in flags else None), name
        assert link["mtu"] == entry["mtu"], name
        speed = sysfs_in(netns, f"/sys/class/net/{name}/speed")
        expected_speed = int(speed) if speed and int(speed) > 0 else None
        assert link["speed_mbps"] == expected_speed, name
        assert link["pci_address"] is None and link["driver"] is None, name
        assert link["wireless"] is False


def test_it_reports_aliases_altnames_masters_and_kinds_of_the_lab_node(node_snapshot):
    _, snapshot = node_snapshot
    links = {link["name"]: link for link in snapshot["links"]}
    assert links["eth1"]["alias"] == ALIAS  # passed as-is; escaping is the portal's job
    assert links["eth0"]["altnames"] == ["uplink-primary"]
    assert links["sw0"]["master"] == "br0" and links["sw0"]["master_kind"] == "bridge"
    assert links["br0"]["kind"] == "bridge" and links["mv0"]["kind"] == "macvlan"
    assert links["lo"]["kind"] == "loopback" and links["lo"]["mac"] is None
    assert links["eth0"]["mtu"] == 9000
    assert links["eth0"]["speed_mbps"] == 10000  # veth says so in its own namespace's sysfs
    assert links["eth1"]["carrier"] is None and links["eth1"]["operstate"] == "down"


def test_it_reports_addresses_as_ip_addr_shows_them(node_snapshot):
    netns, snapshot = node_snapshot
    agent_links = {link["name"]: link for link in snapshot["links"]}
    for entry in ip_json("addr", "show", netns=netns):
        expected = [
            {
                "family": 4 if info["family"] == "inet" else 6,
                "address": info["local"],
                "prefixlen": info["prefixlen"],
                "scope": info["scope"],
            }
            for info in entry["addr_info"]
        ]
        assert agent_links[entry["ifname"]]["addresses"] == expected, entry["ifname"]
    eth0 = {(a["family"], a["address"]) for a in agent_links["eth0"]["addresses"]}
    assert {(4, "10.77.0.2"), (6, "2001:db8:77::2")} <= eth0


def test_it_marks_the_links_that_carry_the_default_routes(node_snapshot):
    netns, snapshot = node_snapshot
    v4 = {route["dev"] for route in ip_json("route", "show", "default", netns=netns)}
    v6 = {route["dev"] for route in ip_json("-6", "route", "show", "default", netns=netns)}
    assert v4 == v6 == {"eth0"}
    for link in snapshot["links"]:
        assert link["default_route_v4"] == (link["name"] in v4), link["name"]
        assert link["default_route_v6"] == (link["name"] in v6), link["name"]


def test_it_reads_sysfs_of_the_watched_namespace_not_the_hosts(node_snapshot):
    # sw0 exists only in the watched namespace, so the host's /sys/class/net has no speed for
    # it; only a sysfs mounted from inside the namespace (the worker's) does.
    _, snapshot = node_snapshot
    assert not os.path.exists("/sys/class/net/sw0")
    links = {link["name"]: link for link in snapshot["links"]}
    assert links["sw0"]["speed_mbps"] == 10000
