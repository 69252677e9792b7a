"""What the lab's nodes look like, as data: which NICs each node has and what they carry.

A layout is a small YAML file (or the built-in DEFAULT_LAYOUT)::

    nodes:
      - name: node-a
        nics:
          - {name: eth0, address: 10.0.0.11/24, default_route: true}   # InternalIP = this address
          - {name: eth1}
          - {name: eth4, master: br-ex}
          - {name: eth5, address: 10.1.0.11/24}                         # address, no default route
        bridges: [br-ex]
        calico: true          # a cali<hex> veth and vxlan.calico, as Calico leaves on a node
        host_device: "1.2.0"  # which host-device release the node runs (1.1.1, 1.2.0, 1.6.2)
        multus: "3.9"         # which Multus generation the node's Multus behaves as (3.9, 4.2)
        labels: {nicportal.io/rack: r1}    # extra Node labels (for nodeSelector / affinity)
        sriov: {pf: eth0, vfs: [eth1], vfio_vfs: 1}   # simulated SR-IOV (lab/sriov.py)

Every NIC is a veth whose peer sits in the lab's switch namespace (one bridge there), so that
traffic can flow between nodes and pods that got a NIC.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

LINK_NAME_MAX = 15  # IFNAMSIZ - 1
LAB_NAME = re.compile(r"^[a-z0-9]{1,20}$")  # no dash: `nplab-<lab>-` must never match another lab
NODE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,30}[a-z0-9])?$")
GATEWAY = "10.0.0.254"  # the switch's address on the node network, the nodes' default gateway
SWITCH_ADDRESS = f"{GATEWAY}/24"
# host-device releases (lab/components.py builds 1.2.0 and 1.6.2, Debian ships 1.1.1) and the
# Multus generations whose writes the lab's Multus reproduces (lab/multus.py).
HOST_DEVICE_RELEASES = ("1.1.1", "1.2.0", "1.6.2")
DEFAULT_HOST_DEVICE = "1.1.1"
MULTUS_VERSIONS = ("3.9", "4.2")
DEFAULT_MULTUS = "4.2"
LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")


class LayoutError(ValueError):
    """A layout that the lab cannot build (said before anything is created)."""


@dataclass(frozen=True)
class NicSpec:
    name: str
    address: str | None = None  # CIDR
    default_route: bool = False
    master: str | None = None  # a bridge of the same node


@dataclass(frozen=True)
class SriovSpec:
    """A simulated SR-IOV PF (lab/sriov.py): ``pf`` and ``vfs`` are NICs of the node (veths that
    stand in for the PF's and the netdev VFs' netdevs); ``vfio_vfs`` VFs are bound to vfio-pci."""

    pf: str
    vfs: tuple[str, ...] = ()
    vfio_vfs: int = 0


@dataclass(frozen=True)
class NodeLayout:
    name: str
    nics: tuple[NicSpec, ...]
    bridges: tuple[str, ...] = ()
    calico: bool = False
    host_device: str = DEFAULT_HOST_DEVICE
    multus: str = DEFAULT_MULTUS
    labels: tuple[tuple[str, str], ...] = ()
    sriov: SriovSpec | None = None

    @property
    def internal_ip(self) -> str:
        for nic in self.nics:
            if nic.default_route and nic.address:
                return nic.address.split("/")[0]
        raise LayoutError(f"node {self.name}: no NIC with an address and the default route")

    @property
    def calico_link(self) -> str:
        # Calico names host-side veths cali + 11 hex characters of a hash.
        return "cali" + hashlib.sha1(f"{self.name}/host".encode()).hexdigest()[:11]


@dataclass(frozen=True)
class Layout:
    nodes: tuple[NodeLayout, ...] = field(default_factory=tuple)

    def node(self, name: str) -> NodeLayout:
        for node in self.nodes:
            if node.name == name:
                return node
        raise KeyError(name)


def _nic(raw: Any, node: str) -> NicSpec:
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or "name" not in raw:
        raise LayoutError(f"node {node}: a NIC needs at least a name, got {raw!r}")
    unknown = set(raw) - {"name", "address", "default_route", "master"}
    if unknown:
        raise LayoutError(f"node {node}, NIC {raw['name']}: unknown keys {sorted(unknown)}")
    return NicSpec(
        name=str(raw["name"]),
        address=raw.get("address"),
        default_route=bool(raw.get("default_route", False)),
        master=raw.get("master"),
    )


def _sriov(raw: Any, node: str) -> SriovSpec | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or set(raw) - {"pf", "vfs", "vfio_vfs"} or "pf" not in raw:
        raise LayoutError(f"node {node}: sriov is a mapping with pf, and optionally vfs, vfio_vfs")
    vfs, vfio = raw.get("vfs") or [], raw.get("vfio_vfs", 0)
    if not isinstance(vfs, list) or not isinstance(vfio, int) or isinstance(vfio, bool):
        raise LayoutError(f"node {node}: sriov vfs is a list of NIC names, vfio_vfs a number")
    return SriovSpec(pf=str(raw["pf"]), vfs=tuple(str(vf) for vf in vfs), vfio_vfs=vfio)


def parse_layout(data: Any) -> Layout:
    """Build and validate a Layout from parsed YAML; raises LayoutError with a specific message."""
    if not isinstance(data, dict) or not isinstance(data.get("nodes"), list) or not data["nodes"]:
        raise LayoutError("a layout is a mapping with a non-empty `nodes` list")
    nodes = []
    for raw in data["nodes"]:
        if not isinstance(raw, dict) or "name" not in raw:
            raise LayoutError(f"a node needs a name, got {raw!r}")
        name = str(raw["name"])
        unknown = set(raw) - {
            "name", "nics", "bridges", "calico", "host_device", "multus", "labels", "sriov"
        }  # fmt: skip
        if unknown:
            raise LayoutError(f"node {name}: unknown keys {sorted(unknown)}")
        labels = raw.get("labels") or {}
        if not isinstance(labels, dict):
            raise LayoutError(f"node {name}: labels is a mapping of label keys to values")
        nodes.append(
            NodeLayout(
                name=name,
                nics=tuple(_nic(nic, name) for nic in raw.get("nics", [])),
                bridges=tuple(str(b) for b in raw.get("bridges", [])),
                calico=bool(raw.get("calico", False)),
                host_device=str(raw.get("host_device", DEFAULT_HOST_DEVICE)),
                multus=str(raw.get("multus", DEFAULT_MULTUS)),
                labels=tuple(sorted((str(k), str(v)) for k, v in labels.items())),
                sriov=_sriov(raw.get("sriov"), name),
            )
        )
    layout = Layout(nodes=tuple(nodes))
    validate(layout)
    return layout


def validate(layout: Layout) -> None:
    seen_nodes: set[str] = set()
    for node in layout.nodes:
        if (
            not NODE_NAME.match(node.name)
            or node.name in ("switch",)
            or node.name.startswith("pod")
        ):
            raise LayoutError(f"node name {node.name!r}: lower-case DNS label, not switch/pod*")
        if node.name in seen_nodes:
            raise LayoutError(f"node {node.name} appears twice")
        seen_nodes.add(node.name)
        node.internal_ip  # noqa: B018  (raises LayoutError when there is none)
        names = [nic.name for nic in node.nics] + list(node.bridges)
        for link in names:
            # The switch-side peer is named s<index>-<nic>, so NIC names leave room for that.
            if not re.match(r"^[A-Za-z0-9][A-Za-z0-9._-]*$", link) or len(link) > 11:
                raise LayoutError(f"node {node.name}: link name {link!r} invalid or over 11 chars")
        if len(set(names)) != len(names):
            raise LayoutError(f"node {node.name}: duplicate link names")
        if node.host_device not in HOST_DEVICE_RELEASES:
            raise LayoutError(
                f"node {node.name}: host_device {node.host_device!r}: the lab has"
                f" {', '.join(HOST_DEVICE_RELEASES)}"
            )
        if node.multus not in MULTUS_VERSIONS:
            raise LayoutError(
                f"node {node.name}: multus {node.multus!r}: one of {', '.join(MULTUS_VERSIONS)}"
            )
        for key, value in node.labels:
            if not LABEL_KEY.match(key) or not LABEL_VALUE.match(value) or len(value) > 63:
                raise LayoutError(f"node {node.name}: label {key}={value!r} is not valid")
        for nic in node.nics:
            if nic.master and nic.master not in node.bridges:
                raise LayoutError(f"node {node.name}, NIC {nic.name}: no bridge {nic.master}")
        if node.sriov is not None:
            spec, nics = node.sriov, {nic.name for nic in node.nics}
            functions = [spec.pf, *spec.vfs]
            if not set(functions) <= nics or len(set(functions)) != len(functions):
                raise LayoutError(f"node {node.name}: sriov pf and vfs are distinct NICs of it")
            if not 1 <= len(spec.vfs) + spec.vfio_vfs <= 8 or spec.vfio_vfs < 0:
                raise LayoutError(f"node {node.name}: sriov has 1 to 8 VFs")
    if len(layout.nodes) > 50:
        raise LayoutError("at most 50 nodes")


def load_layout(path: str | Path | None) -> Layout:
    if path is None:
        return DEFAULT_LAYOUT
    try:
        data = yaml.safe_load(Path(path).read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise LayoutError(f"cannot read layout {path}: {exc}") from exc
    return parse_layout(data)


def _plain_node(name: str, index: int) -> dict[str, Any]:
    return {
        "name": name,
        "nics": [{"name": "eth0", "address": f"10.0.0.{11 + index}/24", "default_route": True}]
        + [{"name": f"eth{i}"} for i in (1, 2, 3)],
    }


DEFAULT_LAYOUT = parse_layout(
    {
        "nodes": [
            {
                "name": "node-a",
                "nics": [
                    {"name": "eth0", "address": "10.0.0.11/24", "default_route": True},
                    {"name": "eth1"},
                    {"name": "eth2"},
                    {"name": "eth3"},
                    {"name": "eth4", "master": "br-ex"},
                    {"name": "eth5", "address": "10.1.0.11/24"},
                ],
                "bridges": ["br-ex"],
                "calico": True,
            },
            _plain_node("node-b", 1),
            _plain_node("node-c", 2),
        ]
    }
)
