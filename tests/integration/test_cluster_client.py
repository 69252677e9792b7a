"""ClusterClient against a real HTTP Kubernetes API: KMock's emulator on 127.0.0.1.

The emulator runs in its own event loop on a background thread, so the client under test makes
ordinary blocking HTTP calls exactly as it does in production. Two gaps of KMock 0.8 are bridged
here: create answers 201 (the real API server's code) and
`/version/` has a route. Selectors are ignored by KMock, which is what proves that cluster.py
filters on its own side too.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import kmock
import pytest
import yaml

from inventory.clients.cluster import (
    ClusterClient,
    ClusterError,
    LabelSelector,
    NadExists,
    NotFound,
)

NAD = "k8s.cni.cncf.io/v1/network-attachment-definitions"
RESOURCES = {
    "v1/nodes": {"kind": "Node", "namespaced": False},
    "v1/pods": {"kind": "Pod", "namespaced": True},
    "v1/events": {"kind": "Event", "namespaced": True},
    "apps/v1/daemonsets": {"kind": "DaemonSet", "namespaced": True},
    NAD: {"kind": "NetworkAttachmentDefinition", "namespaced": True},
}


class KMockThread:
    """KMock's KubernetesEmulator served over HTTP from a private event loop thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.emulator = kmock.KubernetesEmulator()
        for resource, info in RESOURCES.items():
            self.emulator.resources[resource] = info

        async def created(request: kmock.Request) -> kmock.Response:
            # The emulator stores the object in its own _handle(); answer it with a 201.
            return kmock.Response(status=201, payload=await self.emulator._serve_create(request))

        self.emulator[kmock.action.CREATE] << created
        self.emulator["get /version/"] << {"major": "1", "minor": "31", "gitVersion": "v1.31.0"}
        self.server = kmock.Server(self.emulator)

    def start(self) -> None:
        self.thread.start()
        self._run(self.emulator.__aenter__())
        self._run(self.server.__aenter__())

    def stop(self) -> None:
        self._run(self.server.__aexit__(None, None, None))
        self._run(self.emulator.__aexit__(None, None, None))
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()

    def _run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout=10)

    @property
    def url(self) -> str:
        return str(self.server.url).rstrip("/")

    def put(self, resource: str, namespace: str | None, name: str, obj: dict) -> None:
        obj = {**obj, "metadata": {**obj.get("metadata", {}), "name": name}}
        if namespace is not None:
            obj["metadata"]["namespace"] = namespace
        self.emulator.objects[resource, namespace, name] = obj

    def stored(self, resource: str, namespace: str | None, name: str) -> dict:
        return self.emulator.objects[resource, namespace, name].raw


def write_kubeconfig(path: Path, server: str, token: str = "test-token") -> str:
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "lab", "cluster": {"server": server}}],
        "users": [{"name": "portal", "user": {"token": token}}],
        "contexts": [{"name": "lab", "context": {"cluster": "lab", "user": "portal"}}],
        "current-context": "lab",
    }
    path.write_text(yaml.safe_dump(kubeconfig))
    return str(path)


@pytest.fixture(scope="module")
def kube() -> Iterator[KMockThread]:
    emulator = KMockThread()
    emulator.start()
    yield emulator
    emulator.stop()


@pytest.fixture
def api(kube: KMockThread) -> KMockThread:
    kube.emulator.objects.clear()
    return kube


@pytest.fixture
def cluster(api: KMockThread, tmp_path: Path) -> Iterator[ClusterClient]:
    client = ClusterClient(kubeconfig=write_kubeconfig(tmp_path / "kubeconfig", api.url))
    yield client
    client.close()


def node(internal_ips: list[str], *, ready: bool = True, **metadata) -> dict:
    addresses = [{"type": "Hostname", "address": "ignored"}]
    addresses += [{"type": "InternalIP", "address": ip} for ip in internal_ips]
    addresses += [{"type": "ExternalIP", "address": "203.0.113.9"}]
    conditions = [
        {"type": "MemoryPressure", "status": "False"},
        {"type": "Ready", "status": "True" if ready else "False"},
    ]
    return {"metadata": metadata, "status": {"addresses": addresses, "conditions": conditions}}


