"""Fleet simulator: thousands of node agents, and a static Kubernetes API, in ONE process.

Each simulated node answers ``GET /n/<node>/v1/snapshot`` with a pre-rendered snapshot body that
satisfies nodeagent.schema.SNAPSHOT_SCHEMA (every field present), its own ETag, and 304 when the
request's If-None-Match is that ETag. Like the real agent it checks the portal's signature (its
node's key derived from MASTER_KEY, the address, a fresh nonce) and signs every answer.
Rendering happens at start-up and on churn only, so a warm sweep measures the portal, not the
simulator.

The same server also answers the few read-only Kubernetes API paths that ClusterClient reads
(``/version``, nodes, pods, events, NADs), from pre-rendered pages of PAGE_SIZE items with
``continue`` tokens like a real API server, and watches of them with resourceVersions, bookmarks
and 410 (StaticKubeApi). This is the "static fake API": it exists because KMock is an in-memory
emulator that re-serialises every object on each list (measured in BENCHMARKS.md) and has no
resourceVersions or bookmarks, which a real API server with a watch cache has.

Cluster changes: ``POST /control/multus-pod?index=N&type=ADDED|DELETED`` starts or removes the
Multus pod of node N; ``POST /control/compact`` forgets the change log (the next watch from an
older resourceVersion gets 410).

Churn (``POST /control/churn?fraction=0.01&seed=1``): a fraction of the nodes get a new
generation, in which one NIC is renamed (host-device renames devices it moves) and the snapshot
is collected again: a new body and a new ETag. The answer lists the churned node names.

Run: ``python -m bench.fleet --nodes 1000 --nics 16 --port 0 --ready-file /tmp/fleet.port``.
The stdlib ThreadingHTTPServer with HTTP/1.1 keep-alive is used (one thread per connection;
the portal keeps one connection open per concurrent fetch): see BENCHMARKS.md for its throughput.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import sys
import threading
import urllib.parse
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from bench.static_api import AGENT_NAMESPACE, StaticKubeApi
from nodeagent import auth

# The benchmark's master key (a fixed value: nothing here is secret, everything is on loopback).
MASTER_KEY = "bench-master-key-not-a-secret-0123456789"
DAEMONSET_UID = "bench-agent-daemonset"
MULTUS_NAMESPACE = "workloads"
NAD_NAME = "fast-nic"
CLUSTER_NAME = "bench"
# One Multus pod for this many nodes: the pod holds the node's last NIC (absent from the host).
MULTUS_POD_EVERY = 50


def node_name(index: int) -> str:
    return f"sim-{index:05d}"


def internal_ip(index: int) -> str:
    number = index + 1
    return f"10.{(number >> 16) & 255}.{(number >> 8) & 255}.{number & 255}"


def _mac(index: int, port: int) -> str:
    raw = (index << 8) | port
    return "02:" + ":".join(f"{(raw >> shift) & 255:02x}" for shift in (32, 24, 16, 8, 0))


def _link(ifindex: int, name: str, kind: str, mac: str | None, **facts: Any) -> dict[str, Any]:
    link: dict[str, Any] = {
        "ifindex": ifindex,
        "name": name,
        "altnames": [],
        "alias": None,
        "mac": mac,
        "permanent_mac": mac if kind == "physical" else None,
        "kind": kind,
        "master": None,
        "master_kind": None,
        "operstate": "up",
        "carrier": True,
        "mtu": 1500,
        "speed_mbps": None,
        "driver": None,
        "pci_address": None,
        "vendor_id": None,
        "device_id": None,
        "numa_node": None,
        "sriov_total_vfs": None,
        "sriov_num_vfs": None,
        "pf_pci_address": None,
        "pf_name": None,
        "wireless": False,
        "addresses": [],
        "default_route_v4": False,
        "default_route_v6": False,
    }
    link.update(facts)
    return link


def nic_name(port: int, generation: int) -> str:
    base = f"ens{1 + port // 4}f{port % 4}"
    return base if generation == 0 else f"{base}r{generation}"


def render_snapshot(
    index: int, nics: int, generation: int, multus_every: int = MULTUS_POD_EVERY
) -> dict[str, Any]:
    """The snapshot of simulated node `index`: `nics` links in all (lo, eth0 with the default
    route, one Calico veth, then physical NICs). Generation g > 0 renames NIC number g % n."""
    name = node_name(index)
    links = [
        _link(1, "lo", "loopback", "00:00:00:00:00:00", addresses=[_addr("127.0.0.1", 8)]),
        _link(
            2,
            "eth0",
            "physical",
            _mac(index, 0),
            driver="virtio_net",
            pci_address="0000:00:03.0",
            vendor_id="0x1af4",
            device_id="0x1041",
            addresses=[_addr(internal_ip(index), 16)],
            default_route_v4=True,
        ),
        _link(3, f"cali{index:011x}", "veth", _mac(index, 1)),
    ][:nics]
    ports = max(0, nics - 3)
    renamed = (generation % ports) if ports and generation else -1
    for port in range(ports):
        links.append(
            _link(
                4 + port,
                nic_name(port, generation if port == renamed else 0),
                "physical",
                _mac(index, 16 + port),
                driver="ice",
                speed_mbps=25000,
                pci_address=f"0000:{0x18 + port // 4:02x}:00.{port % 4}",
                vendor_id="0x8086",
                device_id="0x159b",
                numa_node=port // 8,
                sriov_total_vfs=64,
                sriov_num_vfs=0,
            )
        )
    if ports and multus_every and index % multus_every == 0:
        links.pop()  # the last NIC is in the Multus pod's netns (see multus_pod_object)
    return {
        "schema_version": 1,
        "node": name,
        "agent_version": "0.1.0-sim",
        "collected_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "netns": None,
        "links": links,
        "pci_functions": [],
        "cni": {
            "bin_dirs": [
                {
                    "path": "/opt/cni/bin",
                    "host_device": True,
                    "host_device_version": "1.1.1",
                    "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
                }
            ],
            "host_device": {
                "path": "/opt/cni/bin/host-device",
                "version": "1.1.1",
                "supported_versions": ["0.3.1", "0.4.0", "1.0.0"],
            },
        },
    }


def _addr(address: str, prefixlen: int) -> dict[str, Any]:
    return {"family": 4, "address": address, "prefixlen": prefixlen, "scope": "global"}


# --------------------------------------------------------------------------- Kubernetes objects


def node_object(index: int) -> dict[str, Any]:
    name = node_name(index)
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "uid": f"node-{index}",
            "labels": {"kubernetes.io/hostname": name},
            "annotations": {},
        },
        "spec": {},
        "status": {
            "addresses": [
                {"type": "InternalIP", "address": internal_ip(index)},
                # Where the simulator answers for this node's agent (see agent_pod_object).
                {"type": "ExternalIP", "address": "127.0.0.1"},
                {"type": "Hostname", "address": name},
            ],
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady"}],
        },
    }


def daemonset_object() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {
            "name": "nicportal-agent",
            "namespace": AGENT_NAMESPACE,
            "uid": DAEMONSET_UID,
            "labels": {"app.kubernetes.io/name": "nicportal-agent"},
        },
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "nicportal-agent"}}},
    }


def agent_pod_object(index: int, port: int) -> dict[str, Any]:
    """The agent DaemonSet's pod: pod IP 127.0.0.1 (one of its Node's addresses) and the
    simulator's port, so every node's discovered agent URL is http://127.0.0.1:PORT
    (FleetAgentClient adds the /n/<node> path)."""
    name = node_name(index)
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"nicportal-agent-{name}",
            "namespace": AGENT_NAMESPACE,
            "uid": f"agent-{index}",
            "labels": {"app.kubernetes.io/name": "nicportal-agent"},
            "ownerReferences": [
                {
                    "apiVersion": "apps/v1",
                    "kind": "DaemonSet",
                    "name": "nicportal-agent",
                    "uid": DAEMONSET_UID,
                    "controller": True,
                }
            ],
        },
        "spec": {
            "nodeName": name,
            "hostNetwork": True,
            "containers": [
                {
                    "name": "agent",
                    "ports": [{"name": "agent", "containerPort": port, "hostPort": port}],
                }
            ],
        },
        "status": {"phase": "Running", "hostIP": "127.0.0.1", "podIP": "127.0.0.1"},
    }


def multus_pod_object(index: int, nics: int) -> dict[str, Any]:
    """A Running pod holding the node's last NIC through host-device (network-status by MAC)."""
    name = node_name(index)
    port = nics - 4
    mac = _mac(index, 16 + port)
    status = [
        {"name": "k8s-pod-network", "interface": "eth0", "default": True},
        {"name": f"{MULTUS_NAMESPACE}/{NAD_NAME}", "interface": "net1", "mac": mac},
    ]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"dpdk-{name}",
            "namespace": MULTUS_NAMESPACE,
            "uid": f"multus-{index}",
            "labels": {"app": "dpdk"},
            "annotations": {
                "k8s.v1.cni.cncf.io/networks": NAD_NAME,
                "k8s.v1.cni.cncf.io/network-status": json.dumps(status),
            },
        },
        "spec": {"nodeName": name, "containers": [{"name": "app"}]},
        "status": {"phase": "Running", "hostIP": internal_ip(index), "podIP": "10.244.0.2"},
    }


