"""choose_agents on plain objects: which pod is each node's agent, and why every other pod that
looks like one is not (the KMock tests in tests/integration/test_cluster_client.py run the same
rules through the client)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from inventory.clients.cluster import LabelSelector
from inventory.clients.cluster_objects import (
    NodeInfo,
    OwnerReference,
    PodInfo,
    choose_agents,
    node_from_json,
    pod_from_json,
)

SELECTOR = LabelSelector("app.kubernetes.io/name=nicportal-agent")
DAEMONSETS = {"nicportal": "ds-uid"}
OWNER = OwnerReference("apps/v1", "DaemonSet", "nicportal-agent", "ds-uid")


def node(name: str, *addresses: str) -> NodeInfo:
    return NodeInfo(name, addresses[:1], {}, {}, True, addresses)


def agent(name: str, on: str, ip: str, **changes) -> PodInfo:
    pod = PodInfo(
        namespace="nicportal",
        name=name,
        uid=f"uid-{name}",
        node_name=on,
        phase="Running",
        host_ip=ip,
        labels={"app.kubernetes.io/name": "nicportal-agent"},
        networks=(),
        networks_error="",
        network_status=(),
        network_status_error="",
        deletion_timestamp=None,
        annotations={},
        named_ports={"agent": 9410},
        pod_ip=ip,
        host_network=True,
        controller=OWNER,
    )
    return replace(pod, **changes)


def choose(pods, nodes=(node("n1", "10.0.0.1", "192.0.2.1"),), namespace="nicportal"):
    return choose_agents(
        pods,
        nodes,
        daemonsets=DAEMONSETS,
        namespace=namespace,
        daemonset="nicportal-agent",
        selector=SELECTOR,
        port_name="agent",
    )


def test_the_daemonsets_pod_on_a_node_address_is_that_nodes_agent():
    choice = choose([agent("a", "n1", "192.0.2.1")])
    assert choice.endpoints == {"n1": "http://192.0.2.1:9410"}
    assert choice.rogues == []


def test_an_ipv6_agent_address_is_bracketed():
    choice = choose([agent("a", "n1", "fd00::1")], nodes=[node("n1", "fd00::1")])
    assert choice.endpoints == {"n1": "http://[fd00::1]:9410"}


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"namespace": "zzz"}, "in namespace zzz, not the agents' namespace nicportal"),
        ({"controller": None}, "(no controller)"),
        (
            {"controller": replace(OWNER, kind="ReplicaSet", name="evil")},
            "controlled by ReplicaSet evil, not by the DaemonSet nicportal/nicportal-agent",
        ),
        ({"controller": replace(OWNER, uid="copied")}, "with another uid (copied)"),
        ({"host_network": False}, "hostNetwork is not true"),
        ({"pod_ip": "10.9.9.9"}, "pod IP 10.9.9.9 is none of node n1's addresses"),
        ({"pod_ip": ""}, "pod IP (none) is none of node n1's addresses"),
        ({"node_name": "ghost"}, "on node ghost, which the API does not list"),
        ({"named_ports": {"metrics": 1}}, "no container port named agent"),
    ],
)
def test_any_other_lookalike_is_a_rogue_with_its_reason(changes, reason):
    rogue_pod = agent("rogue", "n1", "10.0.0.1", **changes)
    choice = choose([rogue_pod])
    assert choice.endpoints == {}
    assert len(choice.rogues) == 1
    assert reason in choice.rogues[0].reason
    assert choice.rogues[0].key == f"{rogue_pod.namespace}/rogue"


def test_a_daemonset_that_does_not_exist_makes_no_agent():
    choice = choose_agents(
        [agent("a", "n1", "10.0.0.1")],
        [node("n1", "10.0.0.1")],
        daemonsets={},
        namespace="nicportal",
        daemonset="nicportal-agent",
        selector=SELECTOR,
        port_name="agent",
    )
    assert choice.endpoints == {}
    assert "the DaemonSet nicportal/nicportal-agent it names does not exist" in (
        choice.rogues[0].reason
    )


def test_pods_not_running_or_not_matching_the_selector_are_neither_agents_nor_rogues():
    pods = [
        agent("pending", "n1", "10.0.0.1", phase="Pending"),
        agent("unscheduled", "", "10.0.0.1"),
        agent("other-app", "n1", "10.0.0.1", labels={"app": "web"}, namespace="zzz"),
    ]
    choice = choose(pods)
    assert choice.endpoints == {}
    assert choice.rogues == []


def test_a_rollout_caught_mid_way_always_picks_the_same_pod():
    pods = [agent("b", "n1", "10.0.0.1"), agent("a", "n1", "10.0.0.1", named_ports={"agent": 1})]
    assert choose(pods).endpoints == {"n1": "http://10.0.0.1:1"}
    assert choose(list(reversed(pods))).endpoints == {"n1": "http://10.0.0.1:1"}


def test_an_empty_namespace_accepts_the_daemonset_of_any_namespace():
    pod = agent("a", "n1", "10.0.0.1", namespace="dev")
    choice = choose_agents(
        [pod],
        [node("n1", "10.0.0.1")],
        daemonsets={"dev": "ds-uid"},
        namespace="",
        daemonset="nicportal-agent",
        selector=SELECTOR,
        port_name="agent",
    )
    assert choice.endpoints == {"n1": "http://10.0.0.1:9410"}


def test_the_parsers_read_what_choose_agents_needs():
    parsed_node = node_from_json(
        {
            "metadata": {"name": "n1"},
            "status": {
                "addresses": [
                    {"type": "InternalIP", "address": "10.0.0.1"},
                    {"type": "ExternalIP", "address": "192.0.2.1"},
                    {"type": "Hostname", "address": "n1"},
                ]
            },
        }
    )
    assert parsed_node.internal_ips == ("10.0.0.1",)
    assert parsed_node.addresses == ("10.0.0.1", "192.0.2.1")
    parsed_pod = pod_from_json(
        {
            "metadata": {
                "namespace": "nicportal",
                "name": "a",
                "ownerReferences": [
                    {"kind": "Node", "name": "n1", "uid": "x"},
                    {
                        "apiVersion": "apps/v1",
                        "kind": "DaemonSet",
                        "name": "nicportal-agent",
                        "uid": "ds-uid",
                        "controller": True,
                    },
                ],
            },
            "spec": {"hostNetwork": True, "nodeName": "n1"},
            "status": {"podIP": "10.0.0.1", "phase": "Running"},
        }
    )
    assert parsed_pod.controller == OWNER
    assert parsed_pod.host_network is True
    assert parsed_pod.pod_ip == "10.0.0.1"