def pod(
    node_name: str = "node-a",
    *,
    annotations: dict | None = None,
    labels: dict | None = None,
    phase: str = "Running",
    host_ip: str = "10.0.0.11",
    ports: list | None = None,
    **metadata,
) -> dict:
    return {
        "metadata": {
            "uid": "uid-" + node_name,
            "annotations": annotations or {},
            "labels": labels or {},
            **metadata,
        },
        "spec": {"nodeName": node_name, "containers": [{"name": "main", "ports": ports or []}]},
        "status": {"phase": phase, "hostIP": host_ip},
    }


# --- nodes ---------------------------------------------------------------------------------------


def test_it_lists_nodes_with_their_internal_ips_and_readiness(api, cluster):
    api.put("v1/nodes", None, "node-a", node(["10.0.0.11", "fd00::11"], labels={"zone": "a"}))
    api.put("v1/nodes", None, "node-b", node(["10.0.0.12"], ready=False))

    nodes = {n.name: n for n in cluster.list_nodes()}

    assert nodes["node-a"].internal_ips == ("10.0.0.11", "fd00::11")
    assert nodes["node-a"].labels == {"zone": "a"}
    assert nodes["node-a"].ready is True
    assert nodes["node-b"].internal_ips == ("10.0.0.12",)
    assert nodes["node-b"].ready is False


def test_it_sets_and_removes_a_node_annotation_without_touching_the_others(api, cluster):
    api.put("v1/nodes", None, "node-a", node(["10.0.0.11"], annotations={"keep": "me"}))

    cluster.set_node_annotation("node-a", "nicportal.io/seen", "2024-05-01")
    assert api.stored("v1/nodes", None, "node-a")["metadata"]["annotations"] == {
        "keep": "me",
        "nicportal.io/seen": "2024-05-01",
    }

    cluster.set_node_annotation("node-a", "nicportal.io/seen", None)
    assert api.stored("v1/nodes", None, "node-a")["metadata"]["annotations"] == {"keep": "me"}
    patch = [r for r in api.emulator._requests if r.method == "PATCH"][-1]
    assert patch.headers["Content-Type"] == "application/merge-patch+json"


def test_it_reports_a_missing_node_on_annotation_as_not_found(api, cluster):
    with pytest.raises(NotFound, match="patch node ghost: not found"):
        cluster.set_node_annotation("ghost", "k", "v")


# --- pods and Multus annotations -----------------------------------------------------------------


def test_it_reads_both_forms_of_the_networks_annotation(api, cluster):
    short = {"k8s.v1.cni.cncf.io/networks": "lab/uplink@data0, local"}
    as_json = {
        "k8s.v1.cni.cncf.io/networks": json.dumps(
            [
                {
                    "name": "uplink",
                    "namespace": "lab",
                    "interface": "data1",
                    "mac": "02:00:00:00:00:01",
                }
            ]
        )
    }
    api.put("v1/pods", "team-a", "short", pod(annotations=short))
    api.put("v1/pods", "team-b", "json", pod(annotations=as_json))

    pods = {p.name: p for p in cluster.list_pods()}

    short_pod = pods["short"]
    assert [(s.namespace, s.name, s.interface) for s in short_pod.networks] == [
        ("lab", "uplink", "data0"),
        ("team-a", "local", "net2"),
    ]
    assert short_pod.networks_error == ""
    assert short_pod.node_name == "node-a"
    assert short_pod.phase == "Running"
    assert short_pod.uid == "uid-node-a"
    (selection,) = pods["json"].networks
    assert (selection.namespace, selection.interface, selection.mac) == (
        "lab",
        "data1",
        "02:00:00:00:00:01",
    )


def test_it_reports_malformed_annotations_per_pod_without_failing_the_listing(api, cluster):
    api.put("v1/pods", "ns", "bad-networks", pod(annotations={"k8s.v1.cni.cncf.io/networks": "[{"}))
    api.put(
        "v1/pods",
        "ns",
        "bad-status",
        pod(annotations={"k8s.v1.cni.cncf.io/network-status": '[{"name": "a", "mtu": "x"}]'}),
    )
    api.put("v1/pods", "ns", "fine", pod(annotations={"k8s.v1.cni.cncf.io/networks": "a"}))

    pods = {p.name: p for p in cluster.list_pods()}

    assert pods["bad-networks"].networks == ()
    assert pods["bad-networks"].networks_error.startswith("networks: not valid JSON: ")
    assert pods["bad-status"].network_status == ()
    assert pods["bad-status"].network_status_error == (
        'network-status: element 1: "mtu" must be an integer, got a string'
    )
    assert pods["fine"].networks[0].name == "a"
    assert pods["fine"].networks_error == pods["fine"].network_status_error == ""


