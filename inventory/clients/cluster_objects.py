"""The Kubernetes objects the portal reads, as plain frozen dataclasses, the pure parsing of
the API's JSON into them (so sync and the tests can use them on recorded objects), and the pure
choice of which pods are the node agents (`choose_agents`). No I/O and no `kubernetes` import:
`cluster.py` fetches, this module reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

from inventory.rules import multus
from inventory.rules.nad.render import RESOURCE_NAME_ANNOTATION

# Node address types that are IP addresses (Hostname, InternalDNS and ExternalDNS are names).
IP_ADDRESS_TYPES = ("InternalIP", "ExternalIP")


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    internal_ips: tuple[str, ...]
    labels: dict[str, str]
    annotations: dict[str, str]
    ready: bool
    # Every IP address of the node in status.addresses (InternalIP and ExternalIP).
    addresses: tuple[str, ...] = ()
    external_ips: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class OwnerReference:
    api_version: str
    kind: str
    name: str
    uid: str


@dataclass(frozen=True, slots=True)
class PodInfo:
    namespace: str
    name: str
    uid: str
    node_name: str  # "" while unscheduled
    phase: str
    host_ip: str
    labels: dict[str, str]
    networks: tuple[multus.NetworkSelection, ...]
    networks_error: str  # why the networks annotation could not be read, "" if it could
    network_status: tuple[multus.NetworkStatus, ...]
    network_status_error: str
    deletion_timestamp: datetime | None
    annotations: dict[str, str]
    # Named container ports: name -> hostPort if set, else containerPort (for the agent URL).
    named_ports: dict[str, int] = field(default_factory=dict)
    pod_ip: str = ""
    host_network: bool = False
    # The ownerReference with controller: true (the DaemonSet of an agent pod), if any.
    controller: OwnerReference | None = None

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class NadInfo:
    namespace: str
    name: str
    uid: str
    config: str  # spec.config as stored (a JSON string the API server never validated)
    annotations: dict[str, str]
    resource_name: str  # the k8s.v1.cni.cncf.io/resourceName annotation, "" if none
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventInfo:
    namespace: str
    pod: str
    reason: str
    message: str
    count: int
    last_seen: datetime | None
    type: str


@dataclass(frozen=True, slots=True)
class RogueAgent:
    """A pod that looks like a node agent (it matches the agent selector) but is not one of the
    agent DaemonSet's pods on its node: it is never contacted."""

    namespace: str
    name: str
    node: str
    pod_ip: str
    reason: str

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class AgentChoice:
    endpoints: dict[str, str]  # node name -> "http://podIP:port"
    rogues: list[RogueAgent]


@dataclass(frozen=True, slots=True)
class ClusterListing:
    nodes: list[NodeInfo]
    pods: list[PodInfo]
    nads: list[NadInfo]
    sandbox_failures: list[EventInfo]
    agent_endpoints: dict[str, str]  # node name -> "http://podIP:port"
    rogue_agents: list[RogueAgent] = field(default_factory=list)


def node_from_json(item: Mapping[str, Any]) -> NodeInfo:
    metadata = _dict(item.get("metadata"))
    status = _dict(item.get("status"))
    typed = [
        (address.get("type"), address["address"])
        for address in _list(status.get("addresses"))
        if isinstance(address, dict) and isinstance(address.get("address"), str)
    ]
    internal_ips = tuple(address for kind, address in typed if kind == "InternalIP")
    addresses = tuple(address for kind, address in typed if kind in IP_ADDRESS_TYPES)
    ready = any(
        isinstance(condition, dict)
        and condition.get("type") == "Ready"
        and condition.get("status") == "True"
        for condition in _list(status.get("conditions"))
    )
    return NodeInfo(
        name=_str(metadata.get("name")),
        internal_ips=internal_ips,
        labels=_str_dict(metadata.get("labels")),
        annotations=_str_dict(metadata.get("annotations")),
        ready=ready,
        addresses=addresses,
        external_ips=tuple(address for kind, address in typed if kind == "ExternalIP"),
    )


