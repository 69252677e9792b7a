"""A NAD that may land on every node, linted on device classes (rules/admission/fleet.py says
why that is exact): `lint(..., fleet=FleetView(...))` gets the facts of each class's first
members as its inventory, and the view answers for the rest of the fleet (which nodes have the
device, which of them cannot hand it to a pod, the cniVersion findings of every node's plugin)
and records, for each finding of a class's first member, how many members it also stands for.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace

from inventory.rules.nad.facts import DeviceFacts, Finding


class ClassMismatch(Exception):
    """Two members of one device class yielded different findings: judge node by node."""


@dataclass(frozen=True, slots=True)
class DeviceClass:
    """Devices matching one selector that the rules cannot tell apart (same state, kind,
    driver, netdev, VFs, reservation, primary-NIC reason, plugin)."""

    devices: tuple[DeviceFacts, ...]  # its first members, in node-name order
    nodes: tuple[str, ...]  # every member's node, in node-name order

    @property
    def unread(self) -> int:
        """Members whose facts were not read (counted, never named)."""
        return len(self.nodes) - len(self.devices)


@dataclass
class FleetView:
    nodes: Collection[str]  # every node the NAD may land on
    classes: Sequence[DeviceClass]  # the devices its selector picks there
    versions: Callable[[str], list[Finding]]  # cniVersion findings over every node's plugin
    # Outputs: id(finding) -> members of its class it also stands for (`kept` holds the
    # findings so that their ids stay theirs), and each class's codes, to check they agree.
    weights: dict[int, int] = field(default_factory=dict)
    kept: list[Finding] = field(default_factory=list)
    signatures: dict[tuple[str, str], tuple[tuple[str, str], ...]] = field(default_factory=dict)
    by_node: dict[str, DeviceClass] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.by_node = {d.node: group for group in self.classes for d in group.devices}

    @property
    def inventory(self) -> dict[str, Sequence[DeviceFacts]]:
        """The read members, as lint's devices_by_node."""
        return {d.node: (d,) for group in self.classes for d in group.devices}

    def fresh(self) -> FleetView:
        """The same fleet, no outputs (for linting another object, an UPDATE's old one)."""
        return replace(self, weights={}, kept=[], signatures={})

    def count(self, section: str, node: str, findings: Sequence[Finding]) -> None:
        """`findings` are what `section` of the linter says of a read member on `node`."""
        group = self._class_of(node)
        signature = tuple((f.code, f.severity) for f in findings)
        if self.signatures.setdefault((section, group.nodes[0]), signature) != signature:
            raise ClassMismatch(f"members of one device class differ in {section} findings")
        if node == group.nodes[0] and group.unread:
            for finding in findings:
                self.weights[id(finding)] = group.unread
                self.kept.append(finding)

    def spread(self, nodes: Collection[str]) -> set[str]:
        """Every member of the classes of these read members."""
        groups = {id(group): group for group in map(self._class_of, nodes)}
        return set().union(*(group.nodes for group in groups.values()))

    def _class_of(self, node: str) -> DeviceClass:
        return self.by_node[node]