def test_it_reads_network_status_and_falls_back_to_the_deprecated_key(api, cluster):
    current = [{"name": "lab/uplink", "interface": "net1", "mac": "02:AA:00:00:00:01"}]
    deprecated = [{"name": "lab/old", "interface": "net1", "mac": "02:bb:00:00:00:02"}]
    api.put(
        "v1/pods",
        "ns",
        "both",
        pod(
            annotations={
                "k8s.v1.cni.cncf.io/network-status": json.dumps(current),
                "k8s.v1.cni.cncf.io/networks-status": json.dumps(deprecated),
            }
        ),
    )
    api.put(
        "v1/pods",
        "ns",
        "multus-v3",
        pod(annotations={"k8s.v1.cni.cncf.io/networks-status": json.dumps(deprecated)}),
    )

    pods = {p.name: p for p in cluster.list_pods()}

    assert [(s.name, s.mac) for s in pods["both"].network_status] == [
        ("lab/uplink", "02:aa:00:00:00:01")
    ]
    assert [s.name for s in pods["multus-v3"].network_status] == ["lab/old"]


def test_it_gets_one_pod_with_its_deletion_timestamp(api, cluster):
    api.put("v1/pods", "ns", "going", pod(deletionTimestamp="2024-05-01T10:00:00Z"))

    found = cluster.get_pod("ns", "going")

    assert found.key == "ns/going"
    assert found.deletion_timestamp is not None
    assert found.deletion_timestamp.isoformat() == "2024-05-01T10:00:00+00:00"


def test_it_reports_a_missing_pod_as_not_found(api, cluster):
    with pytest.raises(NotFound, match="get pod ns/ghost: not found"):
        cluster.get_pod("ns", "ghost")


# --- NADs ----------------------------------------------------------------------------------------

CONFIG = json.dumps(
    {"cniVersion": "0.3.1", "name": "uplink", "type": "host-device", "device": "eth1"}
)


def test_it_creates_gets_lists_and_deletes_a_nad(api, cluster):
    created = cluster.create_nad(
        namespace="lab",
        name="uplink",
        config=CONFIG,
        annotations={"k8s.v1.cni.cncf.io/resourceName": "intel.com/sriov"},
        labels={"app.kubernetes.io/managed-by": "nicportal"},
    )
    assert (created.namespace, created.name, created.config) == ("lab", "uplink", CONFIG)
    assert created.resource_name == "intel.com/sriov"
    stored = api.stored(NAD, "lab", "uplink")
    assert stored["kind"] == "NetworkAttachmentDefinition"
    assert stored["spec"] == {"config": CONFIG}

    assert cluster.get_nad("lab", "uplink").labels == {"app.kubernetes.io/managed-by": "nicportal"}
    assert [(n.namespace, n.name) for n in cluster.list_nads()] == [("lab", "uplink")]

    cluster.delete_nad("lab", "uplink")
    assert cluster.list_nads() == []
    with pytest.raises(NotFound):
        cluster.get_nad("lab", "uplink")


def test_it_refuses_to_overwrite_an_existing_nad(api, cluster):
    cluster.create_nad(namespace="lab", name="uplink", config=CONFIG)

    with pytest.raises(NadExists, match="lab/uplink already exists; it was left unchanged"):
        cluster.create_nad(namespace="lab", name="uplink", config='{"other": true}')

    assert api.stored(NAD, "lab", "uplink")["spec"]["config"] == CONFIG


def test_it_reports_deleting_a_missing_nad_as_not_found(api, cluster):
    with pytest.raises(NotFound, match="delete NetworkAttachmentDefinition lab/ghost"):
        cluster.delete_nad("lab", "ghost")


def test_it_shows_a_nad_config_that_is_not_a_string_as_json(api, cluster):
    api.put(NAD, "lab", "odd", {"spec": {"config": {"type": "host-device"}}})
    (nad,) = cluster.list_nads()
    assert json.loads(nad.config) == {"type": "host-device"}


# --- events --------------------------------------------------------------------------------------