def nad_object() -> dict[str, Any]:
    config = {
        "cniVersion": "0.4.0",
        "name": NAD_NAME,
        "type": "host-device",
        "device": nic_name(12, 0),
    }
    return {
        "apiVersion": "k8s.cni.cncf.io/v1",
        "kind": "NetworkAttachmentDefinition",
        "metadata": {"name": NAD_NAME, "namespace": MULTUS_NAMESPACE, "uid": "nad-1"},
        "spec": {"config": json.dumps(config)},
    }


def cluster_objects(
    nodes: int, nics: int, agent_port: int, multus_every: int = MULTUS_POD_EVERY
) -> dict[str, list[dict[str, Any]]]:
    """Everything the fake cluster holds, by resource: nodes, pods, nads, events, the agents'
    DaemonSet."""
    pods = [agent_pod_object(i, agent_port) for i in range(nodes)]
    if nics > 3 and multus_every:
        pods += [multus_pod_object(i, nics) for i in range(0, nodes, multus_every)]
    return {
        "nodes": [node_object(i) for i in range(nodes)],
        "pods": pods,
        "nads": [nad_object()],
        "events": [],
        "daemonsets": [daemonset_object()],
    }


# --------------------------------------------------------------------------- the simulator


@dataclass
class Fleet:
    nodes: int
    nics: int
    multus_every: int = MULTUS_POD_EVERY  # 0: no Multus pods
    generations: list[int] = field(default_factory=list)
    bodies: dict[str, tuple[bytes, str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    not_modified: int = 0

    def __post_init__(self) -> None:
        self.generations = [0] * self.nodes
        for index in range(self.nodes):
            self._render(index)

    def _render(self, index: int) -> None:
        body = json.dumps(
            render_snapshot(index, self.nics, self.generations[index], self.multus_every),
            separators=(",", ":"),
        ).encode()
        etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        self.bodies[node_name(index)] = (body, etag)

    def churn(self, fraction: float, seed: int) -> list[str]:
        count = round(self.nodes * fraction)
        if fraction > 0:
            count = max(1, count)
        chosen = sorted(random.Random(seed).sample(range(self.nodes), min(count, self.nodes)))
        with self.lock:
            for index in chosen:
                self.generations[index] += 1
                self._render(index)
        return [node_name(i) for i in chosen]


class FleetHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive: the portal's sweep threads reuse connections
    # Headers and body leave in two writes; on a kept-alive connection Nagle's algorithm holds
    # the body until the client ACKs the headers, which it delays by up to 40 ms.
    disable_nagle_algorithm = True
    server: FleetServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _send(
        self,
        status: int,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
        *,
        answer_to: auth.SignedRequest | None = None,
    ) -> None:
        """Send an answer; one to an authenticated agent request is signed like the agent's."""
        headers = dict(headers or {})
        if answer_to is not None:
            headers[auth.SIGNATURE_HEADER] = auth.sign_answer(
                self.server.node_key(answer_to.node),
                node=answer_to.node,
                nonce=answer_to.nonce,
                status=status,
                etag=headers.get("ETag", ""),
                body=body if status != 304 else b"",
            )
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        if status != 304:
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and status != 304:
            self.wfile.write(body)

    def do_GET(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        parts = parsed.path.split("/")
        fleet = self.server.fleet
        # /n/<node>/v1/snapshot
        if len(parts) == 5 and parts[1] == "n" and parts[3:] == ["v1", "snapshot"]:
            request = self._authenticate(parts[2])
            if request is None:
                return
            entry = fleet.bodies.get(parts[2])
            if entry is None:
                self._send(404, b'{"error":"no such node"}', answer_to=request)
                return
            body, etag = entry
            fleet.requests += 1  # approximate under threads; only reported, never asserted
            if self.headers.get("If-None-Match") == etag:
                fleet.not_modified += 1
                self._send(304, headers={"ETag": etag}, answer_to=request)
                return
            self._send(200, body, {"ETag": etag}, answer_to=request)
            return
        if parsed.path == "/control/stats":
            stats = {"requests": fleet.requests, "not_modified": fleet.not_modified}
            self._send(200, json.dumps(stats).encode())
            return
        body = self.server.kube.answer(parsed.path, urllib.parse.parse_qs(parsed.query))
        if body is None:
            self._send(404, b'{"kind":"Status","status":"Failure","code":404,"reason":"NotFound"}')
            return
        self._send(200, body)

    def _authenticate(self, node: str) -> auth.SignedRequest | None:
        """Check the portal's signature as the agent of `node` does (nodeagent.http_api)."""
        try:
            request = auth.parse_authorization(self.headers.get("Authorization"))
            if request.node != node:
                raise auth.AuthError("wrong_node", "signed for another node")
            key = self.server.node_key(node)
            local = self.connection.getsockname()
            auth.verify_request(
                request,
                {auth.key_id(key): key},
                direction=auth.PORTAL_TO_AGENT,
                method="GET",
                authority=auth.authority(local[0], local[1]),
                path=self.path,
            )
            self.server.nonces.remember(request.nonce, request.ts)
        except auth.AuthError as error:
            body = json.dumps({"error": "unauthorized", "reason": error.code}).encode()
            self._send(401, body)
            return None
        return request

    def do_POST(self) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        query = urllib.parse.parse_qs(parsed.query)
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        if parsed.path == "/control/churn":
            fraction = float((query.get("fraction") or ["0.01"])[0])
            seed = int((query.get("seed") or ["1"])[0])
            churned = self.server.fleet.churn(fraction, seed)
            self._send(200, json.dumps({"churned": churned}).encode())
            return
        if parsed.path == "/control/multus-pod":
            # A Multus pod on node `index` starts (ADDED) or goes (DELETED) in the fake cluster.
            index = int((query.get("index") or ["0"])[0])
            kind = (query.get("type") or ["ADDED"])[0]
            pod = multus_pod_object(index, self.server.fleet.nics)
            version = self.server.kube.change("pods", kind, pod)
            self._send(200, json.dumps({"resourceVersion": version}).encode())
            return
        if parsed.path == "/control/compact":
            self.server.kube.compact()
            self._send(200, b"{}")
            return
        self._send(404, b"{}")


class FleetServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128

    def __init__(self, fleet: Fleet, *, port: int = 0, master_key: str = MASTER_KEY) -> None:
        super().__init__(("127.0.0.1", port), FleetHandler)
        self.fleet = fleet
        self.master_key = master_key.encode()
        self._node_keys: dict[str, bytes] = {}
        # One memory for all simulated agents (nonces are random); sized for many sweeps of a
        # big fleet within the replay window.
        self.nonces = auth.NonceMemory(capacity=10_000_000)
        self.kube = StaticKubeApi(
            cluster_objects(fleet.nodes, fleet.nics, self.port, fleet.multus_every)
        )

    def node_key(self, node: str) -> bytes:
        key = self._node_keys.get(node)
        if key is None:
            key = auth.derive_node_key(self.master_key, cluster=CLUSTER_NAME, node=node)
            self._node_keys[node] = key
        return key

    @property
    def port(self) -> int:
        return self.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def start_in_thread(
    nodes: int, nics: int, *, multus_every: int = MULTUS_POD_EVERY, master_key: str = MASTER_KEY
) -> FleetServer:
    """For the CI smoke test: a small fleet served from a daemon thread of this process."""
    server = FleetServer(Fleet(nodes, nics, multus_every), master_key=master_key)
    threading.Thread(target=server.serve_forever, name="fleet", daemon=True).start()
    return server


def write_kubeconfig(path: Path, api_url: str, name: str = CLUSTER_NAME) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": api_url}}],
        "users": [{"name": name, "user": {"token": "bench"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name}}],
        "current-context": name,
    }
    path.write_text(json.dumps(config))  # JSON is YAML: the client's loader reads it
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--nodes", type=int, default=1000)
    parser.add_argument("--nics", type=int, default=16)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--master-key", default=MASTER_KEY)
    parser.add_argument("--ready-file", type=Path, help="write the port here once listening")
    args = parser.parse_args(argv)
    server = FleetServer(Fleet(args.nodes, args.nics), port=args.port, master_key=args.master_key)
    if args.ready_file:
        args.ready_file.write_text(str(server.port))
    print(f"fleet nodes={args.nodes} nics={args.nics} url={server.url}", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
