"""Builds and removes the lab's network namespaces with iproute2 (`ip -batch`, one call per node).

Namespace names all start with `nplab-<lab>-`; lab names contain no dash, so that prefix never
matches another lab's namespaces and `down` can remove exactly its own.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from lab.layout import GATEWAY, SWITCH_ADDRESS, Layout, NodeLayout

NETNS_DIR = Path("/run/netns")
NETNS_PREFIX = "nplab-"
SWITCH_BRIDGE = "sw"


class TopologyError(RuntimeError):
    """An iproute2 command failed; the message carries its stderr."""


def lab_prefix(lab: str) -> str:
    return f"{NETNS_PREFIX}{lab}-"


def node_netns(lab: str, node: str) -> str:
    return f"{lab_prefix(lab)}{node}"


def switch_netns(lab: str) -> str:
    return f"{lab_prefix(lab)}switch"


def pod_netns(lab: str, pod_uid: str) -> str:
    return f"{lab_prefix(lab)}pod-{pod_uid.replace('-', '')[:12]}"


def _ip(*args: str, batch: Iterable[str] | None = None, check: bool = True) -> str:
    command = ["ip", *args]
    stdin = None
    if batch is not None:
        command += ["-force", "-batch", "-"]
        stdin = "\n".join(batch) + "\n"
    done = subprocess.run(command, input=stdin, capture_output=True, text=True, check=False)
    if check and done.returncode != 0:
        raise TopologyError(f"{' '.join(command)}: {done.stderr.strip()}")
    return done.stdout


def list_namespaces(prefix: str = NETNS_PREFIX) -> list[str]:
    if not NETNS_DIR.is_dir():
        return []
    return sorted(p.name for p in NETNS_DIR.iterdir() if p.name.startswith(prefix))


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def links(netns: str) -> list[dict[str, Any]]:
    """`ip -j -d link` of a namespace, parsed."""
    return json.loads(_ip("-n", netns, "-j", "-d", "link", "show") or "[]")


def addresses(netns: str) -> list[dict[str, Any]]:
    return json.loads(_ip("-n", netns, "-j", "addr", "show") or "[]")


def _peer(index: int, link: str) -> str:
    return f"s{index}-{link}"


def _nic_commands(lab: str, index: int, node: NodeLayout, nic_names: set[str]) -> list[str]:
    switch = switch_netns(lab)
    commands = []
    for nic in node.nics:
        if nic.name not in nic_names:
            continue
        peer = _peer(index, nic.name)
        commands += [
            f"link add {nic.name} type veth peer name {peer} netns {switch}",
            f"-n {switch} link set {peer} master {SWITCH_BRIDGE} up",
        ]
        if nic.master:
            commands.append(f"link set {nic.name} master {nic.master}")
        if nic.address:
            commands.append(f"addr add {nic.address} dev {nic.name}")
        commands.append(f"link set {nic.name} up")
        if nic.default_route:
            commands.append(f"route add default via {GATEWAY} dev {nic.name}")
    return commands


def _node_commands(lab: str, index: int, node: NodeLayout) -> list[str]:
    commands = ["link set lo up"]
    commands += [f"link add {bridge} type bridge" for bridge in node.bridges]
    commands += [f"link set {bridge} up" for bridge in node.bridges]
    commands += _nic_commands(lab, index, node, {nic.name for nic in node.nics})
    if node.calico:
        peer = _peer(index, "cali")
        switch = switch_netns(lab)
        commands += [
            f"link add {node.calico_link} type veth peer name {peer} netns {switch}",
            f"-n {switch} link set {peer} master {SWITCH_BRIDGE} up",
            f"link set {node.calico_link} up",
            f"link add vxlan.calico type vxlan id 4096 local {node.internal_ip} dstport 4789",
            "link set vxlan.calico up",
        ]
    return commands


def _batch_in(netns: str, commands: list[str]) -> None:
    # iproute2 batch lines cannot carry `-n`: a line written "-n OTHER cmd" runs in OTHER, the
    # rest in `netns`; consecutive lines for one namespace go in one `ip -n NS -batch` call.
    groups: list[tuple[str, list[str]]] = []
    for command in commands:
        target = netns
        if command.startswith("-n "):
            _, target, command = command.split(" ", 2)
        if groups and groups[-1][0] == target:
            groups[-1][1].append(command)
        else:
            groups.append((target, [command]))
    for target, group in groups:
        _ip("-n", target, batch=group)


def build(lab: str, layout: Layout) -> None:
    """Create the switch and every node namespace with its links (fails on existing ones)."""
    switch = switch_netns(lab)
    _ip(
        batch=[f"netns add {switch}"]
        + [f"netns add {node_netns(lab, n.name)}" for n in layout.nodes]
    )
    _ip(
        "-n",
        switch,
        batch=[
            "link set lo up",
            f"link add {SWITCH_BRIDGE} type bridge",
            f"link set {SWITCH_BRIDGE} up",
            f"addr add {SWITCH_ADDRESS} dev {SWITCH_BRIDGE}",
        ],
    )
    for index, node in enumerate(layout.nodes):
        _batch_in(node_netns(lab, node.name), _node_commands(lab, index, node))


def restore_nics(lab: str, layout: Layout) -> list[str]:
    """Bring every layout NIC back to its initial state; return what had to be repaired.

    Orphans (a NIC that came back from a dead pod still named netN, its name in the alias) are
    renamed; NICs destroyed with a pod's namespace (veths die with it) are created again.
    """
    repaired = []
    switch = switch_netns(lab)
    switch_links = {link["ifname"] for link in links(switch)}
    for index, node in enumerate(layout.nodes):
        netns = node_netns(lab, node.name)
        present = {link["ifname"]: link for link in links(netns)}
        by_alias = {link.get("ifalias"): link for link in present.values() if link.get("ifalias")}
        missing = set()
        for nic in node.nics:
            if nic.name in present:
                continue
            if nic.name in by_alias:
                orphan = by_alias[nic.name]["ifname"]
                _ip(
                    "-n",
                    netns,
                    batch=[f"link set {orphan} down", f"link set {orphan} name {nic.name}"],
                )
                repaired.append(f"{node.name}/{nic.name}: renamed from {orphan}")
                present[nic.name] = by_alias[nic.name]
                continue
            missing.add(nic.name)
            if _peer(index, nic.name) in switch_links:
                _ip("-n", switch, "link", "del", _peer(index, nic.name), check=False)
            repaired.append(f"{node.name}/{nic.name}: created again")
        commands = _nic_commands(lab, index, node, missing)
        # NICs that were only moved and returned lost their addresses, master and UP state.
        for nic in node.nics:
            if nic.name in missing:
                continue
            link = present[nic.name]
            if nic.master and link.get("master") != nic.master:
                commands.append(f"link set {nic.name} master {nic.master}")
            if "UP" not in link.get("flags", []):
                commands.append(f"link set {nic.name} up")
        if commands:
            _batch_in(netns, commands)
        current = {a["ifname"]: a for a in addresses(netns)}
        fixes = []
        for nic in node.nics:
            if nic.address and nic.name not in missing:
                have = {
                    f"{i['local']}/{i['prefixlen']}"
                    for i in current.get(nic.name, {}).get("addr_info", [])
                }
                if nic.address not in have:
                    fixes.append(f"addr add {nic.address} dev {nic.name}")
                    if nic.default_route:
                        fixes.append(f"route replace default via {GATEWAY} dev {nic.name}")
        if fixes:
            _ip("-n", netns, batch=fixes)
    return repaired


def delete_namespaces(names: Iterable[str]) -> None:
    names = list(names)
    if names:
        # -force: keep going past a namespace that vanished meanwhile.
        _ip(batch=[f"netns del {name}" for name in names], check=False)
    for name in names:
        if netns_exists(name):
            _ip("netns", "del", name, check=False)


def destroy(lab: str) -> list[str]:
    """Remove every namespace of this lab (pods first: their veths die with them)."""
    names = list_namespaces(lab_prefix(lab))
    pods = [n for n in names if n.startswith(lab_prefix(lab) + "pod-")]
    delete_namespaces(pods)
    delete_namespaces([n for n in names if n not in pods])
    return names
