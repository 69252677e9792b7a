"""The fleet simulator and the sweep benchmark's checks, small enough for CI (20 nodes x 4 NICs):
correctness only, no timing. Runs on SQLite and PostgreSQL (whatever DATABASE_URL says)."""

from __future__ import annotations

import gc
import json
import urllib.request

import pytest
from django.core.cache import cache
from django.db import connection
from django.utils import timezone

from bench import fleet
from bench.fleet_agent import FleetAgentClient
from inventory.clients.cluster import ClusterClient
from inventory.models import HistoryEntry, Interface, Node, PodAttachment, contact_cache_key
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


def test_a_sweep_over_two_processes_fills_every_interface_then_writes_nothing(simulated_fleet):
    if connection.vendor != "postgresql":
        pytest.skip("several sweep processes need PostgreSQL (set DATABASE_URL)")
    server, cluster_client, agent = simulated_fleet

    cold = polling.sweep_inline(workers=2, processes=2, cluster_client=cluster_client, agent=agent)
    before = stored_rows()
    started = timezone.now()
    warm = polling.sweep_inline(workers=2, processes=2, cluster_client=cluster_client, agent=agent)

    assert (cold.agents_ok, cold.agents_failed) == (NODES, 0)
    assert cold.stats.created == NODES * NICS == Interface.objects.count()
    # Every interface judged, with its history entry, by the bulk path of first sight.
    assert not Interface.objects.filter(state="unknown").exists()
    assert HistoryEntry.objects.filter(kind="ownership").count() == NODES * NICS
    assert warm.agents_ok == NODES and warm.stats.rows_written == 0
    assert stored_rows() == before
    # Each process wrote its share's contact times to the cache (what the pages read).
    ids = list(Node.objects.values_list("pk", flat=True))
    contacts = cache.get_many([contact_cache_key(pk) for pk in ids])
    assert len(contacts) == NODES and min(contacts.values()) >= started


def control(server, path: str) -> dict:
    request = urllib.request.Request(f"{server.url}/control/{path}", method="POST")
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.load(answer)


def test_a_warm_sweep_reads_no_cluster_object_and_a_change_reads_one(simulated_fleet, settings):
    settings.KUBE_WATCH = True
    server, cluster_client, agent = simulated_fleet

    cold = sweep(cluster_client, agent)
    warm = sweep(cluster_client, agent)

    # The first sweep lists the five collections (nodes, pods, NADs, events, the agents'
    # DaemonSet) once: NODES nodes, NODES agent pods, one NAD, one DaemonSet.
    assert cold.cluster_read["lists"] == 5 and cold.cluster_read["objects"] == 2 * NODES + 2
    # An unchanged cluster: five watches, each answered by a bookmark, no object, no list.
    assert warm.cluster_read == {
        "lists": 0,
        "watches": 5,
        "relists": 0,
        "objects": 0,
        "bookmarks": 5,
        "bytes": warm.cluster_read["bytes"],
    }
    assert 0 < warm.cluster_read["bytes"] < 400

    control(server, "multus-pod?index=3&type=ADDED")
    added = sweep(cluster_client, agent)
    attachment = PodAttachment.objects.get(pod_name="dpdk-sim-00003")
    assert added.cluster_read["objects"] == 1 and added.cluster_read["lists"] == 0
    assert attachment.status == "attached" and attachment.node.name == "sim-00003"

    control(server, "multus-pod?index=3&type=DELETED")
    deleted = sweep(cluster_client, agent)
    attachment.refresh_from_db()
    assert deleted.cluster_read["objects"] == 1 and attachment.status == "gone"


def test_a_listing_that_received_nothing_is_not_applied_again_unless_the_rows_moved(
    simulated_fleet, settings, monkeypatch
):
    settings.KUBE_WATCH = True
    server, cluster_client, agent = simulated_fleet
    applied = []
    real_apply = polling.apply_listing

    def counting_apply(*args, **kwargs):
        applied.append(args[1])
        return real_apply(*args, **kwargs)

    monkeypatch.setattr(polling, "apply_listing", counting_apply)
    sweep(cluster_client, agent)
    assert len(applied) == 1
    before = stored_rows()

    warm = sweep(cluster_client, agent)
    assert len(applied) == 1, "an unchanged cluster's listing was applied again"
    assert warm.cluster_read["objects"] == 0 and stored_rows() == before

    # A row the listing wrote was changed behind the sweep's back: applied again, and restored.
    Node.objects.filter(name="sim-00002").update(in_cluster=False)
    sweep(cluster_client, agent)
    assert len(applied) == 2 and Node.objects.get(name="sim-00002").in_cluster

    # The inventory emptied (as the benchmark does between cold runs): the nodes come back.
    Node.objects.all().delete()
    refilled = sweep(cluster_client, agent)
    assert len(applied) == 3
    assert Node.objects.filter(in_cluster=True).count() == NODES
    assert refilled.stats.created == NODES * NICS

    # A change in the cluster is applied (a new event, not the old listing object).
    control(server, "multus-pod?index=4&type=ADDED")
    sweep(cluster_client, agent)
    assert len(applied) == 4 and applied[-1] is not applied[-2]
    assert PodAttachment.objects.get(pod_name="dpdk-sim-00004").status == "attached"


def test_a_resource_version_the_server_forgot_is_listed_again(simulated_fleet, settings):
    settings.KUBE_WATCH = True
    server, cluster_client, agent = simulated_fleet
    sweep(cluster_client, agent)
    control(server, "multus-pod?index=5&type=ADDED")
    control(server, "compact")  # the change is gone from the server's log: 410 on every watch

    report = sweep(cluster_client, agent)

    assert report.cluster_error == ""
    assert report.cluster_read["relists"] == 5 and report.cluster_read["lists"] == 5
    assert PodAttachment.objects.get(pod_name="dpdk-sim-00005").status == "attached"
    again = sweep(cluster_client, agent).cluster_read
    assert again["objects"] == 0, again


def test_without_watch_every_sweep_lists_everything(simulated_fleet, settings):
    settings.KUBE_WATCH = False
    _, cluster_client, agent = simulated_fleet
    sweep(cluster_client, agent)
    warm = sweep(cluster_client, agent)
    assert warm.cluster_read["watches"] == 0
    assert warm.cluster_read["objects"] == 2 * NODES + 1 and warm.cluster_read["lists"] == 4
