"""The fleet simulator and the sweep benchmark's checks, small enough for CI (20 nodes x 4 NICs):
correctness only, no timing. Runs on SQLite and PostgreSQL (whatever DATABASE_URL says)."""

from __future__ import annotations

import gc
import json
import urllib.request

import pytest

from bench import fleet
from bench.portal import FleetAgentClient
from inventory.clients.cluster import ClusterClient
from inventory.models import HistoryEntry, Interface, Node
from inventory.services import polling

pytestmark = pytest.mark.django_db(transaction=True)

NODES, NICS = 20, 4


@pytest.fixture
def simulated_fleet(tmp_path, settings):
    server = fleet.start_in_thread(NODES, NICS, multus_every=0)
    settings.CLUSTER_NAME = fleet.CLUSTER_NAME
    kubeconfig = fleet.write_kubeconfig(tmp_path / "kubeconfig", server.url)
    cluster_client = ClusterClient(kubeconfig=str(kubeconfig), timeout=10)
    agent = FleetAgentClient.for_fleet(timeout=5)
    yield server, cluster_client, agent
    agent.close()
    cluster_client.close()
    server.shutdown()
    server.server_close()
    # The sweep's pool threads opened their own database connections (CONN_MAX_AGE keeps them);
    # the threads are gone, collecting their connections closes them, so the test database
    # can be dropped at the end of the session.
    gc.collect()


def sweep(cluster_client, agent) -> polling.SweepReport:
    return polling.sweep_inline(workers=4, cluster_client=cluster_client, agent=agent)


def stored_rows() -> dict[str, list]:
    """Everything a sweep may write, as plain values: a second, independent count of writes."""
    return {
        "interfaces": list(Interface.objects.order_by("pk").values()),
        "nodes": list(Node.objects.order_by("pk").values()),
        "history": list(HistoryEntry.objects.order_by("pk").values_list("pk", flat=True)),
    }


def churn(server, fraction: float, seed: int = 1) -> list[str]:
    request = urllib.request.Request(
        f"{server.url}/control/churn?fraction={fraction}&seed={seed}", method="POST"
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)["churned"]


def test_a_cold_sweep_fills_every_simulated_interface(simulated_fleet):
    _, cluster_client, agent = simulated_fleet

    report = sweep(cluster_client, agent)

    assert report.cluster_error == ""
    assert (report.nodes, report.agents_ok, report.agents_failed) == (NODES, NODES, 0)
    assert report.stats.created == NODES * NICS == Interface.objects.count()
    assert Node.objects.filter(interfaces__isnull=False).distinct().count() == NODES
    # lo and eth0 are the node's, the cali* veth the CNI's, ens1f0 is the one free NIC.
    states = dict(Interface.objects.filter(node__name="sim-00007").values_list("name", "state"))
    assert states == {"lo": "system", "eth0": "system", "cali00000000007": "cni", "ens1f0": "free"}


def test_a_warm_sweep_writes_no_rows(simulated_fleet):
    server, cluster_client, agent = simulated_fleet
    sweep(cluster_client, agent)
    before = stored_rows()
    answered_304 = server.fleet.not_modified

    report = sweep(cluster_client, agent)

    assert report.agents_ok == NODES
    assert report.stats.rows_written == 0
    assert stored_rows() == before
    assert server.fleet.not_modified - answered_304 == NODES  # every agent answered 304


def test_one_churned_node_updates_only_that_node(simulated_fleet):
    server, cluster_client, agent = simulated_fleet
    sweep(cluster_client, agent)
    before = {row["pk"]: row for row in Interface.objects.values("pk", "node__name", "name")}

    (churned,) = churn(server, 1 / NODES)
    report = sweep(cluster_client, agent)

    assert report.stats.updated == 1
    assert (report.stats.created, report.stats.vanished) == (0, 0)
    after = {row["pk"]: row for row in Interface.objects.values("pk", "node__name", "name")}
    changed = [after[pk] for pk in after if after[pk] != before[pk]]
    assert changed == [{"pk": changed[0]["pk"], "node__name": churned, "name": "ens1f0r1"}]
    node = Node.objects.get(name=churned)
    assert node.agent_etag == server.fleet.bodies[churned][1]


def test_the_simulated_agent_answers_304_to_its_own_etag_only(simulated_fleet):
    server, _, agent = simulated_fleet
    url = server.url

    first = agent.fetch(url, node="sim-00003")
    again = agent.fetch(url, node="sim-00003", etag=first.etag)
    other = agent.fetch(url, node="sim-00004", etag=first.etag)

    assert first.status == "ok" and len(first.snapshot["links"]) == NICS
    assert again.status == "not_modified"
    assert other.status == "ok" and other.etag != first.etag
