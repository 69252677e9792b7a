"""`up`, `down` and `status` of a named lab. All three are idempotent.

`up` writes the state first, then builds the namespaces, then starts the daemon, so that a
failure at any step leaves enough behind for `down` to remove everything it made.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from lab import components, control_plane, sriov, topology
from lab.layout import LAB_NAME, LayoutError, load_layout
from lab.state import CLUSTER_NAME, REPO_ROOT, LabState, state_dir
from nodeagent import auth

CLUSTER_NAME_RE = re.compile(r"[a-z0-9]([a-z0-9.-]{0,98}[a-z0-9])?")


class LabError(RuntimeError):
    """`up` failed; the message says why and where the logs are."""


def check_name(name: str) -> None:
    if not LAB_NAME.match(name):
        raise LayoutError(f"lab name {name!r}: 1-20 lower-case letters or digits, no dash")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _cmdline(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
    except OSError:
        return []


def _alive(pid: int | None, *needles: str) -> bool:
    """Whether pid runs and its command line holds every needle (a recycled pid does not)."""
    if not pid:
        return False
    cmdline = " ".join(_cmdline(pid))
    return bool(cmdline) and all(needle in cmdline for needle in needles)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return 200 <= resp.status < 300
    except (OSError, urllib.error.URLError):
        return False


def is_running(state: LabState) -> bool:
    pid = state.daemon_pid()
    return _alive(pid, "lab", "serve", str(state.directory)) and state.ready_file.exists()


def agents_healthy(state: LabState) -> bool:
    return all(_http_ok(f"http://127.0.0.1:{n['agent_port']}/healthz") for n in state.data["nodes"])


def write_agent_keys(state: LabState) -> None:
    """A fresh master key for the portal, and for each lab agent its own node's key only, as
    the stricter deployment gives them (docs/agent-auth.md): one agent's key cannot speak for
    another node."""
    master = secrets.token_urlsafe(32)
    _write_secret(state.agent_master_key_file, master)
    for node in state.data["nodes"]:
        key = auth.derive_node_key(master.encode(), cluster=state.cluster_name, node=node["name"])
        _write_secret(state.agent_key_file(node["name"]), auth.format_node_key(key))


def _write_secret(path: Path, value: str) -> None:
    path.touch(mode=0o600)
    path.chmod(0o600)
    path.write_text(value + "\n")


def up(
    name: str = "demo",
    *,
    layout_path: str | Path | None = None,
    portal_url: str | None = None,
    api_port: int | None = None,
    timeout: float = 120.0,
    cluster_name: str = CLUSTER_NAME,
) -> LabState:
    check_name(name)
    if not CLUSTER_NAME_RE.fullmatch(cluster_name):
        raise LayoutError(
            f"cluster name {cluster_name!r}: lower-case letters, digits, '-' and '.', "
            "starting and ending with a letter or digit (as `manage.py cluster add` takes)"
        )
    layout = load_layout(layout_path)  # a bad layout fails here, before anything is made
    try:  # a missing component fails here too, with the command that builds it
        binaries = {
            "kube-apiserver": components.binary("kube-apiserver"),
            "etcd": components.binary("etcd"),
            "multus": components.binary("multus"),
            "host-local-v1.6.2": components.binary("host-local-v1.6.2"),
        }
        host_devices = {
            node.host_device: str(components.host_device_binary(node.host_device))
            for node in layout.nodes
        }
    except components.ComponentError as exc:
        raise LabError(str(exc)) from exc
    directory = state_dir(name)
    if (directory / "lab.json").exists():
        state = LabState.load(directory)
        same_keys = state.cluster_name == cluster_name
        if same_keys and is_running(state) and agents_healthy(state):
            return state
        down(name)
    elif topology.list_namespaces(topology.lab_prefix(name)):
        down(name)  # leftovers of a run that lost its state dir

    ports: set[int] = set()
    while len(ports) < len(layout.nodes) + 2:
        ports.add(free_port())
    port = api_port or free_port()
    ports.discard(port)
    etcd_port, etcd_peer_port, *agent_ports = sorted(ports)
    state = LabState(
        directory,
        {
            "name": name,
            "api_port": port,
            "api_url": f"https://127.0.0.1:{port}",
            "etcd_port": etcd_port,
            "etcd_peer_port": etcd_peer_port,
            "components": {
                name: {"version": components.COMPONENTS[name].version, "path": str(path)}
                for name, path in binaries.items()
            },
            "portal_url": portal_url or "",
            "cluster_name": cluster_name,
            "layout": str(layout_path) if layout_path else None,
            "nodes": [
                {
                    "name": node.name,
                    "netns": topology.node_netns(name, node.name),
                    "internal_ip": node.internal_ip,
                    "agent_port": agent_port,
                    "labels": dict(node.labels),
                    "host_device": node.host_device,
                    "host_device_path": host_devices[node.host_device],
                    "multus": node.multus,
                    # The simulated SR-IOV NIC's sysfs tree (lab/sriov.py), "" for none.
                    "sriov_sysfs": str(directory / "sysfs" / node.name) if node.sriov else "",
                }
                for node, agent_port in zip(
                    layout.nodes, agent_ports[: len(layout.nodes)], strict=True
                )
            ],
        },
    )
    state.save()
    for node in layout.nodes:
        if node.sriov:
            tree = directory / "sysfs" / node.name
            if tree.exists():
                shutil.rmtree(tree)
            spec = node.sriov
            sriov.build_tree(tree, pf=spec.pf, vfs=spec.vfs, vfio_vfs=spec.vfio_vfs)
    write_agent_keys(state)
    control_plane.prepare(state)

    topology.build(name, layout)
    with state.log_file.open("ab") as log:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "lab", "serve", "--state-dir", str(directory)],
            cwd=REPO_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,  # its own process group: `down` signals the whole group
        )
    state.pid_file.write_text(str(daemon.pid))

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise LabError(
                f"lab daemon exited with {daemon.returncode}; see {state.log_file}:\n"
                + _tail(state.log_file)
            )
        if state.ready_file.exists() and agents_healthy(state):
            return state
        time.sleep(0.05)
    raise LabError(f"lab {name} not ready after {timeout:.0f} s; see {directory}/*.log")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _lab_processes(name: str, directory: Path) -> list[int]:
    # The agents carry the netns prefix, the daemon its state dir, etcd and kube-apiserver the
    # paths of their data and certificates inside it.
    marks = (
        f"--netns {topology.lab_prefix(name)}",
        f"--state-dir {directory}",
        f"--data-dir {directory}/etcd",
        f"--cert-dir={directory}/pki",
    )
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            cmdline = " ".join(_cmdline(int(entry.name)))
            if any(mark in cmdline for mark in marks):
                found.append(int(entry.name))
    return found


def _signal_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def down(name: str = "demo") -> dict[str, Any]:
    """Stop the daemon and its agents and remove every namespace of this lab."""
    check_name(name)
    directory = state_dir(name)
    stopped: list[int] = []
    if (directory / "lab.json").exists():
        state = LabState.load(directory)
        pid = state.daemon_pid()
        if pid and _alive(pid, "lab", "serve", str(directory)):
            _signal_group(pid, signal.SIGTERM)
            stopped.append(pid)
            deadline = time.monotonic() + 5
            while time.monotonic() < deadline and _alive(pid, "lab", "serve", str(directory)):
                time.sleep(0.05)
            _signal_group(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError, OSError):
                os.waitpid(pid, os.WNOHANG)
        for path in (state.pid_file, state.pids_file, state.ready_file):
            path.unlink(missing_ok=True)
    # Agents and their netns workers outlive a daemon that was killed hard: find them by
    # the arguments only this lab's processes carry.
    for leftover in _lab_processes(name, directory):
        with contextlib.suppress(ProcessLookupError):
            os.kill(leftover, signal.SIGKILL)
        stopped.append(leftover)
    removed = topology.destroy(name)
    return {"name": name, "stopped_pids": stopped, "removed_namespaces": removed}


def status(name: str = "demo") -> dict[str, Any] | None:
    check_name(name)
    directory = state_dir(name)
    if not (directory / "lab.json").exists():
        return None
    state = LabState.load(directory)
    return {**state.status(), "running": is_running(state)}
