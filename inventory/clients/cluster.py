"""The only module that talks to the Kubernetes API (official `kubernetes` client).

It reads Nodes, Pods (with their Multus annotations), NetworkAttachmentDefinitions, Events, the
node agents' pods and their DaemonSet, and writes exactly three things: a new NAD (never over an
existing one), a NAD deletion, and one node annotation. Everything comes back as the plain frozen
dataclasses of `cluster_objects.py` (which also decides, without I/O, which pods are the agents:
`choose_agents`); the ORM is `sync/`'s business.

Why raw JSON instead of the generated models: every call asks for `_preload_content=False` and
reads the body with `json.loads`. Deserializing thousands of pods into `V1Pod` models costs more
than the listing itself on a big cluster, and the models reject objects the API server accepts
(or an emulator serves) with a missing "required" field, which would fail a whole listing for one
odd object. The generated API methods are still used for URLs, auth and timeouts.

Selectors are sent to the server *and* applied again here: a real API server filters, KMock (the
lab and the tests) ignores them, and filtering twice costs nothing.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.config.config_exception import ConfigException

from inventory.clients.cluster_objects import (
    AgentChoice,
    ClusterListing,
    EventInfo,
    NadInfo,
    NodeInfo,
    PodInfo,
    choose_agents,
    daemonset_uids,
    event_from_json,
    is_pod_event,
    nad_from_json,
    node_from_json,
    pod_from_json,
)
from inventory.rules.diagnosis.facts import SANDBOX_FAILURE_REASON

logger = logging.getLogger(__name__)

NAD_GROUP = "k8s.cni.cncf.io"
NAD_VERSION = "v1"
NAD_PLURAL = "network-attachment-definitions"
NAD_KIND = "NetworkAttachmentDefinition"

DEFAULT_AGENT_NAMESPACE = "nicportal"
DEFAULT_AGENT_DAEMONSET = "nicportal-agent"
DEFAULT_AGENT_LABEL_SELECTOR = "app.kubernetes.io/name=nicportal-agent"
DEFAULT_AGENT_PORT_NAME = "agent"
# Big enough that a normal cluster lists in one round trip, small enough that the API server
# never has to build a 100 MB answer for a huge one.
PAGE_SIZE = 500


class ClusterError(Exception):
    """The Kubernetes API could not do what was asked; the message is for a person."""


class NotFound(ClusterError):
    pass


class NadExists(ClusterError):
    pass


class ClusterClient:
    """One Kubernetes API connection (pooled, thread-safe: urllib3 underneath)."""

    def __init__(
        self,
        *,
        kubeconfig: str | None = None,
        context: str | None = None,
        in_cluster: bool = False,
        timeout: float = 10.0,
        agent_namespace: str = DEFAULT_AGENT_NAMESPACE,
        agent_daemonset: str = DEFAULT_AGENT_DAEMONSET,
        agent_label_selector: str = DEFAULT_AGENT_LABEL_SELECTOR,
        agent_port_name: str = DEFAULT_AGENT_PORT_NAME,
    ) -> None:
        configuration = k8s.Configuration()
        try:
            if in_cluster:
                k8s_config.load_incluster_config(client_configuration=configuration)
            else:
                k8s_config.load_kube_config(
                    config_file=kubeconfig,
                    context=context or None,
                    client_configuration=configuration,
                    persist_config=False,
                )
        except (ConfigException, OSError, ValueError) as exc:
            source = "in-cluster service account" if in_cluster else f"kubeconfig {kubeconfig!r}"
            raise ClusterError(f"cannot load the {source}: {exc}") from exc
        # One connection retry covers a blip; no read retry, because a hung API server would
        # otherwise make a person wait a multiple of the timeout.
        configuration.retries = urllib3.Retry(total=1, connect=1, read=0, redirect=0, status=0)
        self.timeout = timeout
        self._api = k8s.ApiClient(configuration)
        self._core = k8s.CoreV1Api(self._api)
        self._apps = k8s.AppsV1Api(self._api)
        self._custom = k8s.CustomObjectsApi(self._api)
        self.agent_namespace = agent_namespace
        self.agent_daemonset = agent_daemonset
        self.agent_label_selector = agent_label_selector
        self.agent_port_name = agent_port_name
        self._agent_selector = LabelSelector(agent_label_selector)

    @classmethod
    def from_settings(cls) -> ClusterClient:
        return cls(
            kubeconfig=settings.KUBECONFIG or None,
            context=settings.KUBE_CONTEXT or None,
            in_cluster=settings.KUBE_IN_CLUSTER,
            timeout=settings.KUBE_TIMEOUT,
            agent_namespace=settings.AGENT_NAMESPACE,
            agent_daemonset=settings.AGENT_DAEMONSET,
            agent_label_selector=settings.AGENT_LABEL_SELECTOR,
            agent_port_name=settings.AGENT_PORT_NAME,
        )

    def close(self) -> None:
        self._api.close()

    def __enter__(self) -> ClusterClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def api_url(self) -> str:
        return self._api.configuration.host

    # --- reads -----------------------------------------------------------------------------------

    def list_nodes(self) -> list[NodeInfo]:
        items = self._list_all("list", "nodes", self._core.list_node)
        return [node_from_json(item) for item in items]

    def list_pods(self) -> list[PodInfo]:
        items = self._list_all("list", "pods", self._core.list_pod_for_all_namespaces)
        return [pod_from_json(item) for item in items]

    def list_nads(self) -> list[NadInfo]:
        try:
            items = self._list_all(
                "list",
                f"{NAD_PLURAL}.{NAD_GROUP}",
                self._custom.list_cluster_custom_object,
                NAD_GROUP,
                NAD_VERSION,
                NAD_PLURAL,
            )
        except NotFound:
            # The CRD is not installed: Multus is absent, so there are no NADs to show.
            logger.warning(
                "no %s/%s %s resource on %s", NAD_GROUP, NAD_VERSION, NAD_PLURAL, self.api_url()
            )
            return []
        return [nad_from_json(item) for item in items]

    def list_sandbox_failures(self) -> list[EventInfo]:
        items = self._list_all(
            "list",
            "events",
            self._core.list_event_for_all_namespaces,
            field_selector=f"reason={SANDBOX_FAILURE_REASON}",
        )
        events = [event_from_json(item) for item in items if is_pod_event(item)]
        return [event for event in events if event.reason == SANDBOX_FAILURE_REASON]

    def agents(
        self, pods: list[PodInfo] | None = None, nodes: list[NodeInfo] | None = None
    ) -> AgentChoice:
        """Which pod is each node's agent, and which agent-looking pods are not (choose_agents)."""
        if pods is None:
            pods = self._list_agent_pods()
        if nodes is None:
            nodes = self.list_nodes()
        choice = choose_agents(
            pods,
            nodes,
            daemonsets=self._agent_daemonsets(),
            namespace=self.agent_namespace,
            daemonset=self.agent_daemonset,
            selector=self._agent_selector,
            port_name=self.agent_port_name,
        )
        for rogue in choice.rogues:
            logger.warning(
                "rogue agent pod %s on node %s (pod IP %s) ignored: %s",
                rogue.key,
                rogue.node or "-",
                rogue.pod_ip or "-",
                rogue.reason,
            )
        return choice

    def listing(self) -> ClusterListing:
        pods = self.list_pods()
        nodes = self.list_nodes()
        agents = self.agents(pods, nodes)
        return ClusterListing(
            nodes=nodes,
            pods=pods,
            nads=self.list_nads(),
            sandbox_failures=self.list_sandbox_failures(),
            agent_endpoints=agents.endpoints,
            rogue_agents=agents.rogues,
        )

    def get_pod(self, namespace: str, name: str) -> PodInfo:
        data = self._call(
            "get", f"pod {namespace}/{name}", self._core.read_namespaced_pod, name, namespace
        )
        return pod_from_json(data)

    def pod_events(self, namespace: str, name: str) -> list[EventInfo]:
        items = self._list_all(
            "list",
            f"events in namespace {namespace}",
            self._core.list_namespaced_event,
            namespace,
            field_selector=f"involvedObject.kind=Pod,involvedObject.name={name}",
        )
        events = [
            event_from_json(item)
            for item in items
            if is_pod_event(item) and (item.get("involvedObject") or {}).get("name") == name
        ]
        # Events without any timestamp go last, in the order the API server listed them.
        never = datetime.max.replace(tzinfo=UTC)
        return sorted(events, key=lambda event: event.last_seen or never)

    def get_nad(self, namespace: str, name: str) -> NadInfo:
        data = self._call(
            "get",
            f"{NAD_KIND} {namespace}/{name}",
            self._custom.get_namespaced_custom_object,
            NAD_GROUP,
            NAD_VERSION,
            namespace,
            NAD_PLURAL,
            name,
        )
        return nad_from_json(data)

    # --- writes ----------------------------------------------------------------------------------

    def create_nad(
        self,
        *,
        namespace: str,
        name: str,
        config: str,
        annotations: dict[str, str] | None = None,
        labels: dict[str, str] | None = None,
    ) -> NadInfo:
        """Create a NAD; NadExists if one of that name is there (it is never overwritten)."""
        metadata: dict[str, Any] = {"name": name, "namespace": namespace}
        if annotations:
            metadata["annotations"] = dict(annotations)
        if labels:
            metadata["labels"] = dict(labels)
        body = {
            "apiVersion": f"{NAD_GROUP}/{NAD_VERSION}",
            "kind": NAD_KIND,
            "metadata": metadata,
            "spec": {"config": config},
        }
        try:
            data = self._call(
                "create",
                f"{NAD_KIND} {namespace}/{name}",
                self._custom.create_namespaced_custom_object,
                NAD_GROUP,
                NAD_VERSION,
                namespace,
                NAD_PLURAL,
                body,
            )
        except _Conflict as exc:
            raise NadExists(
                f"{NAD_KIND} {namespace}/{name} already exists; it was left unchanged"
            ) from exc
        return nad_from_json(data)

    def delete_nad(self, namespace: str, name: str) -> None:
        self._call(
            "delete",
            f"{NAD_KIND} {namespace}/{name}",
            self._custom.delete_namespaced_custom_object,
            NAD_GROUP,
            NAD_VERSION,
            namespace,
            NAD_PLURAL,
            name,
        )

    def set_node_annotation(self, node: str, key: str, value: str | None) -> None:
        """Set one annotation on a node (None removes it) with a JSON merge patch.

        A merge patch touches only this key, so annotations others write concurrently survive;
        a read-modify-replace would race with them (and KMock serves no PUT anyway).
        """
        self._call(
            "patch",
            f"node {node}",
            self._core.patch_node,
            node,
            {"metadata": {"annotations": {key: value}}},
            _content_type="application/merge-patch+json",
        )

    # --- plumbing --------------------------------------------------------------------------------

    def _agent_daemonsets(self) -> dict[str, str]:
        """namespace -> uid of the agent DaemonSet(s) of that name: the one in the agents'
        namespace, or (development, any namespace) every namespace's."""
        if self.agent_namespace:
            try:
                data = self._call(
                    "get",
                    f"daemonset {self.agent_namespace}/{self.agent_daemonset}",
                    self._apps.read_namespaced_daemon_set,
                    self.agent_daemonset,
                    self.agent_namespace,
                )
            except NotFound:
                logger.warning(
                    "the agent DaemonSet %s/%s does not exist: no pod is accepted as an agent",
                    self.agent_namespace,
                    self.agent_daemonset,
                )
                return {}
            items = [data]
        else:
            items = self._list_all(
                "list",
                "daemonsets",
                self._apps.list_daemon_set_for_all_namespaces,
                field_selector=f"metadata.name={self.agent_daemonset}",
            )
        return daemonset_uids(items, self.agent_daemonset)

    def _list_agent_pods(self) -> list[PodInfo]:
        # Every namespace: a pod elsewhere that looks like an agent is not used, but reported.
        items = self._list_all(
            "list",
            "pods",
            self._core.list_pod_for_all_namespaces,
            label_selector=self.agent_label_selector or None,
        )
        return [pod_from_json(item) for item in items]

    def _list_all(
        self, verb: str, resource: str, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> list[dict[str, Any]]:
        """All items of a list call, following `continue` tokens page by page."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        restarted = False
        while True:
            try:
                page = self._call(
                    verb, resource, method, *args, limit=PAGE_SIZE, _continue=token, **kwargs
                )
            except _Gone:
                # The continue token expired (the list took longer than etcd keeps it):
                # start over once rather than return a list with a hole in it.
                if token is None or restarted:
                    raise ClusterError(
                        f"{verb} {resource}: list expired twice while paging"
                    ) from None
                items, token, restarted = [], None, True
                continue
            items.extend(item for item in page.get("items") or [] if isinstance(item, dict))
            token = (page.get("metadata") or {}).get("continue") or None
            if token is None:
                return items

    def _call(
        self, verb: str, resource: str, method: Callable[..., Any], *args: Any, **kwargs: Any
    ) -> dict[str, Any]:
        """Call a generated API method, return the JSON body; every failure as a ClusterError."""
        where = f"{verb} {resource}"
        try:
            response = method(
                *args, _preload_content=False, _request_timeout=self.timeout, **kwargs
            )
            body = response.data
        except k8s.ApiException as exc:
            raise self._api_error(where, exc) from exc
        except urllib3.exceptions.MaxRetryError as exc:
            reason = exc.reason
            # NewConnectionError subclasses ConnectTimeoutError in urllib3 2.x: test it first.
            timed_out = isinstance(reason, urllib3.exceptions.TimeoutError) and not isinstance(
                reason, urllib3.exceptions.NewConnectionError
            )
            if timed_out:
                raise ClusterError(f"{where}: timeout after {self.timeout:g}s") from exc
            raise ClusterError(
                f"{where}: cannot reach the Kubernetes API at {self.api_url()}: "
                f"{_connection_reason(reason)}"
            ) from exc
        except urllib3.exceptions.TimeoutError as exc:
            raise ClusterError(f"{where}: timeout after {self.timeout:g}s") from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ClusterError(
                f"{where}: connection to the Kubernetes API at {self.api_url()} failed: {exc}"
            ) from exc
        if not body:
            return {}
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise ClusterError(f"{where}: the API server answered with non-JSON: {exc}") from exc
        return data if isinstance(data, dict) else {}

    def _api_error(self, where: str, exc: k8s.ApiException) -> ClusterError:
        status = exc.status or 0
        message = _status_message(exc.body) or (exc.reason or "").strip()
        if status == 0:
            # The client reports TLS failures as status 0.
            return ClusterError(f"{where}: cannot talk to {self.api_url()}: {message}")
        if status == 401:
            return ClusterError(
                f"{where}: 401 Unauthorized: the API server at {self.api_url()} rejected the "
                "credentials (check the token or client certificate in the kubeconfig)"
            )
        if status == 403:
            return ClusterError(
                f"{where}: 403 Forbidden: the portal's account may not {where} "
                f"(grant it in RBAC). API server said: {message}"
            )
        if status == 404:
            return NotFound(f"{where}: not found")
        if status == 409:
            return _Conflict(f"{where}: conflict: {message}")
        if status == 410:
            return _Gone(f"{where}: expired: {message}")
        return ClusterError(f"{where}: HTTP {status}: {message}")


class _Conflict(ClusterError):
    """409; turned into NadExists by create_nad, left as a ClusterError elsewhere."""


class _Gone(ClusterError):
    """410 on a paged list: the continue token expired."""


def _status_message(body: Any) -> str:
    """The `message` of a Kubernetes Status body, "" when the body is not one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not isinstance(body, str) or not body:
        return ""
    try:
        status = json.loads(body)
    except ValueError:
        return body.strip()[:200]
    if isinstance(status, dict) and isinstance(status.get("message"), str):
        return status["message"]
    return ""


def _connection_reason(reason: object) -> str:
    if isinstance(reason, urllib3.exceptions.NewConnectionError):
        text = str(reason)
        if "refused" in text.lower():
            return "connection refused"
        if "Name or service not known" in text or "nodename nor servname" in text:
            return "unknown host name"
        return text.split(": ", 1)[-1]
    return str(reason)


# --- label selectors (client-side) ---------------------------------------------------------------


_REQUIREMENT = re.compile(
    r"^\s*(?:(?P<absent>!)\s*(?P<absent_key>[A-Za-z0-9_./-]+)"
    r"|(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|!=|=)\s*(?P<value>[A-Za-z0-9_.-]*)"
    r"|\s+(?P<set_op>in|notin)\s*\((?P<values>[^)]*)\))?)\s*$"
)


class LabelSelector:
    """A Kubernetes label selector (`a=b,c!=d,e,!f,g in (x,y),h notin (z)`) evaluated locally."""

    def __init__(self, selector: str) -> None:
        self.selector = selector
        self._requirements: list[Callable[[Mapping[str, str]], bool]] = []
        for part in _split_requirements(selector):
            match = _REQUIREMENT.match(part)
            if match is None:
                raise ClusterError(f"label selector {selector!r}: cannot parse {part.strip()!r}")
            self._requirements.append(_requirement(match))

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(requirement(labels) for requirement in self._requirements)


def _split_requirements(selector: str) -> Iterable[str]:
    # Commas separate requirements except inside the parentheses of a set.
    depth, current = 0, ""
    for char in selector:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == "," and depth == 0:
            yield current
            current = ""
        else:
            current += char
    if current.strip():
        yield current


def _requirement(match: re.Match[str]) -> Callable[[Mapping[str, str]], bool]:
    if match["absent"]:
        key = match["absent_key"]
        return lambda labels: key not in labels
    key = match["key"]
    if match["op"] in ("=", "=="):
        value = match["value"]
        return lambda labels: labels.get(key) == value
    if match["op"] == "!=":
        value = match["value"]
        return lambda labels: labels.get(key) != value
    if match["set_op"]:
        values = {v.strip() for v in match["values"].split(",") if v.strip()}
        if match["set_op"] == "in":
            return lambda labels: labels.get(key) in values
        return lambda labels: labels.get(key) not in values
    return lambda labels: key in labels
