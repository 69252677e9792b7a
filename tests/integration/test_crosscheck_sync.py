"""The cross-check with the Kubernetes API through sync, stored in PostgreSQL: a snapshot that
hides the node's uplink leaves it `system` (the builder refuses it), the contradiction is stored
on the node, shown on its page and in the API, logged and written to its history, and it clears
when the snapshot agrees again. A change of the Node's addresses in the API re-judges the node
without a new snapshot."""

from __future__ import annotations

import logging

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import connection
from django.utils import timezone
from rest_framework.test import APIClient

from inventory.clients.cluster_objects import ClusterListing, NodeInfo
from inventory.models import Cluster, HistoryEntry, Interface, Node
from inventory.sync.first_sight import FirstSnapshot, apply_first_snapshots
from inventory.sync.listing import apply_listing
from inventory.sync.snapshot import apply_snapshot
from tests.factories import make_team, make_user
from tests.integration.test_sync_snapshots import SPARE, UPLINK, snapshot

pytestmark = pytest.mark.django_db

# The same eth0 as UPLINK, as a forged or broken snapshot reports it: no address, no route.
HIDDEN = dict(UPLINK, addresses=[], default_route_v4=False)
CONTRADICTS = "snapshot contradicts the Kubernetes API"


@pytest.fixture
def node() -> Node:
    cluster, _ = Cluster.objects.get_or_create(name=settings.CLUSTER_NAME)
    return Node.objects.create(
        cluster=cluster, name="n1", ready=True, internal_ips=["10.0.0.5"], agent_url="http://x"
    )


def eth(name: str) -> Interface:
    return Interface.objects.get(node__name="n1", name=name)


def render(interface: Interface) -> dict:
    client = APIClient()
    mallory = User.objects.filter(username="mallory").first()
    client.force_authenticate(mallory or make_user("mallory", teams=[make_team("blue")]))
    response = client.post(
        "/api/v1/nads/render/",
        {"namespace": "default", "name": "take-it", "interfaces": [interface.pk], "team": "blue"}
        | {"selector": "hwaddr"},
        format="json",
    )
    assert response.status_code == 200, response.content
    return response.json()


def codes(node: Node) -> list[str]:
    node.refresh_from_db()
    return [finding["code"] for finding in node.findings]


def test_a_snapshot_hiding_the_uplink_leaves_it_system_and_flags_the_node(node, caplog, client):
    apply_snapshot(node, snapshot("n1", UPLINK, SPARE))
    assert eth("eth0").pinned == ["10.0.0.5", "default-route"]
    assert codes(node) == []
    assert render(eth("eth1"))["ok"] is True  # the check below can fail

    with caplog.at_level(logging.INFO):
        apply_snapshot(node, snapshot("n1", HIDDEN, SPARE))

    eth0 = eth("eth0")
    assert eth0.state == "system" and eth0.addresses == []
    assert "held the node's InternalIP 10.0.0.5 (Kubernetes API)" in eth0.reason
    assert eth0.pinned == ["10.0.0.5", "default-route"]
    result = render(eth0)
    assert result["ok"] is False
    assert "PRIMARY_NIC" in {f["code"] for f in result["findings"] if f["severity"] == "error"}
    assert codes(node) == ["internal_ip_on_no_nic", "default_route_gone"]
    assert f"node=n1 {CONTRADICTS}: The Kubernetes API lists 10.0.0.5" in caplog.text
    history = HistoryEntry.objects.filter(node=node, message__startswith=CONTRADICTS)
    assert history.count() == 2

    # Shown on the node page and in the API.
    viewer = make_user("viewer")
    client.force_login(viewer)
    page = client.get("/nodes/n1/").content.decode()
    assert 'data-testid="contradictions"' in page
    assert "The Kubernetes API lists 10.0.0.5 as this node&#x27;s InternalIP" in page
    api = APIClient()
    api.force_authenticate(viewer)
    (row,) = api.get("/api/v1/nodes/", {"name": "n1"}).json()["results"]
    assert [f["code"] for f in row["findings"]] == codes(node)

    # The same forged snapshot again: nothing new is written.
    apply_snapshot(node, snapshot("n1", HIDDEN, SPARE))
    assert history.count() == 2

    # The snapshot agrees with the API again: the findings clear, with their history.
    apply_snapshot(node, snapshot("n1", UPLINK, SPARE))
    assert codes(node) == []
    assert eth("eth0").reason == "carries the default route"
    over = HistoryEntry.objects.filter(node=node, message__startswith="contradiction with")
    assert over.count() == 2
    assert 'data-testid="contradictions"' not in client.get("/nodes/n1/").content.decode()


