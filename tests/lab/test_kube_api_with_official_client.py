"""The portal's cluster.py uses the official client against the lab's real kube-apiserver: every
call it needs works there (the selector tests at the end are for KMock's emulator, which the
fast unit tests of cluster.py still use)."""

from __future__ import annotations

import json
import subprocess

import pytest
from kubernetes import client, watch

from lab.kube_api import AGENT_LABELS, AGENT_NAMESPACE, object_matches, selector_matches

pytestmark = pytest.mark.lab

NAD = ("k8s.cni.cncf.io", "v1")


def test_it_lists_the_lab_nodes_with_their_internal_ips(lab):
    nodes = client.CoreV1Api(lab.kube()).list_node().items
    found = {
        n.metadata.name: [a.address for a in n.status.addresses if a.type == "InternalIP"]
        for n in nodes
    }
    assert found == {node.name: [node.internal_ip] for node in lab.nodes}
    assert all(n.metadata.labels["nicportal.io/veth-nics"] == "true" for n in nodes)
    assert all(c.status == "True" for n in nodes for c in n.status.conditions if c.type == "Ready")


def test_it_lists_the_agent_pods_in_all_namespaces_with_host_ip_and_port(lab):
    selector = ",".join(f"{k}={v}" for k, v in AGENT_LABELS.items())
    pods = client.CoreV1Api(lab.kube()).list_pod_for_all_namespaces(label_selector=selector)
    by_node = {
        p.spec.node_name: (p.metadata.namespace, p.status.host_ip, p.spec.containers[0].ports[0])
        for p in pods.items
    }
    assert set(by_node) == {node.name for node in lab.nodes}
    for node in lab.nodes:
        namespace, host_ip, port = by_node[node.name]
        assert namespace == AGENT_NAMESPACE
        assert node.agent_url == f"http://{host_ip}:{port.host_port}"
        assert port.name == "agent"


def test_it_filters_pod_lists_by_label_and_field_selectors(lab):
    core = client.CoreV1Api(lab.kube())
    assert (
        core.list_pod_for_all_namespaces(label_selector="app.kubernetes.io/name=nope").items == []
    )
    on_b = core.list_pod_for_all_namespaces(field_selector="spec.nodeName=node-b").items
    assert [p.spec.node_name for p in on_b] == ["node-b"]


def test_it_creates_gets_lists_and_deletes_nad_custom_objects(clean_lab):
    custom = client.CustomObjectsApi(clean_lab.kube())
    body = {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": "hd-eth2", "namespace": "default"},
        "spec": {"config": json.dumps({"cniVersion": "0.3.1", "type": "host-device"})},
    }
    created = custom.create_namespaced_custom_object(
        *NAD, "default", "network-attachment-definitions", body
    )
    assert created["metadata"]["uid"]
    fetched = custom.get_namespaced_custom_object(
        *NAD, "default", "network-attachment-definitions", "hd-eth2"
    )
    assert fetched["spec"] == body["spec"]
    everywhere = custom.list_cluster_custom_object(*NAD, "network-attachment-definitions")
    assert [i["metadata"]["name"] for i in everywhere["items"]] == ["hd-eth2"]
    custom.delete_namespaced_custom_object(
        *NAD, "default", "network-attachment-definitions", "hd-eth2"
    )
    listed = custom.list_namespaced_custom_object(*NAD, "default", "network-attachment-definitions")
    assert listed["items"] == []


def test_it_answers_409_to_a_second_nad_of_the_same_name(clean_lab):
    clean_lab.create_nad("default", "twice", {"type": "host-device", "device": "eth1"})
    with pytest.raises(client.ApiException) as caught:
        clean_lab.create_nad("default", "twice", {"type": "host-device", "device": "eth1"})
    assert caught.value.status == 409


def test_it_patches_a_node_annotation_and_keeps_the_rest(lab):
    core = client.CoreV1Api(lab.kube())
    core.patch_node("node-c", {"metadata": {"annotations": {"nicportal.io/test": "yes"}}})
    node = core.read_node("node-c")
    assert node.metadata.annotations["nicportal.io/test"] == "yes"
    assert node.metadata.labels["kubernetes.io/hostname"] == "node-c"
    core.patch_node("node-c", {"metadata": {"annotations": {"nicportal.io/test": None}}})
    assert "nicportal.io/test" not in (core.read_node("node-c").metadata.annotations or {})


def test_it_lists_events_including_an_empty_namespace(lab):
    core = client.CoreV1Api(lab.kube())
    assert core.list_namespaced_event("nowhere").items == []
    assert isinstance(core.list_event_for_all_namespaces().items, list)


def test_it_serves_version_and_nad_discovery(lab):
    assert client.VersionApi(lab.kube()).get_code().major == "1"
    groups = client.ApisApi(lab.kube()).get_api_versions().groups
    assert "k8s.cni.cncf.io" in [g.name for g in groups]


def test_it_streams_node_watch_events(lab):
    stream = watch.Watch().stream(client.CoreV1Api(lab.kube()).list_node, timeout_seconds=5)
    first = next(stream)
    assert first["type"] == "ADDED"
    assert first["object"].metadata.name in {n.name for n in lab.nodes}


def test_it_is_a_real_api_server_with_rbac_and_the_nad_crd(lab):
    info = client.VersionApi(lab.kube()).get_code()
    assert info.git_version == "v1.37.2"
    crd = client.ApiextensionsV1Api(lab.kube()).read_custom_resource_definition(
        "network-attachment-definitions.k8s.cni.cncf.io"
    )
    assert {c.type: c.status for c in crd.status.conditions}["Established"] == "True"
    roles = client.RbacAuthorizationV1Api(lab.kube()).read_cluster_role("multus")
    assert any("pods/status" in rule.resources for rule in roles.rules)


def test_kubectl_lists_the_nodes_as_ready(lab):
    done = subprocess.run(
        ["kubectl", "--kubeconfig", str(lab.kubeconfig), "get", "nodes", "--no-headers"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line.split()[1:] for line in done.stdout.splitlines()}
    assert set(rows) == {node.name for node in lab.nodes}
    assert all(row[0] == "Ready" and row[-1] == "v1.37.2" for row in rows.values())


def test_a_stale_status_write_gets_409_conflict(clean_lab):
    """The conflict Multus' retry loop exists for: a PUT with an old resourceVersion."""
    core = client.CoreV1Api(clean_lab.kube())
    clean_lab.create_pod("default", "conflict", "node-c")
    stale = core.read_namespaced_pod("conflict", "default")
    core.patch_namespaced_pod("conflict", "default", {"metadata": {"labels": {"x": "1"}}})
    with pytest.raises(client.ApiException) as caught:
        core.replace_namespaced_pod_status("conflict", "default", stale)
    assert caught.value.status == 409


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("a=b", {"a": "b"}, True),
        ("a==b", {"a": "c"}, False),
        ("a!=b", {}, True),
        ("a", {"a": ""}, True),
        ("!a", {"a": "x"}, False),
        ("a in (x, y),b", {"a": "y", "b": "1"}, True),
        ("a notin (x,y)", {"a": "x"}, False),
    ],
)
def test_it_evaluates_label_selectors_like_the_api_server(selector, labels, expected):
    assert selector_matches(selector, labels) is expected


def test_it_compares_missing_fields_as_empty_strings():
    assert object_matches({"spec": {}}, {"fieldSelector": "spec.nodeName="})
    assert not object_matches({"spec": {"nodeName": "a"}}, {"fieldSelector": "spec.nodeName=b"})
