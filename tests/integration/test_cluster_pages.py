"""The cluster on the pages and in the diagnosis: the default cluster (its kubeconfig points
nowhere) and `second`, registered with the kubeconfig of a real kube-apiserver
(tests/integration/real_api_server.py). Both have a node called `node-a`: the fleet's bars and
node links name the cluster, the node page asks which one when none is named, and a pod is
diagnosed from its own cluster's API."""

from __future__ import annotations

import uuid

import pytest
from django.core.cache import cache

from inventory.choices import AttachmentStatus
from inventory.models import AdmissionRecord, Cluster
from inventory.services import cluster_clients
from tests.factories import make_interface, make_node, make_pod_attachment, make_user
from tests.integration.real_api_server import nad_api, real_api_server  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db


@pytest.fixture
def two(settings, tmp_path):
    settings.CLUSTER_NAME = "default"
    settings.KUBECONFIG = str(tmp_path / "absent-kubeconfig")  # the default cluster never answers
    settings.KUBE_TIMEOUT = 2.0
    cluster_clients.forget_cluster_reads()
    cache.clear()
    default = Cluster.objects.create(name="default")
    second = Cluster.objects.create(name="second", kubeconfig=str(tmp_path / "second-kubeconfig"))
    ours, theirs = make_node(default, name="node-a"), make_node(second, name="node-a")
    make_interface(ours, name="eth1", state="free")
    make_interface(theirs, name="eth1", state="free")
    make_interface(theirs, name="eth2", state="reserved")
    yield {"default": default, "second": second, "ours": ours, "theirs": theirs}
    cluster_clients.forget_cluster_reads()


@pytest.fixture
def signed_in(client):
    client.force_login(make_user("alice"))
    return client


def test_the_fleets_bars_and_node_links_name_the_cluster(two, signed_in):
    page = signed_in.get("/", {"per_page": 200})
    bars = {(bar.cluster, bar.node): bar.counts for bar in page.context["node_bars"]}
    assert bars == {
        ("default", "node-a"): {"free": 1, "reserved": 0, "pod": 0},
        ("second", "node-a"): {"free": 1, "reserved": 1, "pod": 0},
    }
    html = page.content.decode()
    assert 'data-testid="bar-second-node-a"' in html and 'data-testid="bar-default-node-a"' in html
    assert html.count('href="/nodes/node-a/?cluster=second"') == 3  # the bar and two rows
    assert html.count('href="/nodes/node-a/?cluster=default"') == 2
    assert 'href="/nodes/node-a/"' not in html


def test_the_node_page_asks_which_cluster_when_the_name_is_in_several(two, signed_in):
    chooser = signed_in.get("/nodes/node-a/")
    assert chooser.status_code == 200
    html = chooser.content.decode()
    assert 'data-testid="cluster-chooser"' in html
    assert 'href="/nodes/node-a/?cluster=default"' in html
    assert 'href="/nodes/node-a/?cluster=second"' in html
    assert "eth2" not in html  # no node's NICs shown until one is chosen
    theirs = signed_in.get("/nodes/node-a/", {"cluster": "second"})
    assert theirs.context["node"] == two["theirs"]
    assert 'data-testid="cluster-chooser"' not in theirs.content.decode()
    assert "eth2" in theirs.content.decode()
    assert signed_in.get("/nodes/node-a/", {"cluster": "nowhere"}).status_code == 404
    # A name in one cluster only needs no cluster.
    make_node(two["second"], name="node-b")
    assert signed_in.get("/nodes/node-b/").context["node"].cluster == two["second"]


