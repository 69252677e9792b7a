"""Kubernetes objects the lab creates (its Nodes and agent pods), and KMock's emulator.

The lab itself runs the real kube-apiserver (lab/control_plane.py). KMock's emulator stays for the
fast tests of the portal's cluster client and the benchmarks, which need an API server in-process
with thousands of objects; its known gaps are worked around in this one place.

KMock 0.8 is a stateful in-memory API server, but a few of its answers differ from a real API
server in ways the official `kubernetes` client notices (checked against client 37):

- create answers 200, while the client's generated code only deserializes a 201 body;
- `/version/`, `/apis/` and `/api/` (with the slash the client uses) have no route;
- `labelSelector` and `fieldSelector` are ignored for lists and watches;
- the client sends `watch=True`, KMock only recognises `watch=true`;
- objects get no `uid`, `resourceVersion` or `creationTimestamp`;
- PUT (replace) is not served: it answers 405 here with a message saying to use PATCH.

Everything else (list/get/create/patch/delete/watch, finalizers) is KMock's own behaviour.
"""

from __future__ import annotations

import datetime
import itertools
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Iterable, Mapping
from pathlib import Path
from typing import Any

import aiohttp.web
import attrs
import kmock
import yaml

NAD_RESOURCE = "k8s.cni.cncf.io/v1/network-attachment-definitions"

# Discovery data for every resource the lab serves; KMock answers 404 on a list of a resource it
# has neither declared nor seen an object of, so empty lists (no Events yet) need these.
RESOURCES: dict[str, dict[str, Any]] = {
    "v1/nodes": {"kind": "Node", "singular": "node", "namespaced": False},
    "v1/namespaces": {"kind": "Namespace", "singular": "namespace", "namespaced": False},
    "v1/pods": {"kind": "Pod", "singular": "pod", "namespaced": True, "subresources": {"status"}},
    "v1/events": {"kind": "Event", "singular": "event", "namespaced": True},
    "apps/v1/daemonsets": {"kind": "DaemonSet", "singular": "daemonset", "namespaced": True},
    NAD_RESOURCE: {
        "kind": "NetworkAttachmentDefinition",
        "singular": "network-attachment-definition",
        "shortnames": {"net-attach-def"},
        "namespaced": True,
    },
}
VERBS = {"get", "list", "watch", "create", "patch", "delete"}


class SelectorError(ValueError):
    """A label or field selector this emulator cannot parse (answered as 400)."""


_REQUIREMENT = re.compile(
    r"^\s*(?P<neg>!)?\s*(?P<key>[A-Za-z0-9_./-]+)\s*"
    r"(?:(?P<op>==|!=|=|\s+in\s+|\s+notin\s+)\s*(?P<value>\([^)]*\)|[^,\s]*))?\s*$"
)


def _split_selector(selector: str) -> list[str]:
    # Commas separate requirements, except inside the parentheses of `in (a,b)`.
    parts, depth, current = [], 0, ""
    for char in selector:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    if current.strip():
        parts.append(current)
    return parts


def selector_matches(selector: str, values: Mapping[str, str | None]) -> bool:
    """Evaluate a Kubernetes label/field selector (`a=b,c!=d,e,!f,g in (x,y)`) on flat values."""
    for requirement in _split_selector(selector):
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise SelectorError(f"unable to parse requirement: {requirement!r}")
        key, op = match["key"], (match["op"] or "").strip()
        actual = values.get(key)
        if not op:
            if bool(match["neg"]) == (actual is not None):
                return False
            continue
        raw = match["value"] or ""
        if op in ("in", "notin"):
            wanted = {v.strip() for v in raw.strip("()").split(",") if v.strip()}
            if (actual in wanted) != (op == "in"):
                return False
        elif op == "!=":
            if actual == raw:
                return False
        elif actual != raw:
            return False
    return True


def _field_values(obj: Mapping[str, Any], selector: str) -> dict[str, str | None]:
    # Field selectors name dotted paths (metadata.name, spec.nodeName, involvedObject.uid...).
    values: dict[str, str | None] = {}
    for requirement in _split_selector(selector):
        match = _REQUIREMENT.match(requirement)
        if match is None:
            raise SelectorError(f"unable to parse requirement: {requirement!r}")
        node: Any = obj
        for part in match["key"].split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        # A real API server compares missing fields as the empty string.
        values[match["key"]] = "" if node is None else str(node)
    return values


