"""Reservation requests: "N free NICs with these facts, placed so", matched against the inventory.

A request names a count and constraints over the facts the inventory holds. `match` applies the
filters in a fixed order (where, then the NIC's own facts, then "free"), counts what is left
after each, and then places the count on the survivors:

- `any`: the first `count` NICs in node and name order;
- `one_node`: all on one node, the node with the fewest matching NICs that still has enough
  (best fit: the nodes with many stay whole for larger requests);
- `one_numa`: all on one NUMA node of one node, chosen as `one_node` chooses a node (a NIC whose
  NUMA node is unknown is never placed so);
- `spread`: over exactly `spread_nodes` nodes, as evenly as the count allows (counts differ by
  at most one), on the nodes with the most matching NICs.

When the request cannot be met the answer names the step that emptied the set (or the count or
placement that could not be satisfied) and the closest candidates: the NICs that fail the fewest
constraints, each with what it fails. No I/O: the caller passes the candidates.
"""

from __future__ import annotations

import heapq
import re
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from inventory.rules.nad.render import HOSTNAME_LABEL, NETWORKS_ANNOTATION

PLACEMENTS = ("any", "one_node", "one_numa", "spread")
COUNT_MAX = 64
CLOSEST_MAX = 5
HEX_ID = re.compile(r"^(0x)?[0-9a-fA-F]{4}$")


@dataclass(frozen=True, slots=True)
class Candidate:
    """One NIC of the inventory with the facts a request can ask about."""

    id: int
    node: str
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)
    speed_mbps: int | None = None
    driver: str = ""
    vendor_id: str = ""  # "0x8086" as sysfs says it, "" when unknown
    device_id: str = ""
    sriov_total_vfs: int | None = None
    numa_node: int | None = None
    free: bool = True
    not_free_reason: str = ""  # "in a pod: ns/pod", "reserved by team ml", …
    pci_address: str = ""
    pf: str = ""  # an SR-IOV VF's PF (its netdev name, else its PCI address); "" for no VF
    vf_index: int | None = None  # a VF's number under its PF

    @property
    def label(self) -> str:
        # A VF bound to vfio-pci has no interface name: its PCI address names it.
        return f"{self.node}/{self.name or self.pci_address}"


