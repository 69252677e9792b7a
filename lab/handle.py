"""A running lab seen from a test (or a script): where things are, and helpers to drive pods.

Everything here talks to the lab's API with the official `kubernetes` client, the same way the
portal does, and reads node namespaces with `ip -j`.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
from kubernetes.client import ApiClient, ApiException

from lab import multus, topology
from lab.kube_api import AGENT_DAEMONSET, AGENT_HOST_IP, AGENT_LABELS, AGENT_NAMESPACE
from lab.layout import Layout, load_layout
from lab.state import LabState
from nodeagent import auth

NAD_GROUP, NAD_VERSION, NAD_PLURAL = "k8s.cni.cncf.io", "v1", "network-attachment-definitions"
TEST_LABEL = "lab.nicportal.io/test"  # marks pods and NADs made through this handle


@dataclass(frozen=True)
class LabNodeInfo:
    name: str
    netns: str
    internal_ip: str
    agent_url: str
    host_device: str  # the node's host-device release
    multus: str  # the Multus generation its Multus behaves as


class LabTimeout(AssertionError):
    """The lab did not reach the awaited state in time."""


class LabHandle:
    def __init__(self, state: LabState) -> None:
        self.state = state
        self.name: str = state.data["name"]
        self.api_url: str = state.data["api_url"]
        self.kubeconfig: Path = state.kubeconfig  # cluster-admin, for tests and kubectl
        # The portal's ServiceAccount with deploy/kubernetes/rbac.yaml: what the portal uses.
        self.portal_kubeconfig: Path = state.portal_kubeconfig
        self.cluster_name: str = state.cluster_name
        self.agent_master_key_file: Path = state.agent_master_key_file
        self.agent_master_key: str = state.agent_master_key_file.read_text().strip()
        self.nodes: list[LabNodeInfo] = [LabNodeInfo(**n) for n in state.status()["nodes"]]
        self.layout: Layout = load_layout(state.data.get("layout"))
        self._client: ApiClient | None = None

    # --- where things are -------------------------------------------------------------------

    def node(self, name: str) -> LabNodeInfo:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)

    def kube(self) -> ApiClient:
        """An official-client ApiClient configured from the lab's kubeconfig (shared)."""
        if self._client is None:
            configuration = kubernetes.client.Configuration()
            kubernetes.config.load_kube_config(
                config_file=str(self.kubeconfig), client_configuration=configuration
            )
            self._client = ApiClient(configuration)
        return self._client

    @property
    def core(self) -> kubernetes.client.CoreV1Api:
        return kubernetes.client.CoreV1Api(self.kube())

    @property
    def custom(self) -> kubernetes.client.CustomObjectsApi:
        return kubernetes.client.CustomObjectsApi(self.kube())

    def _raw(self, call: Any, *args: Any, **kwargs: Any) -> dict[str, Any]:
        # JSON as the API sent it (camelCase), not the client's model objects.
        response = call(*args, _preload_content=False, **kwargs)
        return json.loads(response.data)

    # --- NADs -------------------------------------------------------------------------------

    def create_nad(
        self,
        namespace: str,
        name: str,
        config: dict[str, Any] | str,
        annotations: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        body = {
            "apiVersion": f"{NAD_GROUP}/{NAD_VERSION}",
            "kind": "NetworkAttachmentDefinition",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {TEST_LABEL: "true"},
                "annotations": dict(annotations or {}),
            },
            "spec": {"config": config if isinstance(config, str) else json.dumps(config)},
        }
        # The real API server refuses objects in a namespace that does not exist.
        self.ensure_namespace(namespace)
        return self.custom.create_namespaced_custom_object(
            NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL, body
        )

    def delete_nad(self, namespace: str, name: str) -> None:
        try:
            self.custom.delete_namespaced_custom_object(
                NAD_GROUP, NAD_VERSION, namespace, NAD_PLURAL, name
            )
        except ApiException as exc:
            if exc.status != 404:
                raise

    # --- pods -------------------------------------------------------------------------------

    def get_pod(self, namespace: str, name: str) -> dict[str, Any] | None:
        try:
            return self._raw(self.core.read_namespaced_pod, name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def create_pod(
        self,
        namespace: str,
        name: str,
        node: str | None,
        networks: str | list[dict[str, Any]] | None = None,
        *,
        node_selector: dict[str, str] | None = None,
        affinity: dict[str, Any] | None = None,
        wait: bool = True,
        timeout: float = 15.0,
    ) -> dict[str, Any]:
        """Create a pod bound to `node` (None: the lab kubelet schedules it by `node_selector`
        and `affinity`); with wait, return it once Running, or once its sandbox or its
        scheduling failed.

        `networks` is the Multus annotation: the short form as a string, or a list of selection
        objects (written as JSON).
        """
        annotations = {}
        if networks:
            annotations[multus.NETWORKS_ANNOTATION] = (
                networks if isinstance(networks, str) else json.dumps(networks)
            )
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {TEST_LABEL: "true"},
                "annotations": annotations,
            },
            "spec": {
                "containers": [{"name": "main", "image": "registry.invalid/pause:3.9"}],
            },
        }
        if node:
            body["spec"]["nodeName"] = node
        if node_selector:
            body["spec"]["nodeSelector"] = node_selector
        if affinity:
            body["spec"]["affinity"] = affinity
        created = self._raw(self.core.create_namespaced_pod, namespace, body)
        if not wait:
            return created
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pod = self.get_pod(namespace, name)
            if pod is not None and pod.get("status", {}).get("phase") == "Running":
                return pod
            if pod is not None and any(
                e.get("reason") in ("FailedCreatePodSandBox", "FailedScheduling")
                for e in self.pod_events(namespace, name)
            ):
                return pod
            time.sleep(0.05)
        raise LabTimeout(f"pod {namespace}/{name} neither Running nor failed after {timeout} s")

    def delete_pod(
        self, namespace: str, name: str, *, wait: bool = True, timeout: float = 15.0
    ) -> None:
        """Delete like kubectl does; with wait, return once the kubelet ran DEL and it is gone."""
        try:
            self.core.delete_namespaced_pod(name, namespace)
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        if wait:
            self._wait_gone(namespace, name, timeout)

    def _wait_gone(self, namespace: str, name: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.get_pod(namespace, name) is None:
                return
            time.sleep(0.05)
        raise LabTimeout(f"pod {namespace}/{name} still there after {timeout} s")

    def _force_delete(self, namespace: str, name: str) -> None:
        try:
            self.core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
        except ApiException as exc:
            if exc.status != 404:
                raise

    def pod_netns(self, namespace: str, name: str) -> str:
        pod = self.get_pod(namespace, name)
        if pod is None:
            raise KeyError(f"{namespace}/{name}")
        return topology.pod_netns(self.name, pod["metadata"]["uid"])

    def crash_pod(self, namespace: str, name: str) -> None:
        """The pod's sandbox dies without CNI DEL, then the pod object is force-deleted.

        Its namespace is removed directly (a veth NIC in it dies with it, a physical NIC would
        come back as an orphan), then the pod is deleted with grace period 0, as
        `kubectl delete --force --grace-period=0` does.
        """
        topology.delete_namespaces([self.pod_netns(namespace, name)])
        self._force_delete(namespace, name)
        self._wait_gone(namespace, name, 10.0)

    def pod_events(self, namespace: str, name: str) -> list[dict[str, Any]]:
        """Events about the pod of that name (only the current one's, if it exists)."""
        selector = f"involvedObject.name={name},involvedObject.kind=Pod"
        pod = self.get_pod(namespace, name)
        if pod is not None:
            selector += f",involvedObject.uid={pod['metadata']['uid']}"
        events = self._raw(self.core.list_namespaced_event, namespace, field_selector=selector)
        return events.get("items", [])

    def create_agent_lookalike(
        self,
        namespace: str,
        name: str,
        node: str,
        *,
        port: int,
        pod_ip: str = AGENT_HOST_IP,
        host_network: bool = True,
        owner: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A Running pod that looks like a node agent (the agent label, a port named `agent`),
        as anyone who may create pods somewhere could make one (its namespace is created if
        needed). Its status is written here through the status subresource, as a kubelet would;
        the lab kubelet marks a hostNetwork pod Running only over the version it saw, so this
        status stays. `owner`: an ownerReference to give it (e.g. a forged one naming the agent
        DaemonSet). reset() deletes it with grace period 0."""
        self.ensure_namespace(namespace)
        metadata: dict[str, Any] = {
            "name": name,
            "namespace": namespace,
            "labels": {**AGENT_LABELS, TEST_LABEL: "true"},
        }
        if owner:
            metadata["ownerReferences"] = [owner]
        body = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": metadata,
            "spec": {
                "nodeName": node,
                "hostNetwork": host_network,
                "containers": [
                    {
                        "name": "agent",
                        "image": "registry.invalid/evil-agent:1",
                        "ports": [{"name": "agent", "containerPort": port, "hostPort": port}],
                    }
                ],
            },
        }
        self._raw(self.core.create_namespaced_pod, namespace, body)
        status = {"phase": "Running", "hostIP": AGENT_HOST_IP, "podIP": pod_ip}
        status["podIPs"] = [{"ip": pod_ip}]
        return self._raw(
            self.core.patch_namespaced_pod_status,
            name,
            namespace,
            {"status": status},
            _content_type="application/strategic-merge-patch+json",
        )

    def ensure_namespace(self, namespace: str) -> None:
        """Create the namespace unless it exists (the API server refuses pods in a missing one).
        Namespaces made here stay, as after a `kubectl create namespace`."""
        try:
            self.core.create_namespace({"apiVersion": "v1", "metadata": {"name": namespace}})
        except ApiException as exc:
            if exc.status != 409:
                raise

    def agent_daemonset_uid(self) -> str:
        apps = kubernetes.client.AppsV1Api(self.kube())
        found = self._raw(apps.read_namespaced_daemon_set, AGENT_DAEMONSET, AGENT_NAMESPACE)
        return found["metadata"]["uid"]

    def agent_key(self, node: str) -> bytes:
        """The node key the lab gave that node's agent (the only key that agent holds)."""
        return auth.parse_node_key(self.state.agent_key_file(node).read_text())

    # --- links ------------------------------------------------------------------------------

    def links(self, node: str) -> list[dict[str, Any]]:
        """`ip -j -d link` of the node's namespace, parsed."""
        return topology.links(self.node(node).netns)

    def link_names(self, node: str) -> set[str]:
        return {link["ifname"] for link in self.links(node)}

    def pod_links(self, namespace: str, name: str) -> list[dict[str, Any]]:
        return topology.links(self.pod_netns(namespace, name))

    # --- between tests ----------------------------------------------------------------------

    def reset(self) -> list[str]:
        """Delete every pod (but the agents') and every NAD; put the NICs back as built.

        Returns what restore_nics() had to repair ("node-a/eth2: created again", ...).
        """
        listed = self._raw(self.core.list_pod_for_all_namespaces)
        pods = {
            "items": [
                pod
                for pod in listed.get("items", [])
                if pod["metadata"].get("namespace") != AGENT_NAMESPACE
                and not pod.get("spec", {}).get("hostNetwork")
            ]
        }
        # Agent look-alikes made by tests (hostNetwork, the test label, any namespace): gone at
        # once, as `kubectl delete --force --grace-period=0` does.
        lookalikes = [
            pod
            for pod in listed.get("items", [])
            if pod.get("spec", {}).get("hostNetwork")
            and TEST_LABEL in (pod["metadata"].get("labels") or {})
        ]
        for pod in lookalikes:
            self._force_delete(pod["metadata"]["namespace"], pod["metadata"]["name"])
        lab_nodes = {node.name for node in self.nodes}
        for pod in pods.get("items", []):
            meta = pod["metadata"]
            if pod.get("spec", {}).get("nodeName", "") in lab_nodes:
                self.delete_pod(meta["namespace"], meta["name"], wait=False)
            else:
                # Bound to a node no kubelet runs: nothing would ever confirm a graceful
                # deletion, so force it, as for a node that is gone.
                self._force_delete(meta["namespace"], meta["name"])
        for pod in [*lookalikes, *pods.get("items", [])]:
            self._wait_gone(pod["metadata"]["namespace"], pod["metadata"]["name"], 15.0)
        # Events outlive their pods (as in a real cluster); a later pod of the same name must
        # not see them, so the ones about test pods go too.
        uids = {pod["metadata"]["uid"] for pod in pods.get("items", [])}
        events = self._raw(self.core.list_event_for_all_namespaces)
        for event in events.get("items", []):
            if event.get("involvedObject", {}).get("uid") in uids:
                self.core.delete_namespaced_event(
                    event["metadata"]["name"], event["metadata"]["namespace"]
                )
        nads = self.custom.list_cluster_custom_object(NAD_GROUP, NAD_VERSION, NAD_PLURAL)
        for nad in nads.get("items", []):
            self.delete_nad(nad["metadata"]["namespace"], nad["metadata"]["name"])
        return topology.restore_nics(self.name, self.layout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
