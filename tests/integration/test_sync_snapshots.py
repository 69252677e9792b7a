"""apply_snapshot and the agent poll path on hand-made snapshots (validated against the
agent's own schema) and a real local HTTP agent that misbehaves."""

from __future__ import annotations

import http.server
import json
import threading
from datetime import timedelta

import fastjsonschema
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from inventory.models import Cluster, HistoryEntry, Interface, Node
from inventory.services import polling
from inventory.sync.contact import note_agent_failure, note_not_modified
from inventory.sync.snapshot import apply_snapshot
from nodeagent import auth
from nodeagent.schema import SNAPSHOT_SCHEMA

pytestmark = pytest.mark.django_db

validate = fastjsonschema.compile(SNAPSHOT_SCHEMA)


def link(name: str, mac: str, **extra) -> dict:
    base = {
        "ifindex": extra.pop("ifindex", 2),
        "name": name,
        "altnames": [],
        "alias": None,
        "mac": mac,
        "permanent_mac": None,
        "kind": "physical",
        "master": None,
        "master_kind": None,
        "operstate": "up",
        "carrier": True,
        "mtu": 1500,
        "speed_mbps": 25000,
        "driver": "ixgbe",
        "pci_address": None,
        "vendor_id": None,
        "device_id": None,
        "numa_node": 0,
        "sriov_total_vfs": None,
        "sriov_num_vfs": None,
        "pf_pci_address": None,
        "pf_name": None,
        "wireless": False,
        "addresses": [],
        "default_route_v4": False,
        "default_route_v6": False,
    }
    base.update(extra)
    return base


def snapshot(node: str, *links: dict, pci_functions=()) -> dict:
    snap = {
        "schema_version": 1,
        "node": node,
        "agent_version": "0.1.0",
        "collected_at": "2026-11-28T00:00:00Z",
        "netns": None,
        "links": list(links),
        "pci_functions": list(pci_functions),
        "cni": {
            "bin_dirs": [],
            "host_device": {
                "path": "/opt/cni/bin/host-device",
                "version": "1.2.0",
                "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
            },
        },
    }
    validate(snap)  # hand-made snapshots obey the agent's contract too
    return snap


UPLINK = link(
    "eth0",
    "52:54:00:00:00:01",
    ifindex=2,
    pci_address="0000:3b:00.0",
    addresses=[{"family": 4, "address": "10.0.0.5", "prefixlen": 24, "scope": "universe"}],
    default_route_v4=True,
)
SPARE = link("eth1", "52:54:00:00:00:02", ifindex=3, pci_address="0000:3b:00.1")


@pytest.fixture
def node():
    cluster = Cluster.objects.create(name="default")
    return Node.objects.create(
        cluster=cluster, name="node-1", internal_ips=["10.0.0.5"], agent_url="http://127.0.0.1:9"
    )


def test_it_creates_one_row_per_link_with_its_verdict(node):
    stats = apply_snapshot(node, snapshot("node-1", UPLINK, SPARE), etag='"e1"')

    assert stats.created == 2
    eth0, eth1 = Interface.objects.get(name="eth0"), Interface.objects.get(name="eth1")
    assert (eth0.identity, eth0.identity_kind) == ("0000:3b:00.0", "pci")
    assert eth0.state == "system" and eth1.state == "free"
    assert eth1.reason.startswith("physical NIC (driver ixgbe, 0000:3b:00.1)")
    node.refresh_from_db()
    assert node.agent_etag == '"e1"' and node.cni["host_device"]["version"] == "1.2.0"


def test_applying_the_same_snapshot_again_writes_nothing(node):
    snap = snapshot("node-1", UPLINK, SPARE)
    apply_snapshot(node, snap, etag='"e1"')
    node.refresh_from_db()

    with CaptureQueriesContext(connection) as queries:
        stats = apply_snapshot(node, snap, etag='"e1"')

    assert stats.rows_written == 0
    assert not [
        q
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]


def test_a_renamed_nic_keeps_its_row_and_history(node):
    apply_snapshot(node, snapshot("node-1", UPLINK, SPARE))
    row = Interface.objects.get(name="eth1")
    # host-device's orphan: returned from a dead pod under its pod name, old name in the alias
    orphan = dict(SPARE, name="net1", alias="eth1")

    apply_snapshot(node, snapshot("node-1", UPLINK, orphan))

    row.refresh_from_db()
    assert (row.name, row.alias) == ("net1", "eth1")
    assert Interface.objects.filter(node=node).count() == 2
    assert "orphan" in row.reason and "ip link set net1 name eth1" in row.reason


