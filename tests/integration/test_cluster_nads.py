"""NADs act on their NICs' own cluster: the default cluster (its kubeconfig points nowhere, so a
NAD sent there would fail) and `second`, registered with the kubeconfig of a real kube-apiserver
with the NAD CRD (tests/integration/real_api_server.py). Both have a node `node-a` with an
`ens1f0`: a NAD built by names, or by ids, lands in the cluster it names and nowhere else;
NICs of two clusters in one NAD are refused; the namespace rule still holds."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from inventory.models import Cluster, NetworkAttachment, TeamNamespace
from inventory.services import cluster_clients
from tests.api.builders import make_free_interface, make_node, make_team, make_user, token_for
from tests.integration.real_api_server import nad_api, real_api_server  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.django_db, pytest.mark.slow]  # a real kube-apiserver


@pytest.fixture
def world(nad_api, settings):  # noqa: F811 (the fixture imported above)
    settings.CLUSTER_NAME = "default"
    settings.KUBECONFIG = "/nonexistent/kubeconfig"  # the default cluster never answers
    settings.MULTUS_VERSION = ""
    cluster_clients.forget_cluster_reads()
    nad_api.ensure_namespace("netlab")
    default = Cluster.objects.create(name="default")
    second = Cluster.objects.create(name="second", kubeconfig=str(nad_api.kubeconfig))
    ours = make_free_interface(make_node("node-a", cluster=default), "ens1f0")
    theirs = make_free_interface(
        make_node("node-a", cluster=second), "ens1f0", mac="02:00:00:00:0b:01"
    )
    team = make_team("netlab")
    TeamNamespace.objects.create(team=team, pattern="netlab")
    member = APIClient()
    member.credentials(HTTP_AUTHORIZATION=f"Token {token_for(make_user('mia', team))}")
    yield {"api": nad_api, "ours": ours, "theirs": theirs, "client": member, "second": second}
    cluster_clients.forget_cluster_reads()


def post(world, action: str, **body):
    body.setdefault("namespace", "netlab")
    body.setdefault("name", f"nad-{uuid.uuid4().hex[:8]}")
    return body["name"], world["client"].post(f"/api/v1/nads/{action}/", body, format="json")


def test_a_nic_of_the_second_cluster_is_applied_into_the_second_clusters_api(world):
    name, answer = post(world, "apply", interfaces=[world["theirs"].pk])
    assert answer.status_code == 201, answer.content
    assert answer.json()[0]["cluster"] == "second"
    assert world["api"].has_nad("netlab", name)
    row = NetworkAttachment.objects.get(name=name)
    assert row.cluster == world["second"]
    # The list shows and filters by the cluster.
    listed = world["client"].get("/api/v1/nads/", {"cluster": "second"}).json()["results"]
    assert [(r["cluster"], r["name"]) for r in listed] == [("second", name)]
    assert world["client"].get("/api/v1/nads/", {"cluster": "default"}).json()["results"] == []


def test_names_are_looked_up_in_the_cluster_the_request_names(world):
    # The same node/NIC name in both clusters: `cluster` says which one.
    body = {"interfaces": ["node-a/ens1f0"], "cluster": "second", "selector": "hwaddr"}
    answer = post(world, "render", **body)[1]
    assert answer.status_code == 200, answer.content
    assert '"hwaddr": "02:00:00:00:0b:01"' in answer.json()["nads"][0]["config_json"]
    name, applied = post(world, "apply", interfaces=["node-a/ens1f0"], cluster="second")
    assert applied.status_code == 201, applied.content
    assert world["api"].has_nad("netlab", name)
    # Without `cluster`, a name means the default cluster's NIC, and applying it tries the
    # default cluster's API (which does not answer here): 503, nothing created in the second.
    name, refused = post(world, "apply", interfaces=["node-a/ens1f0"])
    assert refused.status_code == 503, refused.content
    assert not world["api"].has_nad("netlab", name)
    assert not NetworkAttachment.objects.filter(name=name).exists()


def test_nics_of_two_clusters_in_one_nad_are_a_400_naming_the_field_and_the_rule(world):
    for action in ("render", "validate", "apply"):
        name, answer = post(
            world, action, interfaces=[world["ours"].pk, world["theirs"].pk], selector="hwaddr"
        )
        assert answer.status_code == 400, answer.content
        assert answer.json() == {
            "interfaces": [
                "NICs of clusters default, second in one request: a NAD and the pods that use "
                "it live in one cluster; build one NAD per cluster."
            ]
        }
        assert not world["api"].has_nad("netlab", name)
    assert not NetworkAttachment.objects.exists()


def test_a_nic_of_another_cluster_than_the_one_named_is_a_400_on_cluster(world):
    name, answer = post(world, "apply", interfaces=[world["theirs"].pk], cluster="default")
    assert answer.status_code == 400
    assert answer.json() == {
        "cluster": [
            "node-a/ens1f0 is not a NIC of cluster default but of cluster second: a NAD uses "
            "the NICs of its own cluster."
        ]
    }
    answer = post(world, "render", interfaces=["node-a/ens1f0"], cluster="nowhere")[1]
    assert answer.status_code == 400
    assert answer.json() == {
        "cluster": ["No cluster named 'nowhere'; the clusters are: default, second."]
    }
    assert not world["api"].has_nad("netlab", name)


def test_the_namespace_rule_still_holds_in_the_second_cluster(world):
    name, answer = post(world, "apply", interfaces=[world["theirs"].pk], namespace="default")
    assert answer.status_code == 403
    assert answer.json()["detail"].startswith(
        "Team netlab may not apply a NAD into namespace default:"
    )
    assert not world["api"].has_nad("default", name)
    assert not NetworkAttachment.objects.exists()


def test_the_builder_offers_the_nics_of_the_chosen_cluster_and_applies_there(world, client):
    client.force_login(make_user("sam", is_staff=True))
    ours, theirs = world["ours"], world["theirs"]
    page = client.get("/nads/new/", {"cluster": "second"}).content.decode()
    assert 'data-testid="nad-cluster"' in page
    assert f'data-testid="iface-{theirs.pk}"' in page
    assert f'data-testid="iface-{ours.pk}"' not in page
    assert '<input type="hidden" name="cluster" value="second">' in page
    default_page = client.get("/nads/new/").content.decode()
    assert f'data-testid="iface-{ours.pk}"' in default_page
    assert f'data-testid="iface-{theirs.pk}"' not in default_page
    nowhere = client.get("/nads/new/", {"cluster": "nowhere"}).content.decode()
    assert "No cluster named nowhere: no NIC is offered." in nowhere
    assert 'data-testid="iface-' not in nowhere
    # A NIC given by id brings its own cluster.
    prefilled = client.get("/nads/new/", {"interface": theirs.pk}).content.decode()
    assert '<input type="hidden" name="cluster" value="second">' in prefilled

    form = {"cluster": "second", "interfaces": [theirs.pk], "namespace": "netlab", "name": "b1"}
    form |= {"selector": "auto", "pod_interface": "net1", "cni_version": "auto"}
    applied = client.post("/nads/apply/", {**form, "ipam_type": "none"})
    assert applied.status_code == 302, applied.content.decode()[:2000]
    assert world["api"].has_nad("netlab", "b1")
    assert NetworkAttachment.objects.get(name="b1").cluster == world["second"]
    # The default cluster's NIC posted with the second cluster is not offered: refused.
    refused = client.post("/nads/apply/", {**form, "interfaces": [ours.pk], "name": "b2"})
    assert "is not free (nor reserved by your team)" in refused.content.decode()
    assert not world["api"].has_nad("netlab", "b2")

    listing = client.get("/nads/", {"cluster": "second"}).content.decode()
    assert '<td data-testid="cluster">second</td>' in listing
    assert '<option value="second" selected>second</option>' in listing
    assert client.get("/nads/", {"cluster": "default"}).context["attachments"].count() == 0


def test_the_lint_page_checks_against_the_chosen_clusters_inventory(world, client):
    client.force_login(make_user("sam", is_staff=True))
    manifest = (
        "apiVersion: k8s.cni.cncf.io/v1\nkind: NetworkAttachmentDefinition\n"
        "metadata: {name: x, namespace: netlab}\n"
        'spec: {config: \'{"cniVersion": "0.3.1", "type": "host-device", '
        '"hwaddr": "02:00:00:00:0b:01"}\'}\n'
    )
    codes = {}
    for cluster in ("default", "second"):
        answer = client.post("/nads/lint/", {"manifest": manifest, "cluster": cluster})
        codes[cluster] = {f.code for f in answer.context["findings"]}
    # The MAC is a NIC of the second cluster only.
    assert codes["default"] != codes["second"]
    refused = client.post("/nads/lint/", {"manifest": manifest, "cluster": "nowhere"})
    assert refused.context["findings"] is None
    assert "Select a valid choice" in refused.content.decode()