def event(pod_name: str, reason: str, message: str, *, kind: str = "Pod", **fields) -> dict:
    return {
        "involvedObject": {"kind": kind, "namespace": "ns", "name": pod_name},
        "reason": reason,
        "message": message,
        "type": "Warning",
        **fields,
    }


def test_it_lists_only_sandbox_failures_of_pods(api, cluster):
    failure = "failed to move link file exists"
    api.put(
        "v1/events",
        "ns",
        "e1",
        event(
            "web", "FailedCreatePodSandBox", failure, count=4, lastTimestamp="2024-05-01T10:00:00Z"
        ),
    )
    api.put("v1/events", "ns", "e2", event("web", "Scheduled", "assigned"))
    api.put("v1/events", "ns", "e3", event("node-a", "FailedCreatePodSandBox", "x", kind="Node"))

    (found,) = cluster.list_sandbox_failures()

    assert (found.namespace, found.pod, found.message, found.count) == ("ns", "web", failure, 4)
    assert found.type == "Warning"
    assert found.last_seen.isoformat() == "2024-05-01T10:00:00+00:00"


def test_it_lists_the_events_of_one_pod_oldest_first(api, cluster):
    api.put(
        "v1/events",
        "ns",
        "late",
        event("web", "Started", "b", lastTimestamp="2024-05-02T00:00:00Z"),
    )
    api.put(
        "v1/events", "ns", "early", event("web", "Pulled", "a", eventTime="2024-05-01T00:00:00Z")
    )
    api.put("v1/events", "ns", "other", event("db", "Started", "c"))
    api.put("v1/events", "ns", "undated-1", event("web", "Killing", "d"))
    api.put("v1/events", "ns", "undated-2", event("web", "Killing", "e"))
    api.put(
        "v1/events",
        "ns",
        "naive",
        event("web", "Created", "f", lastTimestamp="2024-05-01T12:00:00"),
    )

    events = cluster.pod_events("ns", "web")

    assert [e.reason for e in events] == ["Pulled", "Created", "Started", "Killing", "Killing"]
    assert all(e.count == 1 for e in events)


# --- agent endpoints -----------------------------------------------------------------------------

AGENT = {"app.kubernetes.io/name": "nicportal-agent"}
DS_UID = "ds-uid-1"
AGENT_PORT = [{"name": "agent", "containerPort": 9410, "hostPort": 9410}]


def daemonset(api, namespace: str = "nicportal", uid: str = DS_UID) -> None:
    api.put("apps/v1/daemonsets", namespace, "nicportal-agent", {"metadata": {"uid": uid}})


def owned_by(kind: str = "DaemonSet", name: str = "nicportal-agent", uid: str = DS_UID) -> list:
    return [{"apiVersion": "apps/v1", "kind": kind, "name": name, "uid": uid, "controller": True}]


def agent_pod(node_name: str, ip: str, *, host_network: bool = True, owner=None, **kw) -> dict:
    """A pod of the agent DaemonSet as a real cluster shows it (hostNetwork: pod IP = node IP)."""
    kw.setdefault("labels", AGENT)
    kw.setdefault("ports", AGENT_PORT)
    found = pod(node_name, host_ip=ip, ownerReferences=owned_by() if owner is None else owner, **kw)
    found["spec"]["hostNetwork"] = host_network
    found["status"]["podIP"] = ip
    return found


@pytest.fixture
def agent_nodes(api):
    daemonset(api)
    api.put("v1/nodes", None, "node-a", node(["10.0.0.11"]))
    api.put("v1/nodes", None, "node-b", node(["fd00::12"]))
    api.put("v1/nodes", None, "node-c", node(["10.0.0.13"]))
    api.put("v1/nodes", None, "node-d", node(["10.0.0.14"]))
    return api


