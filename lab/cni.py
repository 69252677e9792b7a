"""The CNI side of a lab node: real Multus (thin plugin) with the node's real host-device.

What an installed Multus leaves on a node, per lab node under `<state dir>/cni/<node>/`:

- `bin/`: the plugins Multus finds by `type` (its `binDir`): `multus` (v4.2.3, built from the
  pinned module), `host-device` (the node's release), `calico` (lab/calico_cni.py, the cluster
  network's eth0) and `host-local` (its IPAM);
- `multus.kubeconfig`: the `multus` ServiceAccount's token (kube-system, bound to Multus' own
  ClusterRole in lab/manifests/multus-rbac.yaml) and the API server as the node sees it;
- `00-multus.conf`: the thin plugin's configuration, cluster network `k8s-pod-network` inline;
- `multus/` (Multus' delegate cache, read back on DEL), `ipam/` (host-local's leases) and
  `multus.log`.

The lab kubelet runs `multus` as the container runtime runs a CNI plugin: in the node's network
namespace, with CNI_COMMAND/CNI_NETNS/CNI_ARGS set and the configuration on stdin. Multus itself
talks to the API server (GET pod, GET NADs, POST Events, PUT pods/<name>/status, in protobuf),
so the API server must be reachable from inside the node's namespace: `ApiForwarder` listens on
127.0.0.1:<api port> in every node namespace and forwards each connection to the API server on
the host's 127.0.0.1, as a node-local API load balancer (kubespray's nginx-proxy, k3s' agent
proxy) does. TLS passes through untouched: the server certificate names 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ctypes
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from lab.multus import with_pci_devices

log = logging.getLogger("lab.cni")

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_NETWORK = "k8s-pod-network"  # Calico's network name, the pods' eth0
MULTUS_PLUGIN = 'plugin type="multus" name="multus-cni-network"'
CNI_VERSION = "0.3.1"
POD_SUBNET = "10.244.{index}.0/24"


@dataclass(frozen=True)
class NodeCni:
    """One node's CNI installation (paths under the lab's state dir)."""

    node: str
    netns: str
    directory: Path

    @property
    def bin_dir(self) -> Path:
        return self.directory / "bin"

    @property
    def conf_path(self) -> Path:
        return self.directory / "00-multus.conf"

    @property
    def kubeconfig(self) -> Path:
        return self.directory / "multus.kubeconfig"

    @property
    def log_path(self) -> Path:
        return self.directory / "multus.log"

    @property
    def multus(self) -> Path:
        return self.bin_dir / "multus"


def multus_conf(cni: NodeCni, index: int) -> dict[str, Any]:
    """The thin plugin's configuration, as its installer writes it with a cluster network."""
    return {
        "cniVersion": CNI_VERSION,
        "name": "multus-cni-network",
        "type": "multus",
        "kubeconfig": str(cni.kubeconfig),
        "binDir": str(cni.bin_dir),
        "cniDir": str(cni.directory / "multus"),
        "logFile": str(cni.log_path),
        "logLevel": "verbose",
        "delegates": [
            {
                "cniVersion": CNI_VERSION,
                "name": DEFAULT_NETWORK,
                "plugins": [
                    {
                        "type": "calico",
                        "ipam": {
                            "type": "host-local",
                            "ranges": [[{"subnet": POD_SUBNET.format(index=index)}]],
                            "dataDir": str(cni.directory / "ipam"),
                        },
                    }
                ],
            }
        ],
    }


def install(
    directory: Path,
    node: str,
    netns: str,
    index: int,
    *,
    multus: Path,
    host_device: Path,
    host_local: Path,
    api_url: str,
    ca: Path,
    token: str,
) -> NodeCni:
    """Lay one node's CNI installation out (a restarted lab rewrites it)."""
    cni = NodeCni(node, netns, directory)
    # The daemon installs this on a freshly built node, with no pod on it yet: leases and Multus'
    # delegate cache of a previous run (whose pods died with their namespaces, without DEL)
    # would only leak addresses.
    for leftover in (directory / "ipam", directory / "multus"):
        shutil.rmtree(leftover, ignore_errors=True)
    cni.log_path.unlink(missing_ok=True)
    cni.bin_dir.mkdir(parents=True, exist_ok=True)
    for name, target in (("multus", multus), ("host-device", host_device),
                         ("host-local", host_local)):  # fmt: skip
        link = cni.bin_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
    calico = cni.bin_dir / "calico"
    calico.write_text(
        f"#!/bin/sh\nPYTHONPATH={REPO_ROOT} exec {sys.executable} -m lab.calico_cni\n"
    )
    calico.chmod(0o755)
    kubeconfig = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "lab",
                "cluster": {
                    "server": api_url,
                    "certificate-authority-data": base64.b64encode(ca.read_bytes()).decode(),
                },
            }
        ],
        "users": [{"name": "multus", "user": {"token": token}}],
        "contexts": [{"name": "multus", "context": {"cluster": "lab", "user": "multus"}}],
        "current-context": "multus",
    }
    cni.kubeconfig.write_text(yaml.safe_dump(kubeconfig, sort_keys=False))
    cni.kubeconfig.chmod(0o600)
    cni.conf_path.write_text(json.dumps(multus_conf(cni, index), indent=2) + "\n")
    return cni


