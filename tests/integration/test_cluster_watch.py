"""clients/watch.py against a real kube-apiserver (real resourceVersions, bookmarks and 410s):
an unchanged cluster is read with no object, a change arrives as its event, a resourceVersion
the server no longer has is listed again."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from inventory.clients.cluster import ClusterClient
from inventory.clients.watch import ClusterWatch
from tests.integration.real_api_server import real_api_server  # noqa: F401 (a fixture)

pytestmark = [pytest.mark.slow]

MULTUS = {"k8s.v1.cni.cncf.io/networks": "fast-nic"}


@pytest.fixture
def core(real_api_server) -> k8s.CoreV1Api:  # noqa: F811 (the fixture above)
    api = k8s_config.new_client_from_config(config_file=str(real_api_server.kubeconfig))
    yield k8s.CoreV1Api(api)
    api.close()


@pytest.fixture
def namespace(core) -> str:
    name = f"watch-{uuid.uuid4().hex[:8]}"
    core.create_namespace(k8s.V1Namespace(metadata=k8s.V1ObjectMeta(name=name)))
    return name


@pytest.fixture
def watched(real_api_server) -> ClusterWatch:  # noqa: F811
    cluster_client = ClusterClient(kubeconfig=str(real_api_server.kubeconfig), timeout=10)
    yield ClusterWatch(cluster_client, window=3)
    cluster_client.close()


def make_node(core: k8s.CoreV1Api, name: str) -> None:
    core.create_node(k8s.V1Node(metadata=k8s.V1ObjectMeta(name=name)))


def make_pod(core: k8s.CoreV1Api, namespace: str, name: str, node: str) -> None:
    core.create_namespaced_pod(
        namespace,
        k8s.V1Pod(
            metadata=k8s.V1ObjectMeta(name=name, annotations=MULTUS),
            spec=k8s.V1PodSpec(
                node_name=node, containers=[k8s.V1Container(name="app", image="app")]
            ),
        ),
    )


def test_an_unchanged_cluster_is_read_with_no_object(core, namespace, watched):
    node = f"node-{namespace}"
    make_node(core, node)
    make_pod(core, namespace, "app-1", node)

    first = watched.listing()
    cold = watched.last_read
    again = watched.listing()
    warm = watched.last_read

    assert node in {n.name for n in first.nodes}
    assert (namespace, "app-1") in {(p.namespace, p.name) for p in first.pods}
    assert cold.lists >= 3 and cold.objects >= 2
    # Nodes, pods, events and the agents' DaemonSet are watched (no NAD CRD here: that one is
    # asked again, and 404s).
    assert (warm.lists, warm.objects, warm.relists) == (0, 0, 0)
    assert warm.watches == 4
    assert {n.name for n in again.nodes} == {n.name for n in first.nodes}
    pods = {(p.namespace, p.name) for p in first.pods}
    assert {(p.namespace, p.name) for p in again.pods} == pods


def test_a_change_arrives_as_its_event(core, namespace, watched):
    node = f"node-{namespace}"
    make_node(core, node)
    watched.listing()

    make_pod(core, namespace, "app-2", node)
    added = watched.listing()
    after_add = watched.last_read
    core.delete_namespaced_pod("app-2", namespace, grace_period_seconds=0)
    deleted = watched.listing()
    after_delete = watched.last_read

    assert (namespace, "app-2") in {(p.namespace, p.name) for p in added.pods}
    pod = next(p for p in added.pods if (p.namespace, p.name) == (namespace, "app-2"))
    assert [n.name for n in pod.networks] == ["fast-nic"] and pod.node_name == node
    assert after_add.lists == 0 and after_add.objects >= 1
    assert (namespace, "app-2") not in {(p.namespace, p.name) for p in deleted.pods}
    assert after_delete.lists == 0 and after_delete.objects >= 1


def test_a_resource_version_the_server_no_longer_has_is_listed_again(
    core,
    namespace,
    watched,
    real_api_server,  # noqa: F811
):
    node = f"node-{namespace}"
    make_node(core, node)
    watched.listing()
    make_pod(core, namespace, "app-3", node)
    # As after a long outage: etcd's history is compacted past the copy's resourceVersion and
    # the API server's watch cache starts after it.
    watched.collections["pods"].version = "1"
    real_api_server.compact_etcd()
    real_api_server.restart()

    listing = watched.listing()

    # The pods' copy, and any other the restarted watch cache no longer reaches, are relisted.
    assert watched.last_read.relists >= 1 and watched.last_read.lists >= 1
    assert (namespace, "app-3") in {(p.namespace, p.name) for p in listing.pods}
    watched.listing()
    assert watched.last_read.objects == 0