def test_it_finds_each_nodes_agent_among_the_daemonsets_pods(agent_nodes, cluster):
    api = agent_nodes
    api.put("v1/pods", "nicportal", "agent-a", agent_pod("node-a", "10.0.0.11"))
    api.put("v1/pods", "nicportal", "agent-b", agent_pod("node-b", "fd00::12"))
    ports = [{"name": "metrics", "containerPort": 1}, *AGENT_PORT]
    ports[1] = {**ports[1], "hostPort": 19410}
    api.put("v1/pods", "nicportal", "agent-c", agent_pod("node-c", "10.0.0.13", ports=ports))
    # Not answering (yet, or any more): neither an agent nor a rogue.
    api.put("v1/pods", "nicportal", "pending", agent_pod("node-d", "10.0.0.14", phase="Pending"))
    api.put(
        "v1/pods",
        "nicportal",
        "terminating",
        agent_pod("node-d", "10.0.0.14", deletionTimestamp="2024-05-01T10:00:00Z"),
    )
    # Not agent-looking at all: another label.
    api.put("v1/pods", "default", "web", pod("node-a", labels={"app": "other"}, ports=AGENT_PORT))

    choice = cluster.agents()

    assert choice.endpoints == {
        "node-a": "http://10.0.0.11:9410",
        "node-b": "http://[fd00::12]:9410",
        "node-c": "http://10.0.0.13:19410",
    }
    assert choice.rogues == []


def test_every_other_agent_lookalike_is_a_rogue_with_its_reason(agent_nodes, cluster, caplog):
    api = agent_nodes
    api.put("v1/pods", "nicportal", "agent-a", agent_pod("node-a", "10.0.0.11"))
    lookalikes = {
        ("zzz", "evil-agent"): (
            agent_pod("node-a", "10.0.0.11"),
            "in namespace zzz, not the agents' namespace nicportal",
        ),
        ("nicportal", "no-owner"): (
            agent_pod("node-a", "10.0.0.11", owner=[]),
            "not controlled by the DaemonSet nicportal/nicportal-agent (no controller)",
        ),
        ("nicportal", "replicaset"): (
            agent_pod("node-a", "10.0.0.11", owner=owned_by("ReplicaSet", "evil-7d9f")),
            "controlled by ReplicaSet evil-7d9f, not by the DaemonSet nicportal/nicportal-agent",
        ),
        ("nicportal", "forged-owner"): (
            agent_pod("node-a", "10.0.0.11", owner=owned_by(uid="copied-or-guessed")),
            "names the DaemonSet nicportal/nicportal-agent with another uid (copied-or-guessed)",
        ),
        ("nicportal", "pod-network"): (
            agent_pod("node-c", "10.0.0.13", host_network=False),
            "not in the host network (hostNetwork is not true)",
        ),
        ("nicportal", "elsewhere-ip"): (
            agent_pod("node-c", "10.9.9.9"),
            "pod IP 10.9.9.9 is none of node node-c's addresses",
        ),
        ("nicportal", "ghost-node"): (
            agent_pod("node-x", "10.0.0.99"),
            "on node node-x, which the API does not list",
        ),
        ("nicportal", "no-port"): (
            agent_pod("node-d", "10.0.0.14", ports=[]),
            "no container port named agent",
        ),
    }
    for (namespace, name), (body, _) in lookalikes.items():
        api.put("v1/pods", namespace, name, body)

    choice = cluster.agents()

    assert choice.endpoints == {"node-a": "http://10.0.0.11:9410"}
    assert {(r.namespace, r.name): r.reason for r in choice.rogues} == {
        key: reason for key, (_, reason) in lookalikes.items()
    }
    assert "rogue agent pod zzz/evil-agent on node node-a (pod IP 10.0.0.11) ignored" in caplog.text


def test_without_the_daemonset_no_pod_is_an_agent(api, cluster):
    api.put("v1/nodes", None, "node-a", node(["10.0.0.11"]))
    api.put("v1/pods", "nicportal", "agent-a", agent_pod("node-a", "10.0.0.11"))
    choice = cluster.agents()
    assert choice.endpoints == {}
    assert [r.reason for r in choice.rogues] == [
        "the DaemonSet nicportal/nicportal-agent it names does not exist"
    ]


def test_a_configured_daemonset_name_is_the_one_required(agent_nodes, tmp_path):
    api = agent_nodes
    api.put("apps/v1/daemonsets", "nicportal", "agents-v2", {"metadata": {"uid": "v2"}})
    owner = owned_by(name="agents-v2", uid="v2")
    api.put("v1/pods", "nicportal", "agent-a", agent_pod("node-a", "10.0.0.11", owner=owner))
    api.put("v1/pods", "nicportal", "old-a", agent_pod("node-c", "10.0.0.13"))
    with ClusterClient(
        kubeconfig=write_kubeconfig(tmp_path / "kc", api.url), agent_daemonset="agents-v2"
    ) as client:
        choice = client.agents()
    assert choice.endpoints == {"node-a": "http://10.0.0.11:9410"}
    assert [r.name for r in choice.rogues] == ["old-a"]


