"""The Kubernetes API side of the fleet simulator (bench/fleet.py): list answers from
pre-rendered pages, and watches, with resourceVersions like a real API server's."""

from __future__ import annotations

import json
import threading
from typing import Any

PAGE_SIZE = 500
AGENT_NAMESPACE = "nicportal"


def _pages(
    kind: str, api_version: str, items: list[dict[str, Any]], version: int = 1
) -> list[bytes]:
    """Pre-rendered list pages with continue tokens "<page number>" like a real API server."""
    chunks = [items[i : i + PAGE_SIZE] for i in range(0, len(items), PAGE_SIZE)] or [[]]
    pages = []
    for number, chunk in enumerate(chunks):
        metadata: dict[str, Any] = {"resourceVersion": str(version)}
        if number + 1 < len(chunks):
            metadata["continue"] = str(number + 1)
        body = {"kind": kind, "apiVersion": api_version, "metadata": metadata, "items": chunk}
        pages.append(json.dumps(body, separators=(",", ":")).encode())
    return pages


def _object_key(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return (meta.get("namespace") or "", meta.get("name") or "")


class StaticKubeApi:
    """The read side of a Kubernetes API for ClusterClient: lists (pre-rendered pages) and
    watches, with resourceVersions like a real API server's.

    Every object starts at resourceVersion 1; each change (change()) takes the next version and
    is logged. A watch from version V answers the logged changes of its collection after V, then
    a BOOKMARK at the current version, and ends: a real server sends the same events, but its
    bookmark only shortly before the watch's timeoutSeconds (ClusterWatch stops reading at the
    bookmark either way). A watch from a version older than the log (compact() forgets it) gets
    the ERROR event with code 410 that a real server sends for a version its watch cache no
    longer has."""

    ROUTES = {
        "/api/v1/nodes": ("nodes", "NodeList", "v1"),
        "/api/v1/pods": ("pods", "PodList", "v1"),
        "/api/v1/events": ("events", "EventList", "v1"),
        "/apis/k8s.cni.cncf.io/v1/network-attachment-definitions": (
            "nads",
            "NetworkAttachmentDefinitionList",
            "k8s.cni.cncf.io/v1",
        ),
        f"/apis/apps/v1/namespaces/{AGENT_NAMESPACE}/daemonsets": (
            "daemonsets",
            "DaemonSetList",
            "apps/v1",
        ),
    }

    def __init__(self, objects: dict[str, list[dict[str, Any]]]) -> None:
        self.lock = threading.Lock()
        self.version = 1
        self.forgotten = 0  # changes up to this version are no longer in the log
        self.log: list[tuple[int, str, str, dict[str, Any]]] = []  # (version, key, type, object)
        self.objects: dict[str, dict[tuple[str, str], dict[str, Any]]] = {}
        for key, items in objects.items():
            for obj in items:
                obj.setdefault("metadata", {})["resourceVersion"] = "1"
            self.objects[key] = {_object_key(obj): obj for obj in items}
        self.pages = {path: self._render(path) for path in self.ROUTES}

    def _render(self, path: str) -> list[bytes]:
        key, kind, version = self.ROUTES[path]
        return _pages(kind, version, list(self.objects[key].values()), self.version)

    def change(self, key: str, kind: str, obj: dict[str, Any]) -> int:
        """ADDED, MODIFIED or DELETED `obj` in collection `key`; returns its new version."""
        with self.lock:
            self.version += 1
            obj = json.loads(json.dumps(obj))
            obj.setdefault("metadata", {})["resourceVersion"] = str(self.version)
            if kind == "DELETED":
                self.objects[key].pop(_object_key(obj), None)
            else:
                self.objects[key][_object_key(obj)] = obj
            self.log.append((self.version, key, kind, obj))
            # A list answers at the current version, whatever collection changed.
            self.pages = {path: self._render(path) for path in self.ROUTES}
            return self.version

    def compact(self) -> None:
        """Forget the change log, as etcd compaction and a watch cache's window do."""
        with self.lock:
            self.forgotten = self.version
            self.log = []

    def answer(self, path: str, query: dict[str, list[str]]) -> bytes | None:
        if path.rstrip("/") == "/version":
            return b'{"major":"1","minor":"31","gitVersion":"v1.31.0-bench"}'
        for (namespace, name), obj in self.objects.get("daemonsets", {}).items():
            if path.rstrip("/") == f"/apis/apps/v1/namespaces/{namespace}/daemonsets/{name}":
                return json.dumps(obj).encode()
        if path.rstrip("/") not in self.ROUTES:
            return None
        if (query.get("watch") or [""])[0].lower() in ("true", "1"):
            return self.watch(path.rstrip("/"), (query.get("resourceVersion") or [""])[0])
        pages = self.pages[path.rstrip("/")]
        token = (query.get("continue") or ["0"])[0] or "0"
        number = int(token) if token.isdigit() else 0
        return pages[number] if number < len(pages) else None

    def watch(self, path: str, since: str) -> bytes:
        key = self.ROUTES[path][0]
        with self.lock:
            start = int(since) if since.isdigit() else 0
            if start < self.forgotten:
                status = {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "status": "Failure",
                    "reason": "Expired",
                    "code": 410,
                    "message": f"too old resource version: {start} ({self.forgotten})",
                }
                return json.dumps({"type": "ERROR", "object": status}).encode() + b"\n"
            events = [
                {"type": kind, "object": obj}
                for version, log_key, kind, obj in self.log
                if log_key == key and version > start
            ]
            events.append(
                {
                    "type": "BOOKMARK",
                    "object": {"metadata": {"resourceVersion": str(self.version)}},
                }
            )
        return b"".join(json.dumps(e, separators=(",", ":")).encode() + b"\n" for e in events)