def test_a_vanished_pci_nic_is_kept_and_marked_missing(node):
    apply_snapshot(node, snapshot("node-1", UPLINK, SPARE))

    apply_snapshot(
        node,
        snapshot(
            "node-1",
            UPLINK,
            pci_functions=[
                {
                    "pci_address": "0000:3b:00.1",
                    "driver": "ixgbe",
                    "vendor_id": "0x8086",
                    "device_id": "0x10fb",
                    "numa_node": 0,
                    "sriov_total_vfs": None,
                    "sriov_num_vfs": None,
                    "pf_pci_address": None,
                }
            ],
        ),
    )

    row = Interface.objects.get(identity="0000:3b:00.1")
    assert row.name == "eth1"  # the last known name stays for people to recognise it
    assert row.has_netdev is False and row.state == "missing"
    assert HistoryEntry.objects.filter(interface=row, new_state="missing").exists()


def test_html_and_overlong_text_from_an_agent_is_stored_verbatim_and_clipped(node):
    evil = link(
        "eth9", "52:54:00:00:00:09", ifindex=9, alias="<script>alert(1)</script>", driver="x" * 500
    )

    apply_snapshot(node, snapshot("node-1", UPLINK, evil))

    row = Interface.objects.get(name="eth9")
    assert row.alias == "<script>alert(1)</script>"  # escaping is the templates' job
    assert row.driver == "x" * 64


def test_a_bridge_and_its_port_sharing_a_mac_get_two_rows(node):
    port = link(
        "eth4",
        "52:54:00:00:00:04",
        ifindex=4,
        kind="veth",
        driver="veth",
        master="br-ex",
        master_kind="bridge",
    )
    bridge = link("br-ex", "52:54:00:00:00:04", ifindex=5, kind="bridge", driver="bridge")

    apply_snapshot(node, snapshot("node-1", UPLINK, port, bridge))

    assert Interface.objects.get(name="br-ex").identity == "br-ex"
    assert Interface.objects.get(name="eth4").identity == "52:54:00:00:00:04"
    assert Interface.objects.get(name="br-ex").state == "virtual"


MASTER = "sync-tests-master-key-0123456789abcdef"


class BadAgent(http.server.BaseHTTPRequestHandler):
    """An agent holding its node's key that answers garbage (signed, so it is read)."""

    body = b"<html>not json</html>"

    def do_GET(self):
        request = auth.parse_authorization(self.headers["Authorization"])
        key = auth.derive_node_key(MASTER.encode(), cluster="default", node=request.node)
        signature = auth.sign_answer(
            key, node=request.node, nonce=request.nonce, status=200, etag="", body=self.body
        )
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header(auth.SIGNATURE_HEADER, signature)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


@pytest.fixture
def bad_agent():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), BadAgent)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


@pytest.mark.parametrize(
    "body",
    [
        b"<html>not json</html>",
        json.dumps({"schema_version": 1, "node": "node-1", "links": "nope"}).encode(),
        json.dumps(snapshot("node-2", UPLINK)).encode(),
    ],
)
def test_a_malformed_agent_answer_loses_nothing_already_stored(
    node, bad_agent, body, settings, caplog
):
    settings.AGENT_MASTER_KEY = MASTER
    settings.CLUSTER_NAME = "default"
    apply_snapshot(node, snapshot("node-1", UPLINK, SPARE))
    before = list(Interface.objects.order_by("id").values())
    Node.objects.filter(pk=node.pk).update(agent_url=bad_agent)
    BadAgent.body = body

    stats = polling.poll_node(node.pk)

    assert stats.agent_failures == 1
    assert list(Interface.objects.order_by("id").values()) == before
    node.refresh_from_db()
    assert node.agent_error and not node.stale  # not stale yet: last contact is recent
    assert "not signed" not in node.agent_error  # signed garbage: it was read, and refused
    assert "poll failed" in caplog.text


def test_the_node_turns_stale_only_after_the_stale_window(node, settings):
    settings.AGENT_STALE_AFTER = 60
    now = timezone.now()
    apply_snapshot(node, snapshot("node-1", UPLINK, SPARE), now=now)

    note_agent_failure(node, "timeout after 5.0s", now=now + timedelta(seconds=30))
    assert Interface.objects.filter(state="unknown").count() == 0

    note_agent_failure(node, "timeout after 5.0s", now=now + timedelta(seconds=61))
    assert Interface.objects.filter(state="unknown").count() == 2
    assert HistoryEntry.objects.filter(kind="agent", node=node).count() == 1


def test_an_unchanged_agent_hours_later_still_costs_no_row(node):
    now = timezone.now()
    apply_snapshot(node, snapshot("node-1", UPLINK, SPARE), etag='"e1"', now=now)
    node.refresh_from_db()

    later = now + timedelta(hours=3)
    with CaptureQueriesContext(connection) as queries:
        stats = note_not_modified(node, now=later)

    assert stats.rows_written == 0
    assert not [
        q
        for q in queries.captured_queries
        if q["sql"].lstrip().upper().startswith(("INSERT", "UPDATE", "DELETE"))
    ]
    assert node.last_contact == later  # the cache has the contact; the row keeps the old one
    assert Node.objects.get(pk=node.pk).last_contact_at == now