def test_with_any_namespace_each_namespaces_daemonset_owns_its_pods(agent_nodes, tmp_path):
    # Development only (production requires the namespace): a DaemonSet of that name anywhere.
    api = agent_nodes
    daemonset(api, "elsewhere", uid="other-uid")
    api.put("v1/pods", "nicportal", "agent-a", agent_pod("node-a", "10.0.0.11"))
    owner = owned_by(uid="other-uid")
    api.put("v1/pods", "elsewhere", "agent-c", agent_pod("node-c", "10.0.0.13", owner=owner))
    with ClusterClient(
        kubeconfig=write_kubeconfig(tmp_path / "kc", api.url), agent_namespace=""
    ) as client:
        choice = client.agents()
    assert choice.endpoints == {
        "node-a": "http://10.0.0.11:9410",
        "node-c": "http://10.0.0.13:9410",
    }


def test_it_gives_everything_in_one_listing(api, cluster):
    daemonset(api)
    api.put("v1/nodes", None, "node-a", node(["10.0.0.11"]))
    api.put("v1/pods", "nicportal", "agent-a", agent_pod("node-a", "10.0.0.11"))
    api.put("v1/pods", "zzz", "evil-agent", agent_pod("node-a", "10.0.0.11"))
    api.put("v1/pods", "ns", "web", pod(annotations={"k8s.v1.cni.cncf.io/networks": "uplink"}))
    api.put(NAD, "ns", "uplink", {"spec": {"config": CONFIG}})
    api.put("v1/events", "ns", "e1", event("web", "FailedCreatePodSandBox", "Link not found"))

    listing = cluster.listing()

    assert [n.name for n in listing.nodes] == ["node-a"]
    assert sorted(p.name for p in listing.pods) == ["agent-a", "evil-agent", "web"]
    assert [n.name for n in listing.nads] == ["uplink"]
    assert [e.pod for e in listing.sandbox_failures] == ["web"]
    assert listing.agent_endpoints == {"node-a": "http://10.0.0.11:9410"}
    assert [r.key for r in listing.rogue_agents] == ["zzz/evil-agent"]


def test_it_answers_its_api_url(api, cluster):
    assert cluster.api_url() == api.url


# --- label selectors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=a", {"app": "a"}, True),
        ("app==a", {"app": "b"}, False),
        ("app!=a", {}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": "a"}, False),
        ("tier in (web, db),app notin (x)", {"tier": "db", "app": "y"}, True),
        ("tier in (web,db)", {"tier": "cache"}, False),
        ("", {"anything": "x"}, True),
    ],
)
def test_it_evaluates_label_selectors_locally(selector, labels, expected):
    assert LabelSelector(selector).matches(labels) is expected


def test_it_rejects_a_label_selector_it_cannot_parse():
    with pytest.raises(ClusterError, match="cannot parse 'app=a=b'"):
        LabelSelector("app=a=b")


# --- failures a person must be able to read ------------------------------------------------------


