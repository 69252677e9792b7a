"""The lab kubelet: pods in the lab API become network namespaces, with the real host-device.

It plays kubelet + containerd + Calico + Multus for pods bound to a lab node:

1. the pod gets a finalizer (so deletion waits for teardown, as graceful deletion does);
2. a pod namespace with an `eth0` veth whose host end stays in the node as `cali<hash>`;
3. for each entry of `k8s.v1.cni.cncf.io/networks`, the NAD is read from the API and the real
   `/usr/lib/cni/host-device` runs ADD inside the node's namespace;
4. success: `k8s.v1.cni.cncf.io/network-status` and phase Running are written back;
   failure: earlier ADDs are undone (DEL in reverse, as Multus does), the sandbox namespace is
   removed, a FailedCreatePodSandBox Event is recorded and the pod stays Pending.

On deletion DEL runs for each attachment in reverse order, then the pod namespace goes. A pod
whose namespace vanished (crash) is forgotten without DEL, as containerd does when the netns is
gone. Events are handled one at a time, in order: simple, and fast enough for a lab.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from lab import multus, topology

log = logging.getLogger("lab.kubelet")

FINALIZER = "lab.nicportal.io/kubelet"
CNI_BIN_DIR = os.environ.get("NICPORTAL_LAB_CNI_DIR", "/usr/lib/cni")
NAD_PATH = "/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions/{name}"


@dataclass
class LabNode:
    name: str
    netns: str
    internal_ip: str
    index: int


@dataclass
class PodSandbox:
    """What the kubelet did for one pod, to undo it on deletion."""

    uid: str
    namespace: str
    name: str
    node: LabNode
    netns: str
    sandbox_id: str
    # (attachment, ifname, CNI config bytes) in ADD order
    attached: list[tuple[multus.Attachment, str, bytes]] = field(default_factory=list)
    failed: bool = False


@dataclass
class PluginResult:
    ok: bool
    stdout: str
    stderr: str


class SandboxError(Exception):
    """Multus' part of the sandbox failure message."""


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class LabKubelet:
    def __init__(self, *, api_url: str, lab: str, nodes: list[LabNode]) -> None:
        self.api_url = api_url.rstrip("/")
        self.lab = lab
        self.nodes = {node.name: node for node in nodes}
        self.sandboxes: dict[str, PodSandbox] = {}
        self._pod_ips = 0
        self._session: aiohttp.ClientSession | None = None
        self.ready = asyncio.Event()

    # --- API access -------------------------------------------------------------------------

    @property
    def session(self) -> aiohttp.ClientSession:
        assert self._session is not None
        return self._session

    async def _patch(self, path: str, body: dict[str, Any]) -> int:
        headers = {"Content-Type": "application/merge-patch+json"}
        async with self.session.patch(self.api_url + path, json=body, headers=headers) as resp:
            await resp.read()
            return resp.status

    async def _get(self, path: str) -> tuple[int, Any]:
        async with self.session.get(self.api_url + path) as resp:
            return resp.status, await resp.json(content_type=None)

    # --- main loop --------------------------------------------------------------------------

    async def run(self) -> None:
        # Big pods (long annotations) make long watch lines: allow up to 4 MiB per line.
        timeout = aiohttp.ClientTimeout(total=None)
        async with aiohttp.ClientSession(timeout=timeout, read_bufsize=2**22) as session:
            self._session = session
            while True:
                try:
                    await self._watch()
                except (TimeoutError, aiohttp.ClientError) as exc:
                    log.warning("pod watch interrupted: %s", exc)
                await asyncio.sleep(0.2)

    async def _watch(self) -> None:
        async with self.session.get(self.api_url + "/api/v1/pods?watch=true") as resp:
            resp.raise_for_status()
            self.ready.set()
            async for line in resp.content:
                if not line.strip():
                    continue
                event = json.loads(line)
                try:
                    await self.handle(event.get("type", ""), event.get("object") or {})
                except Exception:  # one bad pod must not stop the kubelet
                    log.exception("handling %s failed", event.get("type"))

    async def handle(self, event_type: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata", {})
        spec = pod.get("spec", {})
        node = self.nodes.get(spec.get("nodeName", ""))
        uid = meta.get("uid", "")
        if node is None or spec.get("hostNetwork") or not uid:
            return
        sandbox = self.sandboxes.get(uid)
        if event_type == "DELETED" or meta.get("deletionTimestamp"):
            if sandbox is not None:
                await self.teardown(sandbox)
                del self.sandboxes[uid]
            if event_type != "DELETED" and FINALIZER in (meta.get("finalizers") or []):
                finalizers = [f for f in meta.get("finalizers") or [] if f != FINALIZER]
                path = f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}"
                await self._patch(path, {"metadata": {"finalizers": finalizers}})
            return
        if sandbox is None and pod.get("status", {}).get("phase") in (None, "", "Pending"):
            await self.setup(pod, node)

    # --- ADD --------------------------------------------------------------------------------

    async def setup(self, pod: dict[str, Any], node: LabNode) -> None:
        meta = pod["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        pod_path = f"/api/v1/namespaces/{namespace}/pods/{name}"
        sandbox = PodSandbox(
            uid=uid,
            namespace=namespace,
            name=name,
            node=node,
            netns=topology.pod_netns(self.lab, uid),
            sandbox_id=hashlib.sha256(uid.encode()).hexdigest(),
        )
        self.sandboxes[uid] = sandbox
        finalizers = [*(meta.get("finalizers") or []), FINALIZER]
        await self._patch(pod_path, {"metadata": {"finalizers": finalizers}})
        await self._patch(pod_path + "/status", {"status": {"phase": "Pending"}})
        pod_ip = await self._create_sandbox_netns(sandbox)
        try:
            statuses = await self._attach_all(pod, sandbox)
        except SandboxError as exc:
            sandbox.failed = True
            await self._detach_all(sandbox)
            topology.delete_namespaces([sandbox.netns])
            await self._record_failure(
                pod, node, multus.sandbox_failure(sandbox.sandbox_id, str(exc))
            )
            return
        default = multus.status_entry(
            multus.DEFAULT_NETWORK, "eth0", statuses.pop(0), [pod_ip], default=True
        )
        network_status = json.dumps([default, *statuses], indent=4)
        await self._patch(
            pod_path,
            {"metadata": {"annotations": {multus.NETWORK_STATUS_ANNOTATION: network_status}}},
        )
        await self._patch(
            pod_path + "/status",
            {
                "status": {
                    "phase": "Running",
                    "hostIP": node.internal_ip,
                    "podIP": pod_ip,
                    "podIPs": [{"ip": pod_ip}],
                    "startTime": now(),
                    "conditions": [{"type": "Ready", "status": "True"}],
                }
            },
        )

    async def _create_sandbox_netns(self, sandbox: PodSandbox) -> str:
        # What Calico would do: a veth, `eth0` in the pod, `cali<hash>` left in the node.
        self._pod_ips += 1
        pod_ip = f"10.244.{sandbox.node.index}.{self._pod_ips % 250 + 2}"
        host_end = "cali" + hashlib.sha1(sandbox.uid.encode()).hexdigest()[:11]
        await _run("ip", "netns", "add", sandbox.netns)
        await _run(
            "ip", "-n", sandbox.node.netns, "-force", "-batch", "-",
            stdin=(
                f"link add {host_end} type veth peer name eth0 netns {sandbox.netns}\n"
                f"link set {host_end} up\n"
            ).encode(),
        )  # fmt: skip
        await _run(
            "ip", "-n", sandbox.netns, "-force", "-batch", "-",
            stdin=f"link set lo up\nlink set eth0 up\naddr add {pod_ip}/32 dev eth0\n".encode(),
        )  # fmt: skip
        return pod_ip

    async def _attach_all(self, pod: dict[str, Any], sandbox: PodSandbox) -> list[Any]:
        """ADD every attachment; returns [eth0 MAC, status entries...] or raises SandboxError."""
        annotations = pod["metadata"].get("annotations") or {}
        try:
            attachments = multus.parse_networks(
                annotations.get(multus.NETWORKS_ANNOTATION, ""), sandbox.namespace
            )
        except multus.AnnotationError as exc:
            raise SandboxError(
                f"Multus: [{sandbox.namespace}/{sandbox.name}/{sandbox.uid}]: {exc}"
            ) from exc
        eth0_mac = await self._link_mac(sandbox.netns, "eth0")
        statuses: list[Any] = [eth0_mac]
        for attachment, ifname in zip(
            attachments, multus.interface_names(attachments), strict=True
        ):
            status, body = await self._get(
                NAD_PATH.format(namespace=attachment.namespace, name=attachment.name)
            )
            if status != 200:
                raise SandboxError(
                    f"Multus: [{sandbox.namespace}/{sandbox.name}/{sandbox.uid}]: error loading"
                    " k8s delegates k8s args: TryLoadPodDelegates: error in getting k8s network"
                    " for pod: GetNetworkDelegates: failed getting the delegate:"
                    " getKubernetesDelegate: cannot find a network-attachment-definition"
                    f" ({attachment.name}) in namespace ({attachment.namespace}):"
                    f' network-attachment-definitions.k8s.cni.cncf.io "{attachment.name}"'
                    " not found"
                )
            config = ((body.get("spec") or {}).get("config") or "").encode()
            result = await self._plugin("ADD", sandbox, ifname, config)
            if not result.ok:
                # Multus runs DEL for the failed delegate too; host-device then finds nothing.
                sandbox.attached.append((attachment, ifname, config))
                raise SandboxError(
                    multus.delegate_failure(
                        sandbox.namespace,
                        sandbox.name,
                        sandbox.uid,
                        attachment.name,
                        multus.plugin_error_text(result.stdout, result.stderr),
                    )
                )
            sandbox.attached.append((attachment, ifname, config))
            mac, ips = _result_interface(result.stdout, ifname)
            if not mac:
                mac = await self._link_mac(sandbox.netns, ifname)
            statuses.append(multus.status_entry(attachment.qualified_name, ifname, mac, ips))
        return statuses

    async def _link_mac(self, netns: str, ifname: str) -> str:
        out = await _run("ip", "-n", netns, "-j", "link", "show", "dev", ifname, check=False)
        try:
            return json.loads(out)[0]["address"]
        except (ValueError, IndexError, KeyError):
            return ""

    async def _plugin(
        self, command: str, sandbox: PodSandbox, ifname: str, config: bytes
    ) -> PluginResult:
        cni_args = (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={sandbox.namespace};K8S_POD_NAME={sandbox.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={sandbox.sandbox_id};K8S_POD_UID={sandbox.uid}"
        )
        env = [
            f"CNI_COMMAND={command}",
            f"CNI_CONTAINERID={sandbox.sandbox_id}",
            f"CNI_NETNS=/run/netns/{sandbox.netns}",
            f"CNI_IFNAME={ifname}",
            f"CNI_PATH={CNI_BIN_DIR}",
            f"CNI_ARGS={cni_args}",
        ]
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", sandbox.node.netns, "env", "-i", *env,
            f"{CNI_BIN_DIR}/host-device",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await proc.communicate(config)
        result = PluginResult(proc.returncode == 0, stdout.decode(), stderr.decode())
        log.info(
            "host-device %s %s/%s %s in %s: rc=%s %s",
            command, sandbox.namespace, sandbox.name, ifname, sandbox.node.name,
            proc.returncode, (result.stdout if not result.ok else "").strip(),
        )  # fmt: skip
        return result

    async def _record_failure(self, pod: dict[str, Any], node: LabNode, message: str) -> None:
        meta = pod["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{secrets.token_hex(8)}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": "FailedCreatePodSandBox",
            "type": "Warning",
            "message": message,
            "source": {"component": "kubelet", "host": node.name},
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
            "reportingComponent": "kubelet",
            "reportingInstance": node.name,
        }
        url = f"{self.api_url}/api/v1/namespaces/{meta['namespace']}/events"
        async with self.session.post(url, json=event) as resp:
            await resp.read()

    # --- DEL --------------------------------------------------------------------------------

    async def _detach_all(self, sandbox: PodSandbox) -> None:
        for _attachment, ifname, config in reversed(sandbox.attached):
            await self._plugin("DEL", sandbox, ifname, config)
        sandbox.attached.clear()

    async def teardown(self, sandbox: PodSandbox) -> None:
        if not topology.netns_exists(sandbox.netns):
            # The namespace died without DEL (a crash): nothing left to give back.
            log.info("pod %s/%s: netns already gone, no DEL", sandbox.namespace, sandbox.name)
            return
        await self._detach_all(sandbox)
        topology.delete_namespaces([sandbox.netns])


def _result_interface(stdout: str, ifname: str) -> tuple[str, list[str]]:
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        return "", []
    mac = ""
    for index, interface in enumerate(result.get("interfaces") or []):
        if interface.get("name") == ifname and interface.get("sandbox"):
            mac = interface.get("mac", "")
            ips = [
                ip["address"].split("/")[0]
                for ip in result.get("ips") or []
                if ip.get("interface", index) == index
            ]
            return mac, ips
    return mac, [ip["address"].split("/")[0] for ip in result.get("ips") or []]


async def _run(*command: str, stdin: bytes | None = None, check: bool = True) -> str:
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await proc.communicate(stdin)
    if check and proc.returncode != 0:
        raise topology.TopologyError(f"{' '.join(command)}: {stderr.decode().strip()}")
    return stdout.decode()