def pod_from_json(item: Mapping[str, Any]) -> PodInfo:
    metadata = _dict(item.get("metadata"))
    spec = _dict(item.get("spec"))
    status = _dict(item.get("status"))
    namespace = _str(metadata.get("namespace"))
    annotations = _str_dict(metadata.get("annotations"))

    networks: tuple[multus.NetworkSelection, ...] = ()
    networks_error = ""
    try:
        networks = multus.parse_networks(
            annotations.get(multus.NETWORKS_ANNOTATION), pod_namespace=namespace
        )
    except multus.MultusAnnotationError as exc:
        networks_error = str(exc)

    # Multus v3.x may write only the deprecated key; the current key wins when both are present.
    status_text = annotations.get(multus.NETWORK_STATUS_ANNOTATION)
    if status_text is None:
        status_text = annotations.get(multus.DEPRECATED_NETWORK_STATUS_ANNOTATION)
    network_status: tuple[multus.NetworkStatus, ...] = ()
    network_status_error = ""
    try:
        network_status = multus.parse_network_status(status_text)
    except multus.MultusAnnotationError as exc:
        network_status_error = str(exc)

    return PodInfo(
        namespace=namespace,
        name=_str(metadata.get("name")),
        uid=_str(metadata.get("uid")),
        node_name=_str(spec.get("nodeName")),
        phase=_str(status.get("phase")),
        host_ip=_str(status.get("hostIP")),
        labels=_str_dict(metadata.get("labels")),
        networks=networks,
        networks_error=networks_error,
        network_status=network_status,
        network_status_error=network_status_error,
        deletion_timestamp=_timestamp(metadata.get("deletionTimestamp")),
        annotations=annotations,
        named_ports=_named_ports(spec),
        pod_ip=_str(status.get("podIP")),
        host_network=spec.get("hostNetwork") is True,
        controller=_controller(metadata),
    )


def _controller(metadata: Mapping[str, Any]) -> OwnerReference | None:
    for reference in _list(metadata.get("ownerReferences")):
        reference = _dict(reference)
        if reference.get("controller") is True:
            return OwnerReference(
                api_version=_str(reference.get("apiVersion")),
                kind=_str(reference.get("kind")),
                name=_str(reference.get("name")),
                uid=_str(reference.get("uid")),
            )
    return None


def _named_ports(spec: Mapping[str, Any]) -> dict[str, int]:
    ports: dict[str, int] = {}
    for container in _list(spec.get("containers")):
        for port in _list(_dict(container).get("ports")):
            port = _dict(port)
            name = port.get("name")
            number = port.get("hostPort") or port.get("containerPort")
            if isinstance(name, str) and isinstance(number, int) and not isinstance(number, bool):
                ports.setdefault(name, number)
    return ports


# --- which pods are the agents -------------------------------------------------------------------


class LabelMatcher(Protocol):
    """What choose_agents needs of a label selector (clients.cluster.LabelSelector)."""

    def matches(self, labels: Mapping[str, str]) -> bool: ...


def choose_agents(
    pods: Iterable[PodInfo],
    nodes: Iterable[NodeInfo],
    *,
    daemonsets: Mapping[str, str],
    namespace: str,
    daemonset: str,
    selector: LabelMatcher,
    port_name: str,
) -> AgentChoice:
    """Each node's agent endpoint, and every other running pod that looks like an agent.

    A pod that matches the agent selector is the agent of its node only if it is in the agents'
    namespace (any, when `namespace` is empty: development only), controlled by the DaemonSet
    named `daemonset` whose uid is `daemonsets[pod namespace]`, runs in the host network, and its
    pod IP is one of its Node's addresses. The URL is that pod IP and the named port, so the
    portal only ever connects to a node's own address, on the port the DaemonSet declares.

    These checks keep a pod that anyone with an ordinary namespace can create from becoming an
    agent. They do not stand against someone who can create pods in the agents' namespace (an
    ownerReference is plain metadata a creator may copy): keep that namespace to the DaemonSet
    controller. Even then such a pod never learns a reusable secret (docs/agent-auth.md).
    """
    addresses = {node.name: set(node.addresses) for node in nodes}
    endpoints: dict[str, str] = {}
    rogues: list[RogueAgent] = []
    # Sorted so that the choice between two live agent pods on one node (a DaemonSet rollout
    # caught mid-way) is the same on every sweep instead of flapping.
    for pod in sorted(pods, key=lambda pod: (pod.namespace, pod.name)):
        if not selector.matches(pod.labels):
            continue
        if pod.phase != "Running" or pod.deletion_timestamp is not None or not pod.node_name:
            continue  # not answering anyone yet, or any more
        reason = _not_an_agent(
            pod,
            addresses.get(pod.node_name),
            daemonsets=daemonsets,
            namespace=namespace,
            daemonset=daemonset,
            port_name=port_name,
        )
        if reason:
            rogues.append(RogueAgent(pod.namespace, pod.name, pod.node_name, pod.pod_ip, reason))
            continue
        if pod.node_name not in endpoints:
            host = f"[{pod.pod_ip}]" if ":" in pod.pod_ip else pod.pod_ip
            endpoints[pod.node_name] = f"http://{host}:{pod.named_ports[port_name]}"
    return AgentChoice(endpoints, rogues)


