"""Multus 3.9 as the lab reproduces it, and the networks-annotation parser `lab pod` uses.

Nodes run real Multus v4.2.3 (lab/cni.py). Multus 3.9 (MicroK8s' addon) cannot be built here:
the module proxy answers "This module version is not available" for
`github.com/k8snetworkplumbingwg/multus-cni@v3.9.3+incompatible`. So for a node a layout sets to
`multus: "3.9"` the lab reproduces it, step by step as its source does (`pkg/multus/multus.go`
CmdAdd/CmdDel, `pkg/k8sclient`, the NAD client's `SetNetworkStatus`), with its own identity
(the `multus` user, bound to Multus' own ClusterRole):

ADD: GET the pod (UID must match); parse `k8s.v1.cni.cncf.io/networks`; GET each NAD (a missing
one: Warning Event `NoNetworkFound`, ADD fails); ADD each delegate in order with the node's
host-device binary (the cluster network first, made by the lab kubelet as Calico would); on a
failure DEL every delegate so far in reverse and fail with the plugin's own error; after each
success a Normal Event `AddedInterface` ("Add net1 [] from default/nad"); finally the
network-status annotation through `PUT pods/<name>/status` inside a conflict retry (3.9 first
tries with the pod it read at the start and also writes the deprecated `networks-status`;
4.x GETs the pod on every try). If that write fails, ADD fails, unless the pod is gone.
DEL: GET the pod (absent is fine); if the sandbox netns still exists, network-status `[]`; DEL
each delegate in reverse; errors are logged, never returned.

Status entries are what the NAD client's Go struct marshals: no `ips` key without addresses,
no `default` unless true, always `dns`, JSON indented by four spaces (as real v4.2.3 writes
them, tests/lab/test_real_multus.py). One difference remains: real Multus sends protobuf
bodies; this reproduction sends JSON (the server stores the same object).

The parser is the lab's own, written from the Network Plumbing WG spec, deliberately
independent of the portal's code so that each checks the other.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import logging
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.api import Api, ApiError

log = logging.getLogger("lab.multus")

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
OLD_NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/networks-status"  # written by Multus 3.x
NAD_PATH = "/apis/k8s.cni.cncf.io/v1/namespaces/{namespace}/network-attachment-definitions/{name}"
EVENT_SOURCE = "multus"
DEFAULT_NETWORK = "k8s-pod-network"  # Calico's network name, the pods' eth0
HOST_PCI_DEVICES = "/sys/bus/pci/devices"  # where host-device looks a pciBusID up
MULTUS_PLUGIN = 'plugin type="multus" name="multus-cni-network"'

_SHORT_FORM = re.compile(r"^(?:(?P<ns>[^/@\s]+)/)?(?P<name>[^/@\s]+)(?:@(?P<ifname>[^/@\s]+))?$")


class AnnotationError(ValueError):
    """The networks annotation cannot be parsed (Multus fails the sandbox with this text)."""


@dataclass(frozen=True)
class Attachment:
    namespace: str
    name: str
    interface: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_networks(value: str, pod_namespace: str) -> list[Attachment]:
    """Both forms: `ns/name@ifname, other` and a JSON list of {name, namespace, interface}."""
    value = value.strip()
    if not value:
        return []
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AnnotationError(
                f"failed to parse pod Network Attachment Selection: {exc}"
            ) from exc
        attachments = []
        for item in items:
            if not isinstance(item, dict) or not item.get("name"):
                raise AnnotationError(f"network selection element without a name: {item!r}")
            attachments.append(
                Attachment(
                    namespace=item.get("namespace") or pod_namespace,
                    name=item["name"],
                    interface=item.get("interface") or None,
                )
            )
        return attachments
    attachments = []
    for part in value.split(","):
        match = _SHORT_FORM.match(part.strip())
        if match is None:
            raise AnnotationError(f"parsePodNetworkObjectName: Invalid network object ({part!r})")
        attachments.append(
            Attachment(
                namespace=match["ns"] or pod_namespace,
                name=match["name"],
                interface=match["ifname"],
            )
        )
    return attachments


def interface_names(attachments: list[Attachment]) -> list[str]:
    """CNI_IFNAME for each attachment: the requested name, else net1, net2... by position."""
    return [a.interface or f"net{i}" for i, a in enumerate(attachments, start=1)]


def status_entry(
    name: str,
    interface: str,
    mac: str,
    ips: Sequence[str],
    *,
    default: bool = False,
    mtu: int = 0,
) -> dict[str, Any]:
    """One network-status entry as the NAD client's NetworkStatus struct marshals it: fields in
    struct order, `omitempty` ones (ips, mac, mtu, default) left out when empty, `dns` always."""
    entry: dict[str, Any] = {"name": name}
    if interface:
        entry["interface"] = interface
    if ips:
        entry["ips"] = list(ips)
    if mac:
        entry["mac"] = mac
    if mtu:
        entry["mtu"] = mtu
    if default:
        entry["default"] = True
    entry["dns"] = {}
    return entry


def network_status_value(entries: Sequence[dict[str, Any]]) -> str:
    """The annotation value: each entry marshalled with a four-space indent, joined by commas."""
    return "[" + ",".join(json.dumps(entry, indent=4) for entry in entries) + "]"


def sandbox_failure(sandbox_id: str, multus_message: str) -> str:
    """The Event message kubelet records when Multus fails (FailedCreatePodSandBox)."""
    return (
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network"
        f' for sandbox "{sandbox_id}": {MULTUS_PLUGIN} failed (add): {multus_message}'
    )


def delegate_failure(namespace: str, pod: str, uid: str, network: str, plugin_error: str) -> str:
    """Multus' wording when one delegate (one attachment) fails ADD; `network` is the name in
    the delegate's CNI config (not the NAD's name)."""
    return (
        f"[{namespace}/{pod}/{uid}:{network}]: error adding container to network"
        f' "{network}": {plugin_error}'
    )


def plugin_error_text(stdout: str, stderr: str) -> str:
    """A CNI error result's text as libcni renders it: msg, then `; details` if any."""
    try:
        error = json.loads(stdout)
    except json.JSONDecodeError:
        return (stderr or stdout).strip() or "plugin failed without output"
    if not isinstance(error, dict) or "msg" not in error:
        return (stderr or stdout).strip()
    details = error.get("details")
    return f"{error['msg']}; {details}" if details else str(error["msg"])


