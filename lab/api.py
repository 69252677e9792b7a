"""A small asyncio client for the lab's kube-apiserver: JSON over HTTPS with a bearer token.

The lab's own actors (bootstrap, kubelet, Multus) each hold one, with their own token, so RBAC
judges each of them as it would judge the real component.
"""

from __future__ import annotations

import asyncio
import json
import ssl
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import aiohttp

# kind -> (API prefix, plural, namespaced) for the objects the lab creates from manifests.
RESOURCE_PATHS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "Node": ("/api/v1", "nodes", False),
    "Pod": ("/api/v1", "pods", True),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Event": ("/api/v1", "events", True),
    "DaemonSet": ("/apis/apps/v1", "daemonsets", True),
    "CustomResourceDefinition": (
        "/apis/apiextensions.k8s.io/v1",
        "customresourcedefinitions",
        False,
    ),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "NetworkAttachmentDefinition": (
        "/apis/k8s.cni.cncf.io/v1",
        "network-attachment-definitions",
        True,
    ),
}


class ApiError(Exception):
    def __init__(self, status: int, body: Any, what: str) -> None:
        self.status = status
        self.body = body
        message = body.get("message") if isinstance(body, dict) else str(body)
        super().__init__(f"{what}: {status} {message}")

    @property
    def reason(self) -> str:
        return self.body.get("reason", "") if isinstance(self.body, dict) else ""


def collection_path(obj: Mapping[str, Any]) -> str:
    prefix, plural, namespaced = RESOURCE_PATHS[obj["kind"]]
    if namespaced:
        namespace = obj["metadata"].get("namespace") or "default"
        return f"{prefix}/namespaces/{namespace}/{plural}"
    return f"{prefix}/{plural}"


def ssl_context(ca_file: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(ca_file))


class Api:
    def __init__(self, url: str, token: str, ca_file: Path) -> None:
        self.url = url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
        self._ssl = ssl_context(ca_file)
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> Api:
        # Big pods (long annotations) make long watch lines: allow up to 4 MiB per line.
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=5),
            read_bufsize=2**22,
            connector=aiohttp.TCPConnector(ssl=self._ssl),
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None, "use `async with Api(...)`"
        return self._session

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        params: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": content_type} if data is not None else {}
        async with self.session.request(
            method,
            self.url + path,
            data=data,
            params=params,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=30),
        ) as resp:
            raw = await resp.read()
            try:
                return resp.status, json.loads(raw) if raw else {}
            except json.JSONDecodeError:
                return resp.status, raw.decode(errors="replace")

    async def call(self, method: str, path: str, body: Any = None, **kwargs: Any) -> Any:
        """request(), raising ApiError unless the answer is 2xx."""
        status, answer = await self.request(method, path, body, **kwargs)
        if not 200 <= status < 300:
            raise ApiError(status, answer, f"{method} {path}")
        return answer

    async def get(self, path: str, **kwargs: Any) -> Any:
        return await self.call("GET", path, **kwargs)

    async def merge_patch(self, path: str, body: Any) -> Any:
        return await self.call("PATCH", path, body, content_type="application/merge-patch+json")

    async def strategic_patch(self, path: str, body: Any) -> Any:
        return await self.call(
            "PATCH", path, body, content_type="application/strategic-merge-patch+json"
        )

    async def create(self, obj: Mapping[str, Any], *, exist_ok: bool = False) -> Any:
        status, answer = await self.request("POST", collection_path(obj), obj)
        if status == 409 and exist_ok:
            return answer
        if not 200 <= status < 300:
            raise ApiError(status, answer, f"create {obj['kind']} {obj['metadata']['name']}")
        return answer

    async def watch(
        self, path: str, params: Mapping[str, str] | None = None
    ) -> AsyncIterator[dict[str, Any]]:
        """One watch request's events (ends when the server closes it)."""
        query = {"watch": "true", "allowWatchBookmarks": "true", **(params or {})}
        async with self.session.get(self.url + path, params=query) as resp:
            if resp.status != 200:
                raise ApiError(resp.status, await resp.text(), f"watch {path}")
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)

    async def wait_for(self, path: str, timeout: float = 30.0) -> Any:
        """GET path until it answers 2xx (a CRD becoming served, a namespace appearing)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            status, answer = await self.request("GET", path)
            if 200 <= status < 300:
                return answer
            if asyncio.get_running_loop().time() > deadline:
                raise ApiError(status, answer, f"waiting for {path}")
            await asyncio.sleep(0.1)
