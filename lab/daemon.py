"""`python -m lab serve`: the lab's background process.

It runs the control plane (etcd + kube-apiserver, lab/control_plane.py) on 127.0.0.1, makes the
API server reachable from inside every node namespace and installs real Multus on each node
(lab/cni.py), runs the lab kubelet and supervises one node agent per lab node (restarting one
that exits). It writes `ready` in the state dir once the API is bootstrapped and the kubelet
watches pods. All its children share its process group, so `down` can end them all with one
signal even if this process died first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any

from lab import cni, components, kube_api
from lab.control_plane import ControlPlane, api_for
from lab.kubelet import LabKubelet, LabNode
from lab.state import LabState

log = logging.getLogger("lab.daemon")
REPO_ROOT = Path(__file__).resolve().parent.parent


def agent_command(state: LabState, node: dict[str, Any]) -> list[str]:
    command = [
        sys.executable, "-m", "nodeagent",
        "--listen", f"127.0.0.1:{node['agent_port']}",
        "--key-file", str(state.agent_key_file(node["name"])),
        "--node-name", node["name"],
        "--netns", node["netns"],
        # The node's own host-device release, as a node's /opt/cni/bin would hold it.
        "--cni-bin-dirs", str(Path(node["host_device_path"]).parent),
    ]  # fmt: skip
    if node.get("sriov_sysfs"):
        # A simulated SR-IOV NIC (lab/sriov.py): the agent reads its sysfs tree.
        command += ["--sysfs-root", node["sriov_sysfs"]]
    else:
        # Lab nodes own no PCI devices: the machine's own NICs are not theirs to report.
        command += ["--no-pci-scan"]
    if state.data.get("portal_url"):
        command += ["--portal-url", state.data["portal_url"]]
    return command


class AgentSupervisor:
    def __init__(self, state: LabState) -> None:
        self.state = state
        self.processes: dict[str, asyncio.subprocess.Process] = {}

    async def run(self) -> None:
        await asyncio.gather(*(self._keep_running(node) for node in self.state.data["nodes"]))

    async def _keep_running(self, node: dict[str, Any]) -> None:
        log_path = self.state.directory / f"agent-{node['name']}.log"
        while True:
            with log_path.open("ab") as log_file:
                proc = await asyncio.create_subprocess_exec(
                    *agent_command(self.state, node),
                    cwd=REPO_ROOT,
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_file,
                    stderr=log_file,
                )
            self.processes[node["name"]] = proc
            self.state.write_pids({name: p.pid for name, p in self.processes.items()})
            code = await proc.wait()
            log.warning("agent for %s exited with %s; restarting in 1 s", node["name"], code)
            await asyncio.sleep(1)

    async def stop(self) -> None:
        for proc in self.processes.values():
            if proc.returncode is None:
                proc.terminate()
        for proc in self.processes.values():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 3)
            if proc.returncode is None:
                proc.kill()


async def _agent_pods_running(api: Any, count: int) -> None:
    """Until the kubelet has marked every agent pod Running (the portal finds agents by them)."""
    selector = ",".join(f"{k}={v}" for k, v in kube_api.AGENT_LABELS.items())
    path = f"/api/v1/namespaces/{kube_api.AGENT_NAMESPACE}/pods"
    while True:
        pods = await api.get(path, params={"labelSelector": selector})
        running = [p for p in pods["items"] if p.get("status", {}).get("phase") == "Running"]
        if len(running) >= count:
            return
        await asyncio.sleep(0.1)


async def serve(state: LabState) -> None:
    data = state.data
    nodes = [
        LabNode(
            name=n["name"],
            netns=n["netns"],
            internal_ip=n["internal_ip"],
            index=i,
            labels=dict(n.get("labels") or {}),
            host_device=Path(n["host_device_path"]),
            multus_version=n["multus"],
            pci_devices=Path(n["sriov_sysfs"]) / "bus" / "pci" / "devices"
            if n.get("sriov_sysfs")
            else None,
        )
        for i, n in enumerate(data["nodes"])
    ]
    supervisor = AgentSupervisor(state)
    control_plane = ControlPlane(state)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    forwarder = cni.ApiForwarder(data["api_port"])
    try:
        await control_plane.start()
        async with api_for(state, "admin") as admin:
            multus_token = await control_plane.multus_token(admin)
        # Real Multus runs in each node's namespace and talks to the API server from there.
        await forwarder.start([node.netns for node in nodes])
        for node in nodes:
            node.cni = cni.install(
                state.directory / "cni" / node.name,
                node.name,
                node.netns,
                node.index,
                multus=components.binary("multus"),
                host_device=node.host_device,
                host_local=components.binary("host-local-v1.6.2"),
                api_url=data["api_url"],
                ca=state.pki_dir / "ca.crt",
                token=multus_token,
            )
        async with api_for(state, "kubelet") as api, api_for(state, "multus") as multus_api:
            kubelet = LabKubelet(api=api, multus_api=multus_api, lab=data["name"], nodes=nodes)
            tasks = [asyncio.create_task(kubelet.run(), name="kubelet")]
            tasks.append(asyncio.create_task(supervisor.run(), name="agents"))
            await asyncio.wait_for(kubelet.ready.wait(), 30)
            await asyncio.wait_for(_agent_pods_running(api, len(nodes)), 30)
            state.ready_file.write_text(str(os.getpid()))
            log.info("lab %s ready on %s", data["name"], data["api_url"])
            stopper = asyncio.create_task(stop.wait())
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is not stopper and task.exception() is not None:
                    log.error("%s died: %r", task.get_name(), task.exception())
            await supervisor.stop()
            for task in [*tasks, stopper]:
                task.cancel()
    finally:
        state.ready_file.unlink(missing_ok=True)
        await forwarder.stop()
        await control_plane.stop()


def main(state_dir: Path) -> int:
    state = LabState.load(state_dir)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    try:
        asyncio.run(serve(state))
    except (OSError, RuntimeError, components.ComponentError) as exc:
        log.error("lab %s failed: %s", state.data["name"], exc)
        return 2
    return 0