class SandboxError(Exception):
    """Multus failed ADD; the message is Multus' own (kubelet wraps it in its Event)."""


@dataclass
class PluginResult:
    ok: bool
    stdout: str
    stderr: str


@dataclass
class Delegate:
    """One attachment Multus ran ADD for (kept for DEL, as Multus caches its delegates)."""

    network: str  # "namespace/nad", the network-status name
    conf_name: str  # the CNI config's "name" (Multus' error messages use it)
    ifname: str
    config: bytes


@dataclass
class Sandbox:
    """What Multus is told about one pod sandbox (CNI_ARGS, CNI_NETNS, the node it runs on)."""

    namespace: str
    name: str
    uid: str
    sandbox_id: str
    netns: str  # the pod's network namespace name under /run/netns
    node_netns: str
    host_device: Path  # the node's host-device release
    version: str  # Multus generation on this node: "3.9" or "4.2"
    delegates: list[Delegate] = field(default_factory=list)
    pci_devices: Path | None = None  # mounted over /sys/bus/pci/devices for host-device

    @property
    def prefix(self) -> str:
        return f"Multus: [{self.namespace}/{self.name}/{self.uid}]: "


def with_pci_devices(command: list[str], pci_devices: Path | None) -> list[str]:
    """`command` as it runs on a node with a simulated SR-IOV NIC (lab/sriov.py): host-device
    finds a pciBusID under /sys/bus/pci/devices, so that is where the node's devices directory
    is mounted, in a private mount namespace entered after `ip netns exec` mounted the node's
    sysfs. Unchanged on a node without one."""
    if pci_devices is None:
        return command
    script = f'mount --bind "$0" {HOST_PCI_DEVICES} && exec "$@"'
    return ["unshare", "-m", "--propagation", "private", "sh", "-c", script, str(pci_devices),
            *command]  # fmt: skip


def _now() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _result_interface(stdout: str, ifname: str) -> tuple[str, list[str], int]:
    """(mac, IPs without prefix, mtu) of `ifname` in a CNI result (what CreateNetworkStatus
    reads: the sandbox interface of that name, and the IPs that point at it)."""
    try:
        result = json.loads(stdout)
    except json.JSONDecodeError:
        return "", [], 0
    for index, interface in enumerate(result.get("interfaces") or []):
        if interface.get("name") == ifname and interface.get("sandbox"):
            ips = [
                ip["address"].split("/")[0]
                for ip in result.get("ips") or []
                if ip.get("interface", index) == index
            ]
            return interface.get("mac", ""), ips, int(interface.get("mtu") or 0)
    return "", [ip["address"].split("/")[0] for ip in result.get("ips") or []], 0


def _result_cidrs(stdout: str) -> list[str]:
    try:
        return [ip["address"] for ip in json.loads(stdout).get("ips") or []]
    except (json.JSONDecodeError, AttributeError, KeyError, TypeError):
        return []


