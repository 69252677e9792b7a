"""The lab kubelet: pods on the real API server become network namespaces, through real Multus
v4.2.3 and the node's real host-device release.

It plays kube-scheduler + kubelet + containerd for the lab nodes (Calico's CNI plugin is
lab/calico_cni.py, which Multus runs), as the `lab-kubelet`
identity:

1. scheduling: a pod without `spec.nodeName` is bound (`pods/<name>/binding`) to the lab node
   with the fewest pods among those matching its `nodeSelector` and required node affinity
   (Normal `Scheduled`); none matches: Warning `FailedScheduling`, condition PodScheduled False;
2. sandbox: a pod namespace (`lo` up), then the node's real Multus binary, CNI ADD in the node's
   namespace (lab/cni.py): Multus delegates eth0 to the cluster network and each attachment to
   the node's host-device, and writes network-status itself; a failed ADD is followed by DEL,
   as containerd tears the network down. A node set to Multus 3.9 gets the eth0 veth from the
   kubelet and the lab's reproduction of 3.9 (lab/multus.py);
3. success: status Running (strategic merge patch of pods/<name>/status), Events `Created`,
   `Started`; failure: the namespace goes, Warning `FailedCreatePodSandBox` with the runtime's
   wording around Multus' message, and the sandbox is tried again with back-off (10 s doubling
   up to 5 min, as kubelet's pod workers do; `NICPORTAL_LAB_SANDBOX_BACKOFF` sets the first
   delay); a repeated Event is counted (`count`, `lastTimestamp`) as client-go's correlator does;
4. graceful deletion: on `deletionTimestamp`, Normal `Killing`, Multus DEL, the namespace goes,
   then DELETE with grace period 0 and the pod's UID as precondition, as kubelet confirms.

A pod whose namespace vanished (crash) is forgotten without DEL, as containerd does when the
netns is gone. Host-network pods (the agents) are only marked Running, with pod IP = host IP =
127.0.0.1, an address every lab Node lists. Work is done one item at
a time from one queue (watch events and retry timers), so no two steps race on one pod.
"""

from __future__ import annotations

import asyncio
import datetime
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab import cni, multus, topology
from lab.api import Api, ApiError
from lab.kube_api import AGENT_HOST_IP

log = logging.getLogger("lab.kubelet")

SCHEDULER = "default-scheduler"
FIRST_BACKOFF = float(os.environ.get("NICPORTAL_LAB_SANDBOX_BACKOFF", "10"))
MAX_BACKOFF = 300.0


@dataclass
class LabNode:
    name: str
    netns: str
    internal_ip: str
    index: int
    labels: dict[str, str] = field(default_factory=dict)
    host_device: Path = Path("/usr/lib/cni/host-device")
    multus_version: str = "4.2"
    pci_devices: Path | None = None  # a simulated SR-IOV NIC's devices directory (lab/sriov.py)
    cni: cni.NodeCni | None = None  # the node's real Multus installation (lab/cni.py)


@dataclass
class PodSandbox:
    """What the kubelet did for one pod, to undo it on deletion."""

    uid: str
    namespace: str
    name: str
    node: LabNode
    sandbox_id: str
    netns: str
    emulated: multus.Sandbox | None = None  # a Multus 3.9 node: the lab plays Multus
    pod_ip: str = ""


def now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def pod_path(namespace: str, name: str) -> str:
    return f"/api/v1/namespaces/{namespace}/pods/{name}"


# --- scheduling (pure) -------------------------------------------------------------------------


def _expression_matches(expression: dict[str, Any], values: dict[str, str]) -> bool:
    key, operator = expression.get("key", ""), expression.get("operator", "")
    wanted = expression.get("values") or []
    present = key in values
    if operator == "In":
        return present and values[key] in wanted
    if operator == "NotIn":
        return not present or values[key] not in wanted
    if operator == "Exists":
        return present
    if operator == "DoesNotExist":
        return not present
    if operator in ("Gt", "Lt") and present and len(wanted) == 1:
        try:
            actual, limit = int(values[key]), int(wanted[0])
        except ValueError:
            return False
        return actual > limit if operator == "Gt" else actual < limit
    return False