@dataclass
class PluginRun:
    ok: bool
    stdout: str
    stderr: str

    def error_text(self) -> str:
        """The error as libcni renders a plugin's error result: msg, then `; details`."""
        try:
            error = json.loads(self.stdout)
        except json.JSONDecodeError:
            return (self.stderr or self.stdout).strip() or "plugin failed without output"
        if not isinstance(error, dict) or "msg" not in error:
            return (self.stderr or self.stdout).strip()
        details = error.get("details")
        return f"{error['msg']}; {details}" if details else str(error["msg"])

    def result(self) -> dict[str, Any]:
        try:
            value = json.loads(self.stdout)
        except json.JSONDecodeError:
            return {}
        return value if isinstance(value, dict) else {}


async def run_multus(
    cni: NodeCni,
    command: str,
    *,
    namespace: str,
    name: str,
    uid: str,
    sandbox_id: str,
    pod_netns: str,
    ifname: str = "eth0",
    pci_devices: Path | None = None,
) -> PluginRun:
    """Run the real Multus binary as the runtime does, inside the node's network namespace.
    On a node with a simulated SR-IOV NIC (lab/sriov.py, `pci_devices`), Multus and the
    host-device it delegates to run in a private mount namespace with that devices directory
    mounted over /sys/bus/pci/devices, where host-device looks a pciBusID up."""
    cni_args = (
        f"IgnoreUnknown=1;K8S_POD_NAMESPACE={namespace};K8S_POD_NAME={name};"
        f"K8S_POD_INFRA_CONTAINER_ID={sandbox_id};K8S_POD_UID={uid}"
    )
    env = [
        f"CNI_COMMAND={command}",
        f"CNI_CONTAINERID={sandbox_id}",
        f"CNI_NETNS=/run/netns/{pod_netns}",
        f"CNI_IFNAME={ifname}",
        f"CNI_PATH={cni.bin_dir}",
        f"CNI_ARGS={cni_args}",
        f"PATH={os.environ.get('PATH', '/usr/sbin:/usr/bin:/sbin:/bin')}",
    ]
    started = time.monotonic()
    plugin = with_pci_devices(["env", "-i", *env, str(cni.multus)], pci_devices)
    proc = await asyncio.create_subprocess_exec(
        "ip", "netns", "exec", cni.netns, *plugin,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    stdout, stderr = await proc.communicate(cni.conf_path.read_bytes())
    run = PluginRun(proc.returncode == 0, stdout.decode(), stderr.decode())
    log.info(
        "multus %s %s/%s on %s: rc=%s in %.2f s %s",
        command, namespace, name, cni.node, proc.returncode, time.monotonic() - started,
        run.error_text() if not run.ok else "",
    )  # fmt: skip
    return run


def sandbox_failure(sandbox_id: str, multus_message: str) -> str:
    """The Event message kubelet records when Multus fails ADD (FailedCreatePodSandBox)."""
    return (
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network"
        f' for sandbox "{sandbox_id}": {MULTUS_PLUGIN} failed (add): {multus_message}'
    )


def pod_ip(result: dict[str, Any], ifname: str = "eth0") -> str:
    """The first address of `ifname` in a CNI result (what the runtime reports as pod IP)."""
    interfaces = result.get("interfaces") or []
    for ip in result.get("ips") or []:
        index = ip.get("interface")
        if index is None or (
            0 <= index < len(interfaces) and interfaces[index].get("name") == ifname
        ):
            return str(ip.get("address", "")).split("/")[0]
    return ""


# --- the API server inside the node namespaces -------------------------------------------------


CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    """setns(2) into a network namespace, for this thread only (os.setns needs Python 3.12)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"setns: {os.strerror(errno)}")


def _listen_in(netns: str, port: int) -> socket.socket:
    """A listening socket on 127.0.0.1:port inside a named network namespace (made from a
    short-lived thread that enters the namespace: the socket keeps it, the process does not)."""
    made: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            with open(f"/run/netns/{netns}") as target:
                _setns(target.fileno())
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
            sock.listen(64)
            sock.setblocking(False)
            made.append(sock)
        except BaseException as exc:
            made.append(exc)

    thread = threading.Thread(target=enter, name=f"netns-{netns}")
    thread.start()
    thread.join()
    if isinstance(made[0], BaseException):
        raise made[0]
    return made[0]


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        with contextlib.suppress(OSError, RuntimeError):
            writer.close()


class ApiForwarder:
    """127.0.0.1:<port> in each node namespace, forwarded to the API server on the host."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.servers: list[asyncio.Server] = []

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.port)
        except OSError as exc:
            log.warning("forwarding to the API server failed: %s", exc)
            writer.close()
            return
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    async def start(self, netns_names: list[str]) -> None:
        for netns in netns_names:
            sock = _listen_in(netns, self.port)
            self.servers.append(await asyncio.start_server(self._forward, sock=sock))

    async def stop(self) -> None:
        for server in self.servers:
            server.close()
        self.servers.clear()
