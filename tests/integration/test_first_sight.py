"""The bulk path for nodes seen for the first time (sync/first_sight.py) stores exactly what
apply_snapshot stores node by node: the same interface rows with the same verdicts, the same
history, the same node row; and a node that got interfaces meanwhile is handed back."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from django.db import connection

from bench import fleet
from inventory.choices import AttachmentStatus
from inventory.models import Cluster, HistoryEntry, Interface, Node, PodAttachment
from inventory.sync.first_sight import (
    FirstSnapshot,
    _copy,
    apply_first_snapshots,
    with_known_flag,
)
from inventory.sync.snapshot import apply_snapshot
from tests.fixtures import sysfs as fx
from tests.integration.test_sync_snapshots import link, snapshot

pytestmark = [pytest.mark.postgres, pytest.mark.django_db]

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _postgres_only():
    if connection.vendor != "postgresql":
        pytest.skip("the bulk path is PostgreSQL's COPY (set DATABASE_URL)")


def busy_snapshot(node: str) -> dict[str, Any]:
    """Every kind of verdict in one node: system (default route, InternalIP), cni (Calico),
    enslaved (bridge port), virtual, an orphan, a NIC in a pod (by MAC), a vfio function, a
    free NIC; and a pod on the node that claims a NIC by MAC."""
    return snapshot(
        node,
        link("lo", "00:00:00:00:00:00", ifindex=1, kind="loopback", driver=None),
        link(
            "eth0",
            "02:00:00:00:00:01",
            pci_address="0000:00:03.0",
            addresses=[{"family": 4, "address": "10.0.0.9", "prefixlen": 24, "scope": "universe"}],
            default_route_v4=True,
        ),
        link("cali1234567890a", "ee:ee:ee:ee:ee:ee", ifindex=4, kind="veth", driver="veth"),
        link("br-ex", "02:00:00:00:00:05", ifindex=5, kind="bridge", driver="bridge"),
        link(
            "eth4",
            "02:00:00:00:00:06",
            ifindex=6,
            pci_address="0000:3b:00.1",
            master="br-ex",
            master_kind="bridge",
        ),
        link("net1", "02:00:00:00:00:07", ifindex=7, pci_address="0000:3b:00.2", alias="ens2f0"),
        link("ens3f0", "02:00:00:00:00:08", ifindex=8, pci_address="0000:3b:00.3"),
        link("ens4f0", "02:00:00:00:00:09", ifindex=9, pci_address="0000:3b:00.4"),
        link("ens5f0", "02:00:00:00:00:0a", ifindex=10, pci_address="0000:3b:00.5"),
        pci_functions=[
            {
                "pci_address": "0000:5e:00.0",
                "driver": "vfio-pci",
                "vendor_id": "0x8086",
                "device_id": "0x1592",
                "numa_node": 1,
                "sriov_total_vfs": None,
                "sriov_num_vfs": None,
                "pf_pci_address": None,
            }
        ],
    )


def make_node(cluster: Cluster, name: str) -> Node:
    node = Node.objects.create(
        cluster=cluster, name=name, ready=True, internal_ips=["10.0.0.9"], stale=True
    )
    # A pod claims ens4f0's MAC: both paths judge with the node's claims.
    PodAttachment.objects.create(
        cluster=cluster,
        namespace="work",
        pod_name=f"pod-{name}",
        node=node,
        nad_namespace="work",
        nad_name="fast",
        pod_interface="net1",
        mac="02:00:00:00:00:09",
        status=AttachmentStatus.ATTACHED,
    )
    return node


def stored(node: Node) -> dict[str, Any]:
    """What is stored for a node, without ids and the node's own name."""
    interfaces = [
        {k: v for k, v in row.items() if k not in ("id", "node_id")}
        for row in Interface.objects.filter(node=node).order_by("identity").values()
    ]
    history = [
        (
            h["interface__identity"],
            h["kind"],
            h["old_state"],
            h["new_state"],
            h["message"],
            h["data"],
        )
        for h in HistoryEntry.objects.filter(node=node)
        .order_by("interface__identity")
        .values("interface__identity", "kind", "old_state", "new_state", "message", "data")
    ]
    row = Node.objects.filter(pk=node.pk).values(
        "agent_version", "agent_etag", "cni", "collected_at", "stale", "agent_error"
    )[0]
    for interface in interfaces:
        interface["node_name"] = interface["node_name"].replace(node.name, "NODE")
    return {"interfaces": interfaces, "history": history, "node": row}