def node_fits(pod: dict[str, Any], node: LabNode) -> bool:
    """nodeSelector (every label equal) and required node affinity (any term; in a term every
    matchExpression on labels and matchField on metadata.name)."""
    spec = pod.get("spec") or {}
    for key, value in (spec.get("nodeSelector") or {}).items():
        if node.labels.get(key) != value:
            return False
    required = ((spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    terms = required.get("nodeSelectorTerms") or []
    if not terms:
        return True
    fields = {"metadata.name": node.name}
    for term in terms:
        expressions = term.get("matchExpressions") or []
        matched_fields = term.get("matchFields") or []
        if not expressions and not matched_fields:
            continue  # an empty term matches nothing
        if all(_expression_matches(e, node.labels) for e in expressions) and all(
            _expression_matches(f, fields) for f in matched_fields
        ):
            return True
    return False


class LabKubelet:
    def __init__(self, *, api: Api, multus_api: Api, lab: str, nodes: list[LabNode]) -> None:
        self.api = api
        self.multus = multus.Multus(multus_api)
        self.lab = lab
        self.nodes = {node.name: node for node in nodes}
        self.sandboxes: dict[str, PodSandbox] = {}
        self.pods_per_node: dict[str, set[str]] = {name: set() for name in self.nodes}
        self.retry_at: dict[str, float] = {}  # pod uid -> monotonic time of the next try
        self._failure_counts: dict[str, int] = {}  # pod uid -> sandbox failures in a row
        self._events: dict[tuple[str, str, str], tuple[str, int]] = {}  # -> (name, count)
        self._pod_ips = 0
        self._queue: asyncio.Queue[tuple[str, dict[str, Any]]] = asyncio.Queue()
        self.ready = asyncio.Event()

    # --- main loop --------------------------------------------------------------------------

    async def run(self) -> None:
        worker = asyncio.create_task(self._work(), name="kubelet-worker")
        try:
            while True:
                try:
                    await self._watch()
                except (TimeoutError, OSError, ApiError) as exc:
                    log.warning("pod watch interrupted: %s", exc)
                if worker.done():
                    worker.result()  # re-raise what killed it
                await asyncio.sleep(0.2)
        finally:
            worker.cancel()

    async def _watch(self) -> None:
        # Without a resourceVersion the server first sends every existing pod as ADDED, so a
        # watch that ended resumes from the full state (handling is idempotent per pod).
        async for event in self.api.watch("/api/v1/pods", {"timeoutSeconds": "300"}):
            self.ready.set()
            kind = event.get("type", "")
            if kind == "ERROR":
                log.warning("watch error: %s", event.get("object"))
                return
            if kind in ("ADDED", "MODIFIED", "DELETED"):
                await self._queue.put((kind, event.get("object") or {}))
        # A watch with no pod at all sends nothing: it still counts as started.
        self.ready.set()

    async def _work(self) -> None:
        while True:
            kind, pod = await self._queue.get()
            try:
                await self.handle(kind, pod)
            except Exception:  # one bad pod must not stop the kubelet
                log.exception("handling %s %s failed", kind, pod.get("metadata", {}).get("name"))

    def _retry_later(self, pod: dict[str, Any], delay: float) -> None:
        uid = pod["metadata"]["uid"]
        self.retry_at[uid] = time.monotonic() + delay

        async def later() -> None:
            await asyncio.sleep(delay)
            meta = pod["metadata"]
            status, fresh = await self.api.request("GET", pod_path(meta["namespace"], meta["name"]))
            if status == 200 and fresh["metadata"]["uid"] == uid:
                await self._queue.put(("RETRY", fresh))

        asyncio.get_running_loop().create_task(later())

    async def handle(self, kind: str, pod: dict[str, Any]) -> None:
        meta = pod.get("metadata", {})
        spec = pod.get("spec", {})
        uid = meta.get("uid", "")
        if not uid:
            return
        node_name = spec.get("nodeName", "")
        if not node_name:
            if kind != "DELETED" and not meta.get("deletionTimestamp"):
                await self.schedule(pod)
            return
        node = self.nodes.get(node_name)
        if node is None:
            return
        if kind == "DELETED":
            self.pods_per_node[node.name].discard(uid)
            self.retry_at.pop(uid, None)
            sandbox = self.sandboxes.pop(uid, None)
            if sandbox is not None:  # force-deleted: no grace, tear down what is left
                await self.teardown(sandbox)
            return
        self.pods_per_node[node.name].add(uid)
        if meta.get("deletionTimestamp"):
            await self.terminate(pod, node)
            return
        if spec.get("hostNetwork"):
            if (pod.get("status") or {}).get("phase") != "Running":
                # The host's address, which every lab Node lists; only over the version seen
                # here, so a status someone wrote meanwhile (a test's look-alike) stays.
                try:
                    await self._set_running(
                        pod, AGENT_HOST_IP, AGENT_HOST_IP, resource_version=meta["resourceVersion"]
                    )
                except ApiError as exc:
                    if exc.status != 409:
                        raise
            return
        if uid in self.sandboxes:
            return
        if kind != "RETRY" and uid in self.retry_at:
            return  # waiting for its back-off
        if (pod.get("status") or {}).get("phase") in (None, "", "Pending"):
            await self.setup(pod, node)

    # --- scheduling -------------------------------------------------------------------------

    async def schedule(self, pod: dict[str, Any]) -> None:
        meta = pod["metadata"]
        # Labels as the Node objects carry them now (kubectl label included), like a scheduler.
        listed = await self.api.get("/api/v1/nodes")
        for item in listed["items"]:
            if item["metadata"]["name"] in self.nodes:
                self.nodes[item["metadata"]["name"]].labels = item["metadata"].get("labels") or {}
        fits = [node for node in self.nodes.values() if node_fits(pod, node)]
        if not fits:
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any(c.get("type") == "PodScheduled" for c in conditions):
                return  # already said so
            total = len(self.nodes)
            message = (
                f"0/{total} nodes are available: {total} node(s) didn't match Pod's node"
                f" affinity/selector. preemption: 0/{total} nodes are available: {total}"
                " Preemption is not helpful for scheduling."
            )
            await self.api.strategic_patch(
                pod_path(meta["namespace"], meta["name"]) + "/status",
                {
                    "status": {
                        "conditions": [
                            {
                                "type": "PodScheduled",
                                "status": "False",
                                "reason": "Unschedulable",
                                "message": message,
                                "lastTransitionTime": now(),
                            }
                        ]
                    }
                },
            )
            await self.record_event(pod, "Warning", "FailedScheduling", message, SCHEDULER, "")
            return
        node = min(fits, key=lambda n: (len(self.pods_per_node[n.name]), n.name))
        binding = {
            "apiVersion": "v1",
            "kind": "Binding",
            "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
            "target": {"apiVersion": "v1", "kind": "Node", "name": node.name},
        }
        status, answer = await self.api.request(
            "POST", pod_path(meta["namespace"], meta["name"]) + "/binding", binding
        )
        if status == 201 or status == 200:
            self.pods_per_node[node.name].add(meta["uid"])
            await self.record_event(
                pod,
                "Normal",
                "Scheduled",
                f"Successfully assigned {meta['namespace']}/{meta['name']} to {node.name}",
                SCHEDULER,
                "",
            )
        elif status != 409:  # 409: bound meanwhile
            log.warning(
                "binding %s/%s failed: %s %s", meta["namespace"], meta["name"], status, answer
            )

    # --- events -----------------------------------------------------------------------------

    async def record_event(
        self,
        pod: dict[str, Any],
        kind: str,
        reason: str,
        message: str,
        component: str = "kubelet",
        host: str | None = None,
    ) -> None:
        """POST an Event, or count a repeat of the same one (client-go's EventCorrelator)."""
        meta = pod["metadata"]
        if host is None:  # kubelet's Events name the node it runs on
            host = (pod.get("spec") or {}).get("nodeName", "")
        key = (meta["uid"], reason, message)
        if key in self._events:
            name, count = self._events[key]
            try:
                await self.api.strategic_patch(
                    f"/api/v1/namespaces/{meta['namespace']}/events/{name}",
                    {"count": count + 1, "lastTimestamp": now()},
                )
                self._events[key] = (name, count + 1)
                return
            except ApiError as exc:
                if exc.status != 404:  # the event was deleted: make a new one
                    raise
        name = f"{meta['name']}.{time.time_ns():x}"
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
            },
            "reason": reason,
            "type": kind,
            "message": message,
            "source": {"component": component, **({"host": host} if host else {})},
            "firstTimestamp": now(),
            "lastTimestamp": now(),
            "count": 1,
            "reportingComponent": component,
            "reportingInstance": host or "",
        }
        await self.api.create(event)
        self._events[key] = (name, 1)

    # --- ADD --------------------------------------------------------------------------------

    async def setup(self, pod: dict[str, Any], node: LabNode) -> None:
        meta = pod["metadata"]
        namespace, name, uid = meta["namespace"], meta["name"], meta["uid"]
        sandbox_id = hashlib.sha256(f"{uid}/{time.time_ns()}".encode()).hexdigest()
        sandbox = PodSandbox(
            uid=uid,
            namespace=namespace,
            name=name,
            node=node,
            sandbox_id=sandbox_id,
            netns=topology.pod_netns(self.lab, uid),
        )
        self.sandboxes[uid] = sandbox
        if node.cni is not None and node.multus_version != "3.9":
            failure, pod_ip = await self._add_with_multus(sandbox, node.cni)
        else:
            failure, pod_ip = await self._add_emulated(sandbox)
        if failure is not None:
            topology.delete_namespaces([sandbox.netns])
            del self.sandboxes[uid]
            failures = self._failure_counts.get(uid, 0) + 1
            self._failure_counts[uid] = failures
            await self.record_event(
                pod, "Warning", "FailedCreatePodSandBox", cni.sandbox_failure(sandbox_id, failure)
            )
            self._retry_later(pod, min(FIRST_BACKOFF * 2 ** (failures - 1), MAX_BACKOFF))
            return
        self.retry_at.pop(uid, None)
        self._failure_counts.pop(uid, None)
        sandbox.pod_ip = pod_ip
        await self._set_running(pod, node.internal_ip, pod_ip)
        await self.record_event(pod, "Normal", "Created", "Created container: main")
        await self.record_event(pod, "Normal", "Started", "Started container main")

    async def _add_with_multus(
        self, sandbox: PodSandbox, node_cni: cni.NodeCni
    ) -> tuple[str | None, str]:
        """The runtime's part: a namespace with lo up, then the real Multus ADD (which delegates
        eth0 to the cluster network and each attachment to host-device). On a failure the
        runtime tears the network down again (Multus DEL) before it removes the namespace.
        Returns (Multus' error text or None, pod IP)."""
        await _run("ip", "netns", "add", sandbox.netns)
        await _run("ip", "-n", sandbox.netns, "link", "set", "lo", "up")
        added = await cni.run_multus(node_cni, "ADD", **self._cni_identity(sandbox))
        if not added.ok:
            await cni.run_multus(node_cni, "DEL", **self._cni_identity(sandbox))
            return added.error_text(), ""
        return None, cni.pod_ip(added.result())

    def _cni_identity(self, sandbox: PodSandbox) -> dict[str, Any]:
        return {
            "pci_devices": sandbox.node.pci_devices,
            "namespace": sandbox.namespace,
            "name": sandbox.name,
            "uid": sandbox.uid,
            "sandbox_id": sandbox.sandbox_id,
            "pod_netns": sandbox.netns,
        }

    async def _add_emulated(self, sandbox: PodSandbox) -> tuple[str | None, str]:
        """A Multus 3.9 node: the eth0 veth as Calico makes it, then the lab's own Multus."""
        node = sandbox.node
        sandbox.emulated = multus.Sandbox(
            namespace=sandbox.namespace,
            name=sandbox.name,
            uid=sandbox.uid,
            sandbox_id=sandbox.sandbox_id,
            netns=sandbox.netns,
            node_netns=node.netns,
            host_device=node.host_device,
            version=node.multus_version,
            pci_devices=node.pci_devices,
        )
        pod_ip = await self._create_sandbox_netns(sandbox)
        cluster_mac = await self._link_mac(sandbox.netns, "eth0")
        try:
            await self.multus.add(sandbox.emulated, cluster_mac, f"{pod_ip}/32")
        except multus.SandboxError as exc:
            return str(exc), ""
        return None, pod_ip

    async def _set_running(
        self, pod: dict[str, Any], host_ip: str, pod_ip: str, *, resource_version: str = ""
    ) -> None:
        meta = pod["metadata"]
        # With a resourceVersion the API server applies the patch to that version only (409).
        precondition = (
            {"metadata": {"resourceVersion": resource_version}} if resource_version else {}
        )
        conditions = [
            {"type": kind, "status": "True", "lastTransitionTime": now()}
            for kind in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady")
        ]
        containers = (pod.get("spec") or {}).get("containers") or []
        await self.api.strategic_patch(
            pod_path(meta["namespace"], meta["name"]) + "/status",
            {
                **precondition,
                "status": {
                    "phase": "Running",
                    "hostIP": host_ip,
                    "hostIPs": [{"ip": host_ip}],
                    "podIP": pod_ip,
                    "podIPs": [{"ip": pod_ip}],
                    "startTime": now(),
                    "conditions": conditions,
                    "containerStatuses": [
                        {
                            "name": c["name"],
                            "image": c.get("image", ""),
                            "imageID": "",
                            "ready": True,
                            "restartCount": 0,
                            "started": True,
                            "state": {"running": {"startedAt": now()}},
                        }
                        for c in containers
                    ],
                },
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

    async def _link_mac(self, netns: str, ifname: str) -> str:
        out = await _run("ip", "-n", netns, "-j", "link", "show", "dev", ifname, check=False)
        try:
            return json.loads(out)[0]["address"]
        except (ValueError, IndexError, KeyError):
            return ""

    # --- DEL --------------------------------------------------------------------------------

    async def terminate(self, pod: dict[str, Any], node: LabNode) -> None:
        """Graceful deletion: stop, tear the sandbox down, confirm with grace period 0."""
        meta = pod["metadata"]
        uid = meta["uid"]
        self.retry_at.pop(uid, None)
        self._failure_counts.pop(uid, None)
        sandbox = self.sandboxes.pop(uid, None)
        if sandbox is not None:
            for container in (pod.get("spec") or {}).get("containers") or []:
                await self.record_event(
                    pod, "Normal", "Killing", f"Stopping container {container['name']}"
                )
            await self.teardown(sandbox)
        status, answer = await self.api.request(
            "DELETE",
            pod_path(meta["namespace"], meta["name"]),
            {"gracePeriodSeconds": 0, "preconditions": {"uid": uid}},
        )
        if status not in (200, 202, 404, 409):
            log.warning("confirming deletion of %s failed: %s %s", meta["name"], status, answer)
        self.pods_per_node[node.name].discard(uid)

    async def teardown(self, sandbox: PodSandbox) -> None:
        if not topology.netns_exists(sandbox.netns):
            # The namespace died without DEL (a crash): nothing left to give back.
            log.info("pod %s/%s: netns already gone, no DEL", sandbox.namespace, sandbox.name)
            if sandbox.emulated is not None:
                sandbox.emulated.delegates.clear()
            return
        if sandbox.emulated is not None:
            await self.multus.delete(sandbox.emulated, netns_exists=True)
        elif sandbox.node.cni is not None:
            # Multus DEL: clears network-status, DELs each delegate in reverse (host-device
            # gives the NIC back to the node); its errors are logged, never returned.
            await cni.run_multus(sandbox.node.cni, "DEL", **self._cni_identity(sandbox))
        topology.delete_namespaces([sandbox.netns])


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