def test_a_snapshot_leaving_the_uplink_out_keeps_it_system(node):
    apply_snapshot(node, snapshot("n1", UPLINK, SPARE))
    apply_snapshot(node, snapshot("n1", SPARE))
    eth0 = eth("eth0")
    assert (eth0.present, eth0.state) == (False, "system")
    assert render(eth0)["ok"] is False


def test_an_empty_snapshot_neither_frees_nor_forgets_the_uplink(node):
    apply_snapshot(node, snapshot("n1", UPLINK, SPARE))
    for _ in range(2):  # and the next empty one finds the pin still there
        apply_snapshot(node, snapshot("n1"))
        eth0 = eth("eth0")
        assert (eth0.present, eth0.state) == (False, "system")
        assert eth0.pinned == ["10.0.0.5", "default-route"]
    assert codes(node) == ["internal_ip_on_no_nic", "default_route_gone"]


def test_the_address_moving_to_another_nic_moves_the_pin(node):
    apply_snapshot(node, snapshot("n1", UPLINK, SPARE))
    moved = dict(SPARE, addresses=UPLINK["addresses"], default_route_v4=True)
    apply_snapshot(node, snapshot("n1", HIDDEN, moved))
    assert (eth("eth0").state, eth("eth0").pinned) == ("free", [])
    assert (eth("eth1").state, eth("eth1").pinned) == ("system", ["10.0.0.5", "default-route"])
    assert codes(node) == []


def listing_with(node: Node, **addresses: tuple[str, ...]) -> ClusterListing:
    info = NodeInfo(
        name=node.name,
        internal_ips=addresses.get("internal", ()),
        labels={},
        annotations={},
        ready=True,
        addresses=addresses.get("internal", ()) + addresses.get("external", ()),
        external_ips=addresses.get("external", ()),
    )
    return ClusterListing(
        nodes=[info], pods=[], nads=[], sandbox_failures=[], agent_endpoints={}, rogue_agents=[]
    )


def test_new_node_addresses_in_the_api_rejudge_the_node_without_a_new_snapshot(node):
    public = dict(
        SPARE,
        addresses=[{"family": 4, "address": "203.0.113.5", "prefixlen": 32, "scope": "universe"}],
    )
    apply_snapshot(node, snapshot("n1", UPLINK, public))
    assert eth("eth1").state == "system"  # has an address: the node uses it
    assert eth("eth1").reason == "has address 203.0.113.5/32: used by the node"

    apply_listing(
        node.cluster, listing_with(node, internal=("10.0.0.5",), external=("203.0.113.5",))
    )

    node.refresh_from_db()
    assert node.external_ips == ["203.0.113.5"]
    assert eth("eth1").reason == "holds the node's ExternalIP 203.0.113.5 (Kubernetes API)"
    assert eth("eth1").pinned == ["203.0.113.5"]

    # The API moves the InternalIP away from what the snapshot shows: flagged at once.
    apply_listing(node.cluster, listing_with(node, internal=("10.0.0.99",)))
    assert codes(node) == ["internal_ip_on_no_nic"]


def test_the_first_sight_of_a_node_stores_its_contradictions(node, caplog):
    if connection.vendor != "postgresql":
        pytest.skip("the bulk path is PostgreSQL's COPY (set DATABASE_URL)")
    snap = snapshot("n1", HIDDEN, SPARE)
    with caplog.at_level(logging.WARNING):
        stats, later = apply_first_snapshots(
            [FirstSnapshot(node, snap, '"e1"')], now=timezone.now()
        )
    assert f"node=n1 {CONTRADICTS}: The Kubernetes API lists 10.0.0.5" in caplog.text
    assert later == [] and stats.created == 2
    assert codes(node) == ["internal_ip_on_no_nic"]
    # Nothing to remember yet: eth0 is judged on what the snapshot says, and the node flagged
    # (shown and logged; no history entry, for nothing seen before changed).
    assert eth("eth0").state == "free"
    assert not HistoryEntry.objects.filter(node=node, message__startswith=CONTRADICTS).exists()