class Multus:
    """Multus for every lab node, talking to the API server as the `multus` user."""

    def __init__(self, api: Api) -> None:
        self.api = api

    # --- the API conversation ---------------------------------------------------------------

    async def _event(self, pod: dict[str, Any], kind: str, reason: str, message: str) -> None:
        """Best effort, as client-go's recorder: a failed POST is logged, never raised."""
        meta = pod["metadata"]
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {
                "name": f"{meta['name']}.{time.time_ns():x}",
                "namespace": meta["namespace"],
            },
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta.get("resourceVersion", ""),
            },
            "reason": reason,
            "message": message,
            "type": kind,
            "source": {"component": EVENT_SOURCE},
            "firstTimestamp": _now(),
            "lastTimestamp": _now(),
            "count": 1,
            "reportingComponent": EVENT_SOURCE,
            "reportingInstance": "",
        }
        try:
            await self.api.create(event)
        except (ApiError, OSError) as exc:
            log.warning(
                "multus event %s for %s/%s: %s", reason, meta["namespace"], meta["name"], exc
            )

    async def _get_pod(self, sandbox: Sandbox) -> tuple[int, Any]:
        return await self.api.request(
            "GET", f"/api/v1/namespaces/{sandbox.namespace}/pods/{sandbox.name}"
        )

    async def set_network_status(
        self, sandbox: Sandbox, value: str, first: dict[str, Any] | None = None
    ) -> None:
        """The NAD client's SetNetworkStatus: GET the pod, set the annotation(s), PUT
        pods/<name>/status, again on a 409 Conflict (4.x: DefaultRetry, 5 tries 10 ms apart,
        a fresh GET each time; 3.9: DefaultBackoff, 4 tries from 10 ms x5, the first with the
        pod read at the start of ADD)."""
        path = f"/api/v1/namespaces/{sandbox.namespace}/pods/{sandbox.name}"
        status, pod = await self._get_pod(sandbox)
        if status != 200:
            raise ApiError(status, pod, "SetNetworkStatus: failed to query the pod")
        old = sandbox.version == "3.9"
        tries, delay = (4, 0.01) if old else (5, 0.01)
        if old and first is not None:
            pod = first
        answer: Any = None
        for attempt in range(tries):
            if attempt:
                await asyncio.sleep(delay * random.uniform(1.0, 1.1))
                if old:
                    delay *= 5
                status, pod = await self._get_pod(sandbox)
                if status != 200:
                    raise ApiError(status, pod, "status update failed")
            annotations = pod["metadata"].setdefault("annotations", {})
            annotations[NETWORK_STATUS_ANNOTATION] = value
            if old:
                annotations[OLD_NETWORK_STATUS_ANNOTATION] = value
            status, answer = await self.api.request("PUT", path + "/status", pod)
            if status == 200:
                return
            if status != 409:
                break
        raise ApiError(
            status,
            answer,
            f"SetNetworkStatus: failed to update the pod {sandbox.name} in out of cluster comm:"
            f" status update failed for pod {sandbox.namespace}/{sandbox.name}",
        )

    # --- delegates --------------------------------------------------------------------------

    async def exec_plugin(
        self, command: str, sandbox: Sandbox, ifname: str, config: bytes
    ) -> PluginResult:
        """Run the node's host-device inside the node's namespace, as libcni would."""
        cni_args = (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={sandbox.namespace};K8S_POD_NAME={sandbox.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={sandbox.sandbox_id};K8S_POD_UID={sandbox.uid}"
        )
        env = [
            f"CNI_COMMAND={command}",
            f"CNI_CONTAINERID={sandbox.sandbox_id}",
            f"CNI_NETNS=/run/netns/{sandbox.netns}",
            f"CNI_IFNAME={ifname}",
            f"CNI_PATH={sandbox.host_device.parent}",
            f"CNI_ARGS={cni_args}",
        ]
        plugin = ["env", "-i", *env, str(sandbox.host_device)]
        plugin = with_pci_devices(plugin, sandbox.pci_devices)
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", sandbox.node_netns, *plugin,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        stdout, stderr = await proc.communicate(config)
        result = PluginResult(proc.returncode == 0, stdout.decode(), stderr.decode())
        log.info(
            "host-device %s %s/%s %s (%s): rc=%s %s",
            command, sandbox.namespace, sandbox.name, ifname, sandbox.host_device,
            proc.returncode, (result.stdout if not result.ok else "").strip(),
        )  # fmt: skip
        return result

    async def add(self, sandbox: Sandbox, cluster_mac: str, pod_cidr: str) -> list[dict[str, Any]]:
        """CmdAdd. Returns the network-status entries written; raises SandboxError."""
        status, pod = await self._get_pod(sandbox)
        if status != 200:
            raise SandboxError(
                f"{sandbox.prefix}error getting pod: {ApiError(status, pod, 'GET pod')}"
            )
        if pod["metadata"]["uid"] != sandbox.uid:
            raise SandboxError(
                f'{sandbox.prefix}expected pod UID "{sandbox.uid}" but got'
                f' "{pod["metadata"]["uid"]}" from Kube API'
            )
        annotations = pod["metadata"].get("annotations") or {}
        try:
            attachments = parse_networks(
                annotations.get(NETWORKS_ANNOTATION, ""), sandbox.namespace
            )
            names = interface_names(attachments)
            if sandbox.version == "3.9":
                for name in names:
                    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name) or len(name) > 63:
                        raise AnnotationError(
                            f"interface name {name!r} is not a valid DNS-1123 label"
                        )
        except AnnotationError as exc:
            raise SandboxError(f"{sandbox.prefix}{exc}") from exc

        delegates: list[Delegate] = []
        for attachment, ifname in zip(attachments, names, strict=True):
            status, nad = await self.api.request(
                "GET", NAD_PATH.format(namespace=attachment.namespace, name=attachment.name)
            )
            if status != 200:
                reason = nad.get("message", "") if isinstance(nad, dict) else str(nad)
                message = (
                    f"cannot find a network-attachment-definition ({attachment.name}) in"
                    f" namespace ({attachment.namespace}): {reason}"
                )
                await self._event(pod, "Warning", "NoNetworkFound", message)
                raise SandboxError(
                    f"{sandbox.prefix}error loading k8s delegates k8s args: TryLoadPodDelegates:"
                    " error in getting k8s network for pod: GetNetworkDelegates: failed getting"
                    f" the delegate: getKubernetesDelegate: {message}"
                )
            config = ((nad.get("spec") or {}).get("config") or "").encode()
            try:
                conf_name = str(json.loads(config).get("name") or "")
            except (json.JSONDecodeError, AttributeError):
                conf_name = ""
            delegates.append(
                Delegate(attachment.qualified_name, conf_name or attachment.name, ifname, config)
            )

        # The cluster network (Calico) is the first delegate; the lab kubelet made its eth0.
        await self._event(
            pod, "Normal", "AddedInterface", f"Add eth0 [{pod_cidr}] from {DEFAULT_NETWORK}"
        )
        entries = [
            status_entry(
                DEFAULT_NETWORK, "eth0", cluster_mac, [pod_cidr.split("/")[0]], default=True
            )
        ]
        for delegate in delegates:
            result = await self.exec_plugin("ADD", sandbox, delegate.ifname, delegate.config)
            sandbox.delegates.append(delegate)
            if not result.ok:
                # Multus DELs every delegate up to and including the failed one, ignoring errors.
                await self.delete_delegates(sandbox)
                raise SandboxError(
                    delegate_failure(
                        sandbox.namespace, sandbox.name, sandbox.uid, delegate.conf_name,
                        plugin_error_text(result.stdout, result.stderr),
                    )
                )  # fmt: skip
            mac, ips, mtu = _result_interface(result.stdout, delegate.ifname)
            cidrs = _result_cidrs(result.stdout)
            await self._event(
                pod,
                "Normal",
                "AddedInterface",
                f"Add {delegate.ifname} [{' '.join(cidrs)}] from {delegate.network}",
            )
            entries.append(
                status_entry(
                    delegate.network,
                    delegate.ifname,
                    mac,
                    ips,
                    mtu=mtu if sandbox.version != "3.9" else 0,
                )
            )
        try:
            await self.set_network_status(sandbox, network_status_value(entries), first=pod)
        except (ApiError, OSError) as exc:
            if "failed to query the pod" in str(exc):
                raise SandboxError(
                    f"{sandbox.prefix}error setting the networks status, pod was already"
                    f" deleted: {exc}"
                ) from exc
            raise SandboxError(f"{sandbox.prefix}error setting the networks status: {exc}") from exc
        return entries

    async def delete_delegates(self, sandbox: Sandbox) -> None:
        for delegate in reversed(sandbox.delegates):
            await self.exec_plugin("DEL", sandbox, delegate.ifname, delegate.config)
        sandbox.delegates.clear()

    async def delete(self, sandbox: Sandbox, *, netns_exists: bool) -> None:
        """CmdDel: unset the network status while the sandbox exists, then DEL in reverse."""
        if netns_exists:
            try:
                await self.set_network_status(sandbox, "[]")
            except (ApiError, OSError) as exc:
                log.info("multus: error unsetting the networks status: %s", exc)
        await self.delete_delegates(sandbox)