def test_the_bulk_path_stores_what_the_node_by_node_path_stores():
    cluster = Cluster.objects.create(name="c")
    one_by_one = make_node(cluster, "node-one")
    in_bulk = make_node(cluster, "node-bulk")
    snap = busy_snapshot("n")

    apply_snapshot(one_by_one, snap, etag='"e1"', now=NOW)
    stats, later = apply_first_snapshots(
        [FirstSnapshot(Node.objects.get(pk=in_bulk.pk), snap, '"e1"')], now=NOW
    )

    assert later == []
    expected, got = stored(one_by_one), stored(in_bulk)
    assert got == expected
    states = {row["name"]: row["state"] for row in got["interfaces"]}
    assert states["eth0"] == "system" and states["cali1234567890a"] == "cni"
    assert states["eth4"] == "enslaved" and states["ens3f0"] == "free"
    assert [r["orphan"] for r in got["interfaces"] if r["name"] == "net1"] == [True]
    assert stats.created == len(got["interfaces"]) == 10
    assert stats.history == len(got["history"]) and stats.node_rows == 1


def test_many_simulated_nodes_in_one_batch_match_node_by_node():
    cluster = Cluster.objects.create(name="c")
    pairs = []
    for index in range(12):
        snap = fleet.render_snapshot(index, 16, generation=0, multus_every=0)
        pairs.append(
            (make_node(cluster, f"one-{index}"), make_node(cluster, f"bulk-{index}"), snap)
        )
    for one, _, snap in pairs:
        apply_snapshot(one, snap, etag=f'"{one.name}"', now=NOW)
    batch = [FirstSnapshot(bulk, snap, f'"{one.name}"') for one, bulk, snap in pairs]

    apply_first_snapshots(batch, now=NOW)

    for one, bulk, _ in pairs:
        assert stored(bulk) == stored(one)
    assert (
        not with_known_flag(Node.objects.filter(name__startswith="bulk-"))
        .filter(known=False)
        .exists()
    )


def test_a_node_that_got_interfaces_meanwhile_is_handed_back_untouched():
    cluster = Cluster.objects.create(name="c")
    raced = make_node(cluster, "raced")
    fresh = make_node(cluster, "fresh")
    snap = busy_snapshot("n")
    apply_snapshot(raced, snap, etag='"first"', now=NOW)
    before = stored(raced)

    stats, later = apply_first_snapshots(
        [FirstSnapshot(raced, snap, '"second"'), FirstSnapshot(fresh, snap, '"second"')], now=NOW
    )

    assert [item.node.pk for item in later] == [raced.pk]
    assert stored(raced) == before
    assert stats.created == Interface.objects.filter(node=fresh).count() == 10


def test_the_bulk_path_stores_the_sriov_node_as_the_node_by_node_path(tmp_path):
    cluster = Cluster.objects.create(name="c")
    one_by_one = make_node(cluster, "node-one")
    in_bulk = make_node(cluster, "node-bulk")
    snap = fx.sriov_node_snapshot(fx.sriov_node(tmp_path / "sys"), node="n")

    apply_snapshot(one_by_one, snap, etag='"e1"', now=NOW)
    apply_first_snapshots([FirstSnapshot(Node.objects.get(pk=in_bulk.pk), snap, '"e1"')], now=NOW)

    expected, got = stored(one_by_one), stored(in_bulk)
    assert got == expected
    vfs = {r["pci_address"]: r for r in got["interfaces"] if r["pf_pci_address"]}
    assert {a: (r["vf_index"], r["state"]) for a, r in vfs.items()} == {
        fx.NETDEV_VF: (0, "free"),
        fx.VFIO_VF: (1, "free"),
        fx.POD_VF: (2, "missing"),
    }


def test_copy_stores_each_json_document_as_given_when_documents_repeat():
    # _copy encodes a repeated document of strings once; 1, 1.0, True and "1" are one
    # dictionary key in Python but four JSON values. These rows leave out the nullable
    # columns (actor, team, interface): they get their defaults.
    cluster = Cluster.objects.create(name="c")
    node = make_node(cluster, "copied")
    documents = [
        {"holder": "a", "old_holder": ""},
        {"holder": "a", "old_holder": ""},
        {"holder": 1, "old_holder": ""},
        {"holder": 1.0, "old_holder": ""},
        {"holder": True, "old_holder": ""},
        {"holder": "1", "old_holder": ""},
        {"holder": ["a"], "old_holder": ""},
        {},
    ]
    rows = [
        {
            "at": NOW,
            "kind": "ownership",
            "old_state": "",
            "new_state": "free",
            "message": str(index),
            "data": data,
            "node_id": node.pk,
        }
        for index, data in enumerate(documents)
    ]

    _copy(HistoryEntry, rows)

    stored_documents = [
        entry.data for entry in HistoryEntry.objects.filter(node=node).order_by("message")
    ]
    assert [(repr(d.get("holder")), d) for d in stored_documents] == [
        (repr(d.get("holder")), d) for d in documents
    ]
    assert not HistoryEntry.objects.filter(node=node, interface__isnull=False).exists()