def _not_an_agent(
    pod: PodInfo,
    node_addresses: set[str] | None,
    *,
    daemonsets: Mapping[str, str],
    namespace: str,
    daemonset: str,
    port_name: str,
) -> str:
    """Why `pod` is not its node's agent, or "" when it is."""
    if namespace and pod.namespace != namespace:
        return f"in namespace {pod.namespace}, not the agents' namespace {namespace}"
    owner = pod.controller
    expected = f"DaemonSet {pod.namespace}/{daemonset}"
    if owner is None:
        return f"not controlled by the {expected} (no controller)"
    if owner.kind != "DaemonSet" or owner.name != daemonset:
        return f"controlled by {owner.kind or '?'} {owner.name or '?'}, not by the {expected}"
    uid = daemonsets.get(pod.namespace)
    if not uid:
        return f"the {expected} it names does not exist"
    if owner.uid != uid:
        return f"names the {expected} with another uid ({owner.uid or 'none'})"
    if not pod.host_network:
        return "not in the host network (hostNetwork is not true)"
    if node_addresses is None:
        return f"on node {pod.node_name}, which the API does not list"
    if not pod.pod_ip or pod.pod_ip not in node_addresses:
        return f"pod IP {pod.pod_ip or '(none)'} is none of node {pod.node_name}'s addresses"
    if port_name not in pod.named_ports:
        return f"no container port named {port_name}"
    return ""


def daemonset_uids(items: Iterable[Mapping[str, Any]], name: str) -> dict[str, str]:
    """namespace -> uid of every DaemonSet called `name` among the API's DaemonSet objects."""
    found: dict[str, str] = {}
    for item in items:
        metadata = _dict(item.get("metadata"))
        if _str(metadata.get("name")) == name and _str(metadata.get("uid")):
            found[_str(metadata.get("namespace"))] = _str(metadata.get("uid"))
    return found


def nad_from_json(item: Mapping[str, Any]) -> NadInfo:
    metadata = _dict(item.get("metadata"))
    config = _dict(item.get("spec")).get("config")
    if config is None:
        config = ""
    elif not isinstance(config, str):
        # The CRD says string; an object here is still worth showing (and linting) as JSON.
        config = json.dumps(config)
    annotations = _str_dict(metadata.get("annotations"))
    return NadInfo(
        namespace=_str(metadata.get("namespace")),
        name=_str(metadata.get("name")),
        uid=_str(metadata.get("uid")),
        config=config,
        annotations=annotations,
        resource_name=annotations.get(RESOURCE_NAME_ANNOTATION, ""),
        labels=_str_dict(metadata.get("labels")),
    )


def event_from_json(item: Mapping[str, Any]) -> EventInfo:
    metadata = _dict(item.get("metadata"))
    involved = _dict(item.get("involvedObject"))
    series = _dict(item.get("series"))
    count = item.get("count") or series.get("count") or 1
    last_seen = (
        _timestamp(item.get("lastTimestamp"))
        or _timestamp(series.get("lastObservedTime"))
        or _timestamp(item.get("eventTime"))
        or _timestamp(item.get("firstTimestamp"))
        or _timestamp(metadata.get("creationTimestamp"))
    )
    return EventInfo(
        namespace=_str(involved.get("namespace")) or _str(metadata.get("namespace")),
        pod=_str(involved.get("name")),
        reason=_str(item.get("reason")),
        message=_str(item.get("message")),
        count=count if isinstance(count, int) and not isinstance(count, bool) else 1,
        last_seen=last_seen,
        type=_str(item.get("type")),
    )


def is_pod_event(item: Mapping[str, Any]) -> bool:
    return _dict(item.get("involvedObject")).get("kind") == "Pod"


def _timestamp(value: object) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    # The API server writes UTC; a naive value would not compare with the aware ones.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: object) -> str:
    return value if isinstance(value, str) else ""


def _str_dict(value: object) -> dict[str, str]:
    return {k: v for k, v in _dict(value).items() if isinstance(k, str) and isinstance(v, str)}
