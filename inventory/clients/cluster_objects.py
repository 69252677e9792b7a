"""The Kubernetes objects the portal reads, as plain frozen dataclasses, and the pure parsing of
the API's JSON into them (so sync and the tests can use them on recorded objects). No I/O and no
`kubernetes` import: `cluster.py` fetches, this module reads.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from inventory.rules import multus
from inventory.rules.nad.render import RESOURCE_NAME_ANNOTATION


@dataclass(frozen=True, slots=True)
class NodeInfo:
    name: str
    internal_ips: tuple[str, ...]
    labels: dict[str, str]
    annotations: dict[str, str]
    ready: bool


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
class ClusterListing:
    nodes: list[NodeInfo]
    pods: list[PodInfo]
    nads: list[NadInfo]
    sandbox_failures: list[EventInfo]
    agent_endpoints: dict[str, str]  # node name -> "http://hostIP:port"


def node_from_json(item: Mapping[str, Any]) -> NodeInfo:
    metadata = _dict(item.get("metadata"))
    status = _dict(item.get("status"))
    internal_ips = tuple(
        address["address"]
        for address in _list(status.get("addresses"))
        if isinstance(address, dict)
        and address.get("type") == "InternalIP"
        and isinstance(address.get("address"), str)
    )
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
    )


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