def object_matches(obj: Mapping[str, Any], params: Mapping[str, str]) -> bool:
    """Whether an object passes the request's `labelSelector` and `fieldSelector`."""
    labels = obj.get("metadata", {}).get("labels") or {}
    label_selector = params.get("labelSelector", "")
    if label_selector and not selector_matches(label_selector, labels):
        return False
    field_selector = params.get("fieldSelector", "")
    if field_selector and not selector_matches(field_selector, _field_values(obj, field_selector)):
        return False
    return True


@attrs.define(kw_only=True)
class LabKubernetesEmulator(kmock.KubernetesEmulator):
    """KMock's emulator plus the fixes listed in the module docstring."""

    _versions: Iterable[int] = attrs.field(factory=lambda: itertools.count(1), init=False)

    def __attrs_post_init__(self) -> None:
        super().__attrs_post_init__()
        for key, info in RESOURCES.items():
            self.resources[key] = {"verbs": VERBS, **info}
        # The client asks for discovery with a trailing slash; KMock routes only the bare paths.
        self["get /version/"] << self._serve_server_version
        self["get /apis/"] << self._serve_apis
        self["get /api/"] << self._serve_api

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if request.method == kmock.method.PUT and request.resource is not None:
            return _status(405, "MethodNotAllowed", "the lab API does not serve PUT: use PATCH")
        if request.action == kmock.action.LIST and request.params.get("watch", "") in ("True", "1"):
            request = attrs.evolve(request, action=kmock.action.WATCH)
        try:
            for key in ("labelSelector", "fieldSelector"):
                if request.params.get(key):
                    object_matches({}, {key: request.params[key]})
        except SelectorError as exc:
            return _status(400, "BadRequest", str(exc))
        if request.resource is not None and isinstance(request.data, dict):
            self._stamp(request)
        response = await super()._handle(request)
        if request.action == kmock.action.CREATE and response.status == 200:
            response.set_status(201)
        return response

    def _stamp(self, request: kmock.Request) -> None:
        # Mutating the parsed body in place: KMock stores exactly this dict.
        metadata = request.data.setdefault("metadata", {})
        if not isinstance(metadata, dict):
            return
        if request.action == kmock.action.CREATE:
            metadata.setdefault("uid", str(uuid.uuid4()))
            metadata.setdefault(
                "creationTimestamp",
                datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            )
            if request.namespace and not metadata.get("namespace"):
                metadata["namespace"] = request.namespace
            metadata.setdefault("generation", 1)
        if request.action in (kmock.action.CREATE, kmock.action.UPDATE):
            metadata["resourceVersion"] = str(next(self._versions))

    async def _serve_list(self, request: kmock.Request) -> kmock.Payload:
        payload: dict[str, Any] = await super()._serve_list(request)
        payload["items"] = [obj for obj in payload["items"] if object_matches(obj, request.params)]
        payload["metadata"] = {"resourceVersion": str(next(self._versions))}
        info = self.resources.get(request.resource) if request.resource else None
        if info is not None and info.kind:
            payload["kind"] = f"{info.kind}List"
            group, version = request.resource.group, request.resource.version
            payload["apiVersion"] = f"{group}/{version}" if group else version
        return payload

    async def _serve_watch(self, request: kmock.Request) -> AsyncIterator[kmock.Payload]:
        async for event in super()._serve_watch(request):
            if not isinstance(event, dict) or object_matches(
                event.get("object", {}), request.params
            ):
                yield event


def _status(code: int, reason: str, message: str) -> aiohttp.web.Response:
    body = {"apiVersion": "v1", "kind": "Status", "metadata": {}, "status": "Failure"}
    return aiohttp.web.json_response(
        {**body, "code": code, "reason": reason, "message": message}, status=code
    )


# Where the host reaches every lab agent (their HTTP sockets stay in the host namespace): each
# lab Node lists it among its addresses, as a real node lists the address its hostNetwork pods
# get, because the portal accepts an agent only on an address of its own node.
AGENT_HOST_IP = "127.0.0.1"


