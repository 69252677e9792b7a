"""The pod `python -m lab pod create` sends, from its arguments and a file, and how it reads a
failure Event (no lab needed: tests/lab/test_lab_pod_cli.py runs the command on one)."""

from __future__ import annotations

import json

import pytest

from lab import multus
from lab.pods import PodError, failure_report, parse_network, pod_body, short_reason

NETWORKS = multus.NETWORKS_ANNOTATION


def test_a_bare_pod_gets_a_pause_container_the_node_and_its_networks():
    body = pod_body({}, "web", None, "node-b", ["eth1-net", "other/fast@ext"])
    assert body["apiVersion"] == "v1" and body["kind"] == "Pod"
    assert body["metadata"]["name"] == "web" and body["metadata"]["namespace"] == "default"
    assert body["spec"]["nodeName"] == "node-b"
    assert body["spec"]["containers"] == [{"image": "registry.invalid/pause:3.9", "name": "main"}]
    value = body["metadata"]["annotations"][NETWORKS]
    assert value == "eth1-net, other/fast@ext"
    # The lab's Multus reads it as meant.
    parsed = multus.parse_networks(value, "default")
    assert [(a.namespace, a.name, a.interface) for a in parsed] == [
        ("default", "eth1-net", None),
        ("other", "fast", "ext"),
    ]


def test_the_builders_snippet_keeps_its_placement_and_annotation():
    snippet = {
        "metadata": {"annotations": {NETWORKS: "default/eth1-net@fast0"}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": "node-c"}},
    }
    body = pod_body(snippet, "snip", None, None, [])
    assert body["spec"]["nodeSelector"] == {"kubernetes.io/hostname": "node-c"}
    assert "nodeName" not in body["spec"]
    assert body["metadata"]["annotations"] == {NETWORKS: "default/eth1-net@fast0"}
    assert snippet == {  # the file's document is not changed
        "metadata": {"annotations": {NETWORKS: "default/eth1-net@fast0"}},
        "spec": {"nodeSelector": {"kubernetes.io/hostname": "node-c"}},
    }


def test_the_file_s_name_and_namespace_unless_given_and_its_containers_get_an_image():
    manifest = {
        "metadata": {"name": "from-file", "namespace": "team-a"},
        "spec": {"containers": [{"name": "app"}, {"name": "side", "image": "x:1"}]},
    }
    body = pod_body(manifest, None, None, None, [])
    assert (body["metadata"]["name"], body["metadata"]["namespace"]) == ("from-file", "team-a")
    assert [c["image"] for c in body["spec"]["containers"]] == [
        "registry.invalid/pause:3.9",
        "x:1",
    ]
    body = pod_body(manifest, "other", "team-b", None, [])
    assert (body["metadata"]["name"], body["metadata"]["namespace"]) == ("other", "team-b")


def test_networks_are_added_in_the_form_the_file_wrote():
    as_json = {"metadata": {"annotations": {NETWORKS: json.dumps([{"name": "a"}])}}}
    value = pod_body(as_json, "p", None, None, ["ns/b@net7"])["metadata"]["annotations"][NETWORKS]
    assert json.loads(value) == [
        {"name": "a"},
        {"name": "b", "namespace": "ns", "interface": "net7"},
    ]
    short = {"metadata": {"annotations": {NETWORKS: "a@x"}}}
    value = pod_body(short, "p", None, None, ["b"])["metadata"]["annotations"][NETWORKS]
    assert value == "a@x, b"


@pytest.mark.parametrize(
    ("name", "namespace", "networks", "message"),
    [
        ("Web", None, [], "pod name 'Web'"),
        ("web_1", None, [], "pod name 'web_1'"),
        ("x" * 254, None, [], "at most 253"),
        ("web", "Team", [], "namespace 'Team'"),
        ("web", "t" * 64, [], "at most 63"),
        (None, None, [], "name the pod"),
        ("web", None, ["a/b/c"], "--network 'a/b/c'"),
        ("web", None, ["Bad_NAD"], "'Bad_NAD' is not a NetworkAttachmentDefinition name"),
        ("web", None, ["Bad_NS/nad"], "'Bad_NS' is not a namespace name"),
        ("web", None, ["nad@has space"], "interface 'has space'"),
        ("web", None, ["nad@sixteen-chars-xy"], "1-15 characters"),
    ],
)
def test_bad_names_are_refused_with_the_rule(name, namespace, networks, message):
    with pytest.raises(PodError) as raised:
        pod_body({}, name, namespace, None, networks)
    assert message in str(raised.value)
    assert "\n" not in str(raised.value)


def test_parse_network_forms():
    assert parse_network("nad") == {"name": "nad"}
    assert parse_network("ns/nad") == {"name": "nad", "namespace": "ns"}
    assert parse_network(" nad@net1 ") == {"name": "nad", "interface": "net1"}


SANDBOX = (
    "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network for"
    ' sandbox "abc": plugin type="multus" name="multus-cni-network" failed (add):'
    ' [default/web/1234:macvlan-conf]: error adding container to network "macvlan-conf":'
    " failed to move link file exists"
)


def test_the_reason_is_multus_and_the_plugins_words():
    assert short_reason(SANDBOX) == (
        'error adding container to network "macvlan-conf": failed to move link file exists'
    )
    assert short_reason("0/3 nodes are available") == "0/3 nodes are available"


def test_a_failure_report_leads_with_the_reason_and_says_what_now():
    pod = {"metadata": {"name": "web", "namespace": "team-a"}, "spec": {"nodeName": "node-b"}}
    event = {"reason": "FailedCreatePodSandBox", "message": SANDBOX}
    first, whole, hint = failure_report(pod, event).splitlines()
    assert first == (
        'pod team-a/web failed on node-b: error adding container to network "macvlan-conf":'
        " failed to move link file exists"
    )
    assert whole == f"  FailedCreatePodSandBox: {SANDBOX}"
    assert hint == (
        "  the pod stays (the kubelet retries it); `python -m lab pod delete web -n team-a`"
        " removes it"
    )