class StatusServer(http.server.ThreadingHTTPServer):
    """An API server that answers every request with one status (or never, when told to hang)."""

    daemon_threads = True

    def __init__(self, status: int, message: str = "", hang: bool = False) -> None:
        self.status, self.message, self.release = status, message, threading.Event()
        self.hang = hang
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if server.hang:
                    server.release.wait(30)
                    return
                body = json.dumps(
                    {"kind": "Status", "code": server.status, "message": server.message}
                ).encode()
                self.send_response(server.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def status_server():
    servers = []

    def start(*args, **kwargs) -> StatusServer:
        servers.append(StatusServer(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


def test_it_says_which_verb_and_resource_were_forbidden(status_server, tmp_path):
    server = status_server(
        403, 'nodes is forbidden: User "system:serviceaccount:x:y" cannot list resource "nodes"'
    )
    client = ClusterClient(kubeconfig=write_kubeconfig(tmp_path / "kc", server.url))
    with pytest.raises(ClusterError) as caught:
        client.list_nodes()
    assert str(caught.value).startswith(
        "list nodes: 403 Forbidden: the portal's account may not list nodes (grant it in RBAC)."
    )
    assert 'cannot list resource "nodes"' in str(caught.value)


def test_it_says_the_credentials_were_rejected(status_server, tmp_path):
    server = status_server(401, "Unauthorized")
    client = ClusterClient(kubeconfig=write_kubeconfig(tmp_path / "kc", server.url))
    with pytest.raises(ClusterError, match=r"^list pods: 401 Unauthorized: the API server at "):
        client.list_pods()


def test_it_says_when_the_api_server_is_unreachable(tmp_path):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{closed_port}"
    client = ClusterClient(kubeconfig=write_kubeconfig(tmp_path / "kc", url), timeout=2)
    with pytest.raises(ClusterError) as caught:
        client.list_nodes()
    assert str(caught.value) == (
        f"list nodes: cannot reach the Kubernetes API at {url}: connection refused"
    )


def test_it_says_when_the_api_server_times_out(status_server, tmp_path):
    server = status_server(200, hang=True)
    client = ClusterClient(kubeconfig=write_kubeconfig(tmp_path / "kc", server.url), timeout=0.3)
    with pytest.raises(ClusterError) as caught:
        client.list_nads()
    assert str(caught.value) == (
        "list network-attachment-definitions.k8s.cni.cncf.io: timeout after 0.3s"
    )
    with pytest.raises(ClusterError, match=r"^list nodes: timeout after 0.3s$"):
        client.list_nodes()


def test_it_says_which_kubeconfig_could_not_be_loaded(tmp_path):
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ClusterError, match=f"cannot load the kubeconfig '{missing}'"):
        ClusterClient(kubeconfig=str(missing))


# --- paging --------------------------------------------------------------------------------------


class PagingServer(http.server.ThreadingHTTPServer):
    """Serves /api/v1/nodes in pages of one, like a real API server asked with `limit`."""

    daemon_threads = True

    def __init__(self, names: list[str], *, expire_once: bool = False) -> None:
        self.names, self.expire_once, self.queries = names, expire_once, []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
                server.queries.append(query)
                index = int(query.get("continue", ["0"])[0])
                if index and server.expire_once:
                    server.expire_once = False
                    self.answer(410, {"kind": "Status", "code": 410, "message": "too old"})
                    return
                metadata = {"continue": str(index + 1)} if index + 1 < len(server.names) else {}
                item = {"metadata": {"name": server.names[index]}}
                self.answer(200, {"metadata": metadata, "items": [item]})

            def answer(self, status, document):
                body = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture
def paging_server():
    servers = []

    def start(*args, **kwargs) -> PagingServer:
        servers.append(PagingServer(*args, **kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def test_it_follows_continue_tokens_through_every_page(paging_server, tmp_path):
    server = paging_server(["n1", "n2", "n3"])
    client = ClusterClient(kubeconfig=write_kubeconfig(tmp_path / "kc", server.url))

    assert [n.name for n in client.list_nodes()] == ["n1", "n2", "n3"]
    assert [q.get("continue") for q in server.queries] == [None, ["1"], ["2"]]
    assert all(q["limit"] == ["500"] for q in server.queries)


def test_it_starts_the_list_over_once_when_the_continue_token_expired(paging_server, tmp_path):
    server = paging_server(["n1", "n2"], expire_once=True)
    client = ClusterClient(kubeconfig=write_kubeconfig(tmp_path / "kc", server.url))

    assert [n.name for n in client.list_nodes()] == ["n1", "n2"]
    assert [q.get("continue") for q in server.queries] == [None, ["1"], None, ["1"]]


# --- settings ------------------------------------------------------------------------------------


def test_it_builds_itself_from_the_settings(api, settings, tmp_path):
    settings.KUBECONFIG = write_kubeconfig(tmp_path / "kc", api.url)
    settings.KUBE_CONTEXT = "lab"
    settings.KUBE_IN_CLUSTER = False
    settings.KUBE_TIMEOUT = 3.5
    settings.AGENT_NAMESPACE = "agents"
    settings.AGENT_LABEL_SELECTOR = "app=x"
    settings.AGENT_PORT_NAME = "http"

    with ClusterClient.from_settings() as client:
        assert client.api_url() == api.url
        assert client.timeout == 3.5
        assert (client.agent_namespace, client.agent_label_selector, client.agent_port_name) == (
            "agents",
            "app=x",
            "http",
        )