def node_object(
    name: str,
    internal_ip: str,
    labels: Mapping[str, str] | None = None,
    kubelet_version: str = "",
) -> dict[str, Any]:
    """A Ready Node with the labels kubelet sets and the portal reads (veth links are this lab's
    NICs), plus the layout's own labels."""
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "nicportal.io/veth-nics": "true",
                **(labels or {}),
            },
            "annotations": {},
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": internal_ip},
                {"type": "ExternalIP", "address": AGENT_HOST_IP},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
            "nodeInfo": {
                "kubeletVersion": kubelet_version,
                "osImage": "NICPortal lab (network namespace)",
                "kernelVersion": os.uname().release,
                "containerRuntimeVersion": "lab://1",
                "operatingSystem": "linux",
                "architecture": "amd64",
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kubeProxyVersion": "",
            },
        },
    }


AGENT_NAMESPACE = "nicportal"
AGENT_DAEMONSET = "nicportal-agent"
AGENT_LABELS = {"app.kubernetes.io/name": "nicportal-agent"}


def agent_daemonset_object(uid: str = "") -> dict[str, Any]:
    """The agent DaemonSet, so that the agent pods have a real owner. Nothing reconciles it (the
    lab runs no controller-manager; the lab daemon starts the agents itself). `uid` for KMock,
    which assigns none; the real API server assigns its own."""
    metadata: dict[str, Any] = {
        "name": AGENT_DAEMONSET,
        "namespace": AGENT_NAMESPACE,
        "labels": dict(AGENT_LABELS),
    }
    if uid:
        metadata["uid"] = uid
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": metadata,
        "spec": {
            "selector": {"matchLabels": dict(AGENT_LABELS)},
            "template": {
                "metadata": {"labels": dict(AGENT_LABELS)},
                "spec": {
                    "hostNetwork": True,
                    "containers": [{"name": "agent", "image": "nicportal-agent:lab"}],
                },
            },
        },
    }


def agent_pod_object(node: str, port: int, daemonset_uid: str = "") -> dict[str, Any]:
    """The agent DaemonSet's pod on one lab node, as the portal accepts it: controlled by the
    DaemonSet, hostNetwork, pod IP = one of its Node's addresses, a port named `agent`."""
    metadata: dict[str, Any] = {
        "name": f"nicportal-agent-{node}",
        "namespace": AGENT_NAMESPACE,
        "labels": dict(AGENT_LABELS),
    }
    if daemonset_uid:
        metadata["ownerReferences"] = [
            {
                "apiVersion": "apps/v1",
                "kind": "DaemonSet",
                "name": AGENT_DAEMONSET,
                "uid": daemonset_uid,
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {
            "nodeName": node,
            "hostNetwork": True,
            "containers": [
                {
                    "name": "agent",
                    "image": "nicportal-agent:lab",
                    "ports": [{"name": "agent", "containerPort": port, "hostPort": port}],
                }
            ],
        },
        "status": {
            "phase": "Running",
            "hostIP": AGENT_HOST_IP,
            "podIP": AGENT_HOST_IP,
            "podIPs": [{"ip": AGENT_HOST_IP}],
        },
    }


def seed(emulator: kmock.KubernetesEmulator, nodes: Iterable[tuple[str, str, int]]) -> None:
    """Store the Nodes, namespaces, the agent DaemonSet and its pods: `nodes` is
    (name, internal_ip, agent_port)."""
    for namespace in ("default", AGENT_NAMESPACE, "kube-system"):
        emulator.objects["v1/namespaces", None, namespace] = {
            "apiVersion": "v1",
            "kind": "Namespace",
            "metadata": {"name": namespace, "uid": str(uuid.uuid4())},
        }
    daemonset_uid = str(uuid.uuid4())
    emulator.objects["apps/v1/daemonsets", AGENT_NAMESPACE, AGENT_DAEMONSET] = (
        agent_daemonset_object(daemonset_uid)
    )
    for name, internal_ip, port in nodes:
        node = node_object(name, internal_ip)
        node["metadata"]["uid"] = str(uuid.uuid4())
        emulator.objects["v1/nodes", None, name] = node
        pod = agent_pod_object(name, port, daemonset_uid)
        pod["metadata"]["uid"] = str(uuid.uuid4())
        emulator.objects["v1/pods", AGENT_NAMESPACE, pod["metadata"]["name"]] = pod


def write_kubeconfig(path: Path, api_url: str, name: str) -> None:
    """A kubeconfig for the official client and kubectl: plain HTTP on 127.0.0.1, no auth."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": api_url}}],
        "users": [{"name": name, "user": {"token": "lab"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))


def dumps(obj: Any) -> str:
    return json.dumps(obj, separators=(",", ":"))