def test_the_pod_picker_lists_every_clusters_pods_with_links_naming_the_cluster(two, signed_in):
    for node in (two["ours"], two["theirs"]):
        make_pod_attachment(
            node.interfaces.get(name="eth1"),
            namespace="ml",
            pod_name="trainer-0",
            status=AttachmentStatus.FAILED,
        )
    page = signed_in.get("/pods/")
    pods = {(pod.cluster, pod.namespace, pod.name) for pod in page.context["pods"]}
    assert pods == {("default", "ml", "trainer-0"), ("second", "ml", "trainer-0")}
    html = page.content.decode()
    assert 'href="/pods/ml/trainer-0/diagnosis/?cluster=second"' in html
    assert 'href="/nodes/node-a/?cluster=second"' in html
    assert '<td data-testid="cluster">default</td>' in html
    only = signed_in.get("/pods/", {"cluster": "second"}).context["pods"]
    assert [pod.cluster for pod in only] == ["second"]


@pytest.mark.slow  # a real kube-apiserver
def test_a_pod_is_diagnosed_from_its_own_clusters_api(two, signed_in, nad_api):  # noqa: F811
    second = two["second"]
    second.kubeconfig = str(nad_api.kubeconfig)
    second.save()
    namespace = f"diag-{uuid.uuid4().hex[:6]}"
    nad_api.ensure_namespace(namespace)
    nad_api.core.create_namespaced_pod(
        namespace,
        {
            "metadata": {
                "name": "web-0",
                "annotations": {"k8s.v1.cni.cncf.io/networks": f"{namespace}/fast@net1"},
            },
            "spec": {"containers": [{"name": "web", "image": "registry.invalid/web"}]},
        },
    )
    url = f"/api/v1/pods/{namespace}/web-0/diagnosis/"
    found = signed_in.get(url, {"cluster": "second"})
    assert found.status_code == 200, found.content
    body = found.json()
    assert body["cluster"] == "second"
    assert body["code"] not in ("CLUSTER_UNAVAILABLE", "POD_NOT_FOUND")
    assert (body["namespace"], body["pod"]) == (namespace, "web-0")
    # The same pod asked of the default cluster: its API does not answer, and it says which.
    default = signed_in.get(url).json()
    assert (default["cluster"], default["code"]) == ("default", "CLUSTER_UNAVAILABLE")
    assert f"could not read pod {namespace}/web-0 of cluster default" in default["explanation"]
    # A pod the second cluster does not have.
    missing = signed_in.get(f"/api/v1/pods/{namespace}/nope/diagnosis/", {"cluster": "second"})
    assert (missing.status_code, missing.json()["code"]) == (404, "POD_NOT_FOUND")
    # A cluster nobody registered, or two of them: 400 naming the parameter.
    unknown = signed_in.get(url, {"cluster": "nowhere"})
    assert unknown.status_code == 400
    assert unknown.json() == {
        "cluster": ["No cluster named 'nowhere'; the clusters are: default, second."]
    }
    twice = signed_in.get(f"{url}?cluster=second&cluster=default")
    assert twice.json() == {"cluster": ["Give this parameter once."]}

    page = signed_in.get(f"/pods/{namespace}/web-0/diagnosis/", {"cluster": "second"})
    assert page.status_code == 200
    assert page.context["result"].code == body["code"]
    html = page.content.decode()
    assert f'href="/pods/{namespace}/web-0/diagnosis/?cluster=second"' in html
    assert "cluster second" in html
    assert signed_in.get(f"/pods/{namespace}/web-0/diagnosis/?cluster=nowhere").status_code == 400


def test_the_admission_page_says_which_clusters_api_server_sent_each_review(two, signed_in):
    fields = {"resource": "pods", "namespace": "ml", "codes": "NIC_HELD", "enforced": True}
    fields |= {"operation": "CREATE", "message": "denied"}
    AdmissionRecord.objects.create(cluster="default", name="a-0", **fields)
    AdmissionRecord.objects.create(cluster="second", name="b-0", **fields)
    html = signed_in.get("/admission/").content.decode()
    assert '<span data-testid="record-cluster">cluster second</span>' in html
    assert '<span data-testid="record-cluster">cluster default</span>' in html
    only = signed_in.get("/admission/", {"cluster": "second"})
    assert [record.name for record in only.context["records"]] == ["b-0"]