@dataclass(frozen=True, slots=True)
class Requirement:
    """One term of a Kubernetes label selector."""

    key: str
    operator: str  # "=", "!=", "in", "notin", "exists", "!exists"
    values: tuple[str, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        has = self.key in labels
        value = labels.get(self.key)
        if self.operator == "=":
            return has and value == self.values[0]
        if self.operator == "!=":
            return not has or value != self.values[0]
        if self.operator == "in":
            return has and value in self.values
        if self.operator == "notin":
            return not has or value not in self.values
        if self.operator == "exists":
            return has
        return not has


@dataclass(frozen=True, slots=True)
class Constraints:
    count: int = 1
    nodes: tuple[str, ...] = ()  # node names; () = any node
    label_selector: str = ""  # Kubernetes syntax: "rack=r12,gpu in (a100,h100),!cordoned"
    min_speed_mbps: int | None = None
    driver: str = ""
    vendor_id: str = ""
    device_id: str = ""
    sriov: bool | None = None  # True: SR-IOV capable (total VFs > 0); False: not capable
    vf: bool | None = None  # True: SR-IOV virtual functions only; False: no VFs
    numa_node: int | None = None
    placement: str = "any"
    spread_nodes: int | None = None


@dataclass(frozen=True, slots=True)
class Step:
    """One filter or the placement, with how many NICs it had and left."""

    field: str  # the request field it comes from
    text: str  # "speed ≥ 25000 Mb/s"
    before: int
    after: int

    def as_dict(self) -> dict[str, object]:
        return {"field": self.field, "text": self.text, "before": self.before, "after": self.after}


@dataclass(frozen=True, slots=True)
class Near:
    """A NIC that fails some constraints, and which."""

    candidate: Candidate
    fails: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {"id": self.candidate.id, "nic": self.candidate.label, "fails": list(self.fails)}


@dataclass(frozen=True, slots=True)
class Match:
    steps: tuple[Step, ...]
    matched: int  # how many NICs pass every filter
    picked: tuple[Candidate, ...]  # the NICs chosen, () when the request cannot be met
    failed_step: Step | None = None  # the step that emptied the set or could not place
    explanation: str = ""  # one sentence, "" when met
    closest: tuple[Near, ...] = ()

    @property
    def ok(self) -> bool:
        return bool(self.picked)


class Moved(Exception):
    """The NICs `counted` loaded for its placement are fewer than the counts said: the inventory
    changed between the count and the read (another request took some). Count again."""


# --- validation ----------------------------------------------------------------------------


def parse_label_selector(text: str) -> tuple[tuple[Requirement, ...], str]:
    """The requirements of a Kubernetes label selector, and "" or why it cannot be read."""
    terms, problem = _split_terms(text)
    if problem:
        return (), problem
    requirements = []
    for term in terms:
        requirement, problem = _requirement(term)
        if problem:
            return (), problem
        requirements.append(requirement)
    return tuple(requirements), ""


_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
SELECTOR_RULE = (
    'a label selector is comma-separated terms: key=value, key!=value, "key in (a,b)", '
    '"key notin (a,b)", key, !key (e.g. "rack=r12,nic-tier in (fast)")'
)


def _split_terms(text: str) -> tuple[list[str], str]:
    terms, depth, current = [], 0, []
    for char in text:
        if char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
            if depth < 0:
                return [], "a ')' closes nothing"
        if char == "," and depth == 0:
            terms.append("".join(current).strip())
            current = []
        else:
            current.append(char)
    if depth:
        return [], "a '(' is not closed"
    terms.append("".join(current).strip())
    if text.strip() == "":
        return [], ""
    if any(not term for term in terms):
        return [], "it has an empty term (two commas, or a comma at an end)"
    return terms, ""


def _requirement(term: str) -> tuple[Requirement, str]:
    set_form = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", term)
    if set_form:
        key, operator, inside = set_form.groups()
        values = tuple(v.strip() for v in inside.split(","))
        bad = next((v for v in values if not v or not _VALUE.match(v)), None)
        if bad is not None or not values:
            return Requirement(key, operator), f"{bad!r} in {term!r} is not a label value"
        return _checked(Requirement(key, operator, values), term)
    for operator, spelling in (("!=", "!="), ("=", "=="), ("=", "=")):
        if spelling in term:
            key, _, value = term.partition(spelling)
            key, value = key.strip(), value.strip()
            if not _VALUE.match(value):
                return Requirement(key, operator), f"{value!r} in {term!r} is not a label value"
            return _checked(Requirement(key, operator, (value,)), term)
    if term.startswith("!"):
        return _checked(Requirement(term[1:].strip(), "!exists"), term)
    return _checked(Requirement(term, "exists"), term)


def _checked(requirement: Requirement, term: str) -> tuple[Requirement, str]:
    if not _KEY.match(requirement.key) or len(requirement.key) > 316:
        return requirement, f"{requirement.key!r} in {term!r} is not a label key"
    return requirement, ""


def constraint_problems(constraints: Constraints) -> dict[str, list[str]]:
    """Field -> what is wrong with it; {} when the constraints can be matched."""
    problems: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        problems.setdefault(name, []).append(message)

    if not 1 <= constraints.count <= COUNT_MAX:
        add("count", f"Ask for 1 to {COUNT_MAX} NICs.")
    if constraints.label_selector:
        _, problem = parse_label_selector(constraints.label_selector)
        if problem:
            add("label_selector", f"Not a label selector: {problem}; {SELECTOR_RULE}.")
    if constraints.min_speed_mbps is not None and constraints.min_speed_mbps < 1:
        add("min_speed_mbps", "A speed in Mb/s of at least 1 (25G is 25000).")
    for name in ("vendor_id", "device_id"):
        value = getattr(constraints, name)
        if value and not HEX_ID.match(value):
            add(
                name,
                f"A PCI id is four hex digits, with or without 0x (e.g. 0x8086), not {value!r}.",
            )
    if constraints.numa_node is not None and constraints.numa_node < 0:
        add("numa_node", "A NUMA node number is 0 or more.")
    if constraints.placement not in PLACEMENTS:
        add("placement", f"One of {', '.join(PLACEMENTS)}.")
    if constraints.placement == "spread":
        n = constraints.spread_nodes
        if n is None:
            add("spread_nodes", 'Say over how many nodes ("spread" needs spread_nodes).')
        elif n < 1 or n > constraints.count:
            add(
                "spread_nodes",
                f"From 1 to the count ({constraints.count}): one NIC at least per node.",
            )
    elif constraints.spread_nodes is not None:
        add("spread_nodes", 'Only with placement "spread".')
    return problems


def normalize_pci_id(value: str) -> str:
    """ "8086", "0x8086", "0X8086" -> "0x8086" (sysfs's spelling); "" stays ""."""
    value = value.strip().lower()
    if not value:
        return ""
    return value if value.startswith("0x") else f"0x{value}"


# --- matching ------------------------------------------------------------------------------


Filter = tuple[str, str, Callable[[Candidate], str]]  # field, text, candidate -> "" or failure


def filters(constraints: Constraints) -> list[Filter]:
    """The request's filters in the order they apply; each says "" or why a NIC fails it."""
    c = constraints
    result: list[Filter] = []
    if c.nodes:
        wanted = frozenset(c.nodes)
        shown = ", ".join(c.nodes[:5]) + (" …" if len(c.nodes) > 5 else "")
        result.append(
            (
                "nodes",
                f"node in ({shown})",
                lambda n: "" if n.node in wanted else f"node {n.node} is not named",
            )
        )
    if c.label_selector:
        requirements, _ = parse_label_selector(c.label_selector)

        def labels(n: Candidate) -> str:
            failing = [r for r in requirements if not r.matches(n.labels)]
            return f"node labels fail {_requirement_text(failing[0])}" if failing else ""

        result.append(("label_selector", f"node labels {c.label_selector}", labels))
    if c.min_speed_mbps is not None:
        floor = c.min_speed_mbps

        def speed(n: Candidate) -> str:
            if n.speed_mbps is None or n.speed_mbps < 0:
                return "speed unknown"
            return f"speed {n.speed_mbps} Mb/s" if n.speed_mbps < floor else ""

        result.append(("min_speed_mbps", f"speed ≥ {floor} Mb/s", speed))
    if c.driver:
        result.append(
            (
                "driver",
                f"driver {c.driver}",
                lambda n: "" if n.driver == c.driver else f"driver {n.driver or 'unknown'}",
            )
        )
    if c.vendor_id:
        vendor = normalize_pci_id(c.vendor_id)
        result.append(
            (
                "vendor_id",
                f"PCI vendor {vendor}",
                lambda n: (
                    ""
                    if normalize_pci_id(n.vendor_id) == vendor
                    else f"vendor {n.vendor_id or 'unknown'}"
                ),
            )
        )
    if c.device_id:
        device = normalize_pci_id(c.device_id)
        result.append(
            (
                "device_id",
                f"PCI device {device}",
                lambda n: (
                    ""
                    if normalize_pci_id(n.device_id) == device
                    else f"device {n.device_id or 'unknown'}"
                ),
            )
        )
    if c.sriov is not None:
        want = c.sriov

        def sriov(n: Candidate) -> str:
            capable = bool(n.sriov_total_vfs)
            if capable == want:
                return ""
            return "not SR-IOV capable" if want else f"SR-IOV capable ({n.sriov_total_vfs} VFs)"

        result.append(("sriov", "SR-IOV capable" if want else "not SR-IOV capable", sriov))
    if c.vf is not None:
        want_vf = c.vf

        def vf(n: Candidate) -> str:
            if bool(n.pf) == want_vf:
                return ""
            number = f" {n.vf_index}" if n.vf_index is not None else ""
            return f"SR-IOV VF{number} of {n.pf}" if n.pf else "not an SR-IOV VF"

        result.append(("vf", "an SR-IOV VF" if want_vf else "not an SR-IOV VF", vf))
    if c.numa_node is not None:
        numa = c.numa_node
        result.append(
            (
                "numa_node",
                f"NUMA node {numa}",
                lambda n: (
                    ""
                    if n.numa_node == numa
                    else f"NUMA node {'unknown' if n.numa_node is None else n.numa_node}"
                ),
            )
        )
    result.append(
        (
            "free",
            "free (not in use, not reserved)",
            lambda n: "" if n.free else (n.not_free_reason or "not free"),
        )
    )
    return result


def match(candidates: Sequence[Candidate], constraints: Constraints) -> Match:
    """Apply the constraints in order and place the count (see the module docstring). The
    constraints must be valid (`constraint_problems` is empty)."""
    ordered = sorted(candidates, key=lambda n: (n.node, n.name, n.id))
    totals = [len(ordered)]
    remaining = ordered
    for _name, _text, check in filters(constraints):
        remaining = [n for n in remaining if not check(n)]
        totals.append(len(remaining))
        if not remaining:
            break
    per_node: dict[Any, int] = defaultdict(int)
    for nic in remaining:
        per_node[group_of(nic, constraints)] += 1
    wanted_nodes: set[str] = set()

    def load(nodes: Sequence[str]) -> list[Candidate]:
        wanted_nodes.update(nodes)
        return [n for n in remaining if n.node in wanted_nodes]

    return counted(constraints, totals, per_node, load=load, near=lambda _steps: ordered)


def group_of(nic: Candidate, constraints: Constraints) -> Any:
    """What a placement counts NICs by: the node, or (node, NUMA node) for `one_numa` (a NIC
    whose NUMA node is unknown is counted as (node, None), a group `one_numa` never takes)."""
    if constraints.placement != "one_numa":
        return nic.node
    return (nic.node, nic.numa_node)


def _node_of(group: Any) -> str:
    return group[0] if isinstance(group, tuple) else group


def counted(
    constraints: Constraints,
    totals: Sequence[int],
    per_node: Mapping[Any, int],
    *,
    load: Callable[[Sequence[str]], Sequence[Candidate]],
    near: Callable[[int], Sequence[Candidate]],
) -> Match:
    """The match from counts, wherever they were made (in memory by `match`, or by the database:
    read/capacity.py): `totals` is the number of NICs before the first filter and after each (it
    may stop at the first 0), `per_node` the NICs passing every filter per `group_of` (the node,
    or node and NUMA node; groups with none left out). `load(nodes)` gives the NICs of those
    nodes that pass every filter; `near(steps)` gives at least the CLOSEST_MAX NICs that
    `_closest` ranks first when the `steps`-th filter emptied the set (all the NICs will do).
    Raises Moved when `load` gives fewer NICs than `per_node` counted for the chosen groups."""
    checks = filters(constraints)
    steps: list[Step] = []
    for index, (name, text, _check) in enumerate(checks):
        step = Step(name, text, totals[index], totals[index + 1])
        steps.append(step)
        if not step.after:
            closest = _closest(near(len(steps)), checks, len(steps))
            return Match(
                tuple(steps), 0, (), step, f"{text} left 0 of {step.before}" + _listed(closest),
                closest,
            )  # fmt: skip
    total = totals[len(checks)]
    chosen, step, why = plan(per_node, constraints, total)
    steps.append(step)
    if not chosen:
        by_name: dict[str, int] = defaultdict(int)
        for group, n in per_node.items():
            by_name[_node_of(group)] += n
        first, left = [], CLOSEST_MAX
        for node in sorted(by_name):
            first.append(node)
            left -= by_name[node]
            if left <= 0:
                break
        shown = _ordered(load(first))[:CLOSEST_MAX]
        return Match(tuple(steps), total, (), step, why, tuple(Near(n, ()) for n in shown))
    by_node: dict[Any, list[Candidate]] = defaultdict(list)
    for nic in _ordered(load([_node_of(group) for group, _need in chosen])):
        by_node[group_of(nic, constraints)].append(nic)
    if any(len(by_node[group]) < need for group, need in chosen):
        raise Moved(f"fewer NICs than counted on {', '.join(map(str, chosen))}")
    picked = [nic for node, need in chosen for nic in by_node[node][:need]]
    return Match(tuple(steps), total, tuple(picked))


def _ordered(nics: Sequence[Candidate]) -> list[Candidate]:
    return sorted(nics, key=lambda n: (n.node, n.name, n.id))


def plan(
    per_node: Mapping[Any, int], c: Constraints, total: int
) -> tuple[list[tuple[Any, int]], Step, str]:
    """Where the count goes, from the number of matching NICs in each `group_of` (groups with
    none left out) and the number that match: [(group, how many of its first NICs in name
    order)], [] when the placement cannot be met; the placement step; and why not."""
    if c.placement == "one_numa":
        text = f"{c.count} on one NUMA node"
        known = {group: n for group, n in per_node.items() if group[1] is not None}
        fits = sorted((n, group) for group, n in known.items() if n >= c.count)
        if not fits:
            if not known:
                why = f"{text}: {total} match but the NUMA node of every one is unknown"
            else:
                most, (node, numa) = max((n, group) for group, n in known.items())
                why = (
                    f"{text}: {total} match but no NUMA node of one node has {c.count} "
                    f"(the most on one NUMA node: {most} on {node} NUMA node {numa})"
                )
            return [], Step("placement", text, total, 0), why
        return [(fits[0][1], c.count)], Step("placement", text, total, c.count), ""
    if c.placement == "one_node":
        text = f"{c.count} on one node"
        fits = sorted((n, node) for node, n in per_node.items() if n >= c.count)
        if not fits:
            most, node = max((n, node) for node, n in per_node.items())
            why = (
                f"{text}: {total} match but no node has {c.count} "
                f"(the most on one node: {most} on {node})"
            )
            return [], Step("placement", text, total, 0), why
        return [(fits[0][1], c.count)], Step("placement", text, total, c.count), ""
    if c.placement == "spread":
        n = c.spread_nodes or 1
        text = f"{c.count} spread over {n} nodes"
        share, extra = divmod(c.count, n)
        ranked = sorted(per_node.items(), key=lambda item: (-item[1], item[0]))[:n]
        needs = [share + 1] * extra + [share] * (n - extra)
        if len(ranked) < n or any(
            have < need for (_, have), need in zip(ranked, needs, strict=True)
        ):
            enough = sum(1 for have in per_node.values() if have >= share)
            why = (
                f"{text}: {total} match on {len(per_node)} node(s), {enough} of them with "
                f"{share} or more; {n} nodes with {share}{'+' if extra else ''} each are needed"
            )
            return [], Step("placement", text, total, 0), why
        chosen = [(node, need) for (node, _), need in zip(ranked, needs, strict=True)]
        return chosen, Step("placement", text, total, c.count), ""
    text = f"count {c.count}"
    if total < c.count:
        return [], Step("count", text, total, 0), f"{c.count} asked, {total} match"
    chosen, left = [], c.count
    for node in sorted(per_node):
        take = min(left, per_node[node])
        chosen.append((node, take))
        left -= take
        if not left:
            break
    return chosen, Step("count", text, total, c.count), ""


def _closest(ordered: Sequence[Candidate], checks: list[Filter], steps: int) -> tuple[Near, ...]:
    """The NICs failing the fewest filters; among equals, first those that reached the filter
    that emptied the set (the `steps`-th), then the fastest."""
    scored = []
    for nic in ordered:
        results = [check(nic) for _, _, check in checks]
        fails = tuple(why for why in results if why)
        reached = not any(results[: steps - 1])
        key = (len(fails), not reached, -(nic.speed_mbps or 0), nic.node, nic.name)
        scored.append((key, nic.id, fails, nic))
    best = heapq.nsmallest(CLOSEST_MAX, scored, key=lambda row: row[:2])
    return tuple(Near(nic, fails) for _, _, fails, nic in best)


def _listed(closest: tuple[Near, ...]) -> str:
    if not closest:
        return " (no NIC in the inventory)"
    return "; closest: " + "; ".join(f"{n.candidate.label} ({', '.join(n.fails)})" for n in closest)


def _requirement_text(requirement: Requirement) -> str:
    if requirement.operator in ("in", "notin"):
        return f"{requirement.key} {requirement.operator} ({','.join(requirement.values)})"
    if requirement.operator == "exists":
        return requirement.key
    if requirement.operator == "!exists":
        return f"!{requirement.key}"
    return f"{requirement.key}{requirement.operator}{requirement.values[0]}"


# --- the hand-out ----------------------------------------------------------------------------


def slots(picked: Sequence[Candidate]) -> list[list[Candidate]]:
    """The granted NICs as NAD slots: slot k holds the k-th NIC of each node. One attachment
    moves one device and a NAD may name one device per node, so a pod using k NICs on its node
    uses k NADs, one per slot."""
    by_node: dict[str, list[Candidate]] = defaultdict(list)
    for nic in sorted(picked, key=lambda n: (n.node, n.name, n.id)):
        by_node[nic.node].append(nic)
    depth = max((len(nics) for nics in by_node.values()), default=0)
    return [[nics[k] for nics in by_node.values() if len(nics) > k] for k in range(depth)]


def pod_placement(networks_by_node: Mapping[str, Sequence[str]]) -> str:
    """The pod fragment(s) that use the granted NICs: per node, the Multus networks annotation
    naming its NADs ("ns/name@net1") and the nodeSelector that keeps the pod there. Nodes with the
    same networks share one fragment with a required node affinity."""
    groups: dict[tuple[str, ...], list[str]] = defaultdict(list)
    for node, networks in sorted(networks_by_node.items()):
        groups[tuple(networks)].append(node)
    documents = []
    for networks, nodes in groups.items():
        spec: dict[str, object]
        if len(nodes) == 1:
            spec = {"nodeSelector": {HOSTNAME_LABEL: nodes[0]}}
        else:
            term = {"key": HOSTNAME_LABEL, "operator": "In", "values": nodes}
            spec = {
                "affinity": {
                    "nodeAffinity": {
                        "requiredDuringSchedulingIgnoredDuringExecution": {
                            "nodeSelectorTerms": [{"matchExpressions": [term]}]
                        }
                    }
                }
            }
        snippet = {
            "metadata": {"annotations": {NETWORKS_ANNOTATION: ", ".join(networks)}},
            "spec": spec,
        }
        documents.append(
            f"# pods on {', '.join(nodes)}\n"
            + yaml.safe_dump(snippet, default_flow_style=False, sort_keys=False)
        )
    return "---\n".join(documents)
