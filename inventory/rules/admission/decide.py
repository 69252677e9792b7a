"""Admission decisions for NADs and pods (pure: facts in, a Decision out, no I/O).

NADs (CREATE, UPDATE) are judged by the NAD linter (inventory.nad.lint) against the inventory of
the nodes they can land on: its errors deny, with the finding's code, field and fix; its
warnings become admission warnings. Three kinds of error describe the device's state at this
moment rather than a defect of the NAD, and are warnings here: the device is in a pod right now
(DEVICE_IN_POD: the NAD outlives that pod, and the pod webhook guards the actual conflict), the
node's agent has not answered (state unknown: NICPortal cannot tell), and, on UPDATE, an error
the old object already had (a label added to an old NAD must not be refused for what it always
was; only new errors deny).

Pods (CREATE) asking for host-device NADs through `k8s.v1.cni.cncf.io/networks` are denied when,
on any node the pod may run on (spec.nodeName, nodeSelector, required node affinity), the
device its NAD selects is held by another pod, reserved by a team the pod is not of (its
namespace's teams, or in a namespace of no team its NAD's: rules/teams.py), or not a free NIC
(the node's own, the CNI's, enslaved, missing...). One such node is enough: the scheduler does
not know about NICs and may pick it. The message names the node, the device and who holds it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from inventory.rules import multus, nad
from inventory.rules.admission.fleet import DeviceClass, add_unread, check_alike
from inventory.rules.admission.review import AdmissionRequest, Cause, Decision
from inventory.rules.nad import render
from inventory.rules.nad.devices import device_findings, where
from inventory.rules.nad.fleet import FleetView
from inventory.rules.nad.names import normalize_mac
from inventory.rules.states import OwnershipState
from inventory.rules.teams import namespace_teams, pod_teams

NADS = "k8s.cni.cncf.io/network-attachment-definitions"
PODS = "/pods"
NETWORKS_FIELD = f"metadata.annotations[{multus.NETWORKS_ANNOTATION}]"
_FIELD_PATHS = {"name": "metadata.name", "namespace": "metadata.namespace"}
# Device findings that only restate a passing state (in a pod: the netdev is in the pod, not
# gone; unknown: the agent is silent).
_PASSING_CODES = frozenset({"DEVICE_NOT_FREE", "NO_NETDEV"})
# How many nodes a message names before it says "and N more".
NAMED_NODES = 3


# --- objects ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NadObject:
    namespace: str
    name: str
    config: str
    annotations: Mapping[str, str]
    problem: str = ""  # why the object cannot be read ("" when it can)


@dataclass(frozen=True, slots=True)
class DeviceSelector:
    """The host-device selector that wins (device > hwaddr > kernelpath > pciBusID),
    normalised the way the inventory stores it (MAC lower case, PCI address lower case)."""

    selector: str
    value: str


def nad_object(obj: Any, *, namespace: str, name: str = "") -> NadObject:
    metadata = obj.get("metadata") if isinstance(obj, Mapping) else None
    metadata = metadata if isinstance(metadata, Mapping) else {}
    obj_name = metadata.get("name") if isinstance(metadata.get("name"), str) else ""
    annotations = metadata.get("annotations") or {}
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    problem = ""
    if not isinstance(obj, Mapping):
        problem = "the object is not a JSON object"
    elif not isinstance(obj.get("metadata"), Mapping):
        problem = "metadata is not an object"
    elif not isinstance(annotations, Mapping) or not all(
        isinstance(v, str) for v in annotations.values()
    ):
        problem = "metadata.annotations is not a map of strings"
    elif spec is not None and not isinstance(spec, Mapping):
        problem = "spec is not an object"
    config = (spec or {}).get("config", "") if isinstance(spec, Mapping) else ""
    if not problem and not isinstance(config, str):
        problem = "spec.config is not a string"
    return NadObject(
        namespace=namespace or str(metadata.get("namespace") or ""),
        name=obj_name or name,
        config=config if isinstance(config, str) else "",
        annotations=dict(annotations) if isinstance(annotations, Mapping) else {},
        problem=problem,
    )


def nad_selector(
    config: str, annotations: Mapping[str, str] | None = None
) -> DeviceSelector | None:
    """The device a host-device NAD selects, or None: not host-device, not JSON, no selector
    or a pciBusID that the device plugin's deviceID replaces (resourceName annotation)."""
    parsed, problems = nad.parse_config_json(config or "")
    if problems or not isinstance(parsed, dict):
        return None
    entry: Any = parsed
    if "type" not in parsed and isinstance(parsed.get("plugins"), list):
        entry = next(
            (
                p
                for p in parsed["plugins"]
                if isinstance(p, dict) and p.get("type") == "host-device"
            ),
            None,
        )
    if not isinstance(entry, dict) or entry.get("type") != "host-device":
        return None
    for selector in nad.SELECTORS:
        value = entry.get(selector)
        if isinstance(value, str) and value:
            if selector == "hwaddr":
                value = normalize_mac(value) or value.lower()
            elif selector == "pciBusID":
                if (annotations or {}).get(render.RESOURCE_NAME_ANNOTATION):
                    return None
                value = value.lower()
            return DeviceSelector(selector, value)
    return None


def nad_nodes(annotations: Mapping[str, str]) -> frozenset[str] | None:
    """The nodes a NICPortal-built NAD was made for (nicportal.io/nodes), None when it does not
    say: the linter then checks every node."""
    text = str(annotations.get(render.NODES_ANNOTATION) or "")
    names = frozenset(n.strip() for n in text.split(",") if n.strip())
    return names or None


def is_host_device(config: str) -> bool:
    parsed, problems = nad.parse_config_json(config or "")
    if problems or not isinstance(parsed, dict):
        return False
    if parsed.get("type") == "host-device":
        return True
    plugins = parsed.get("plugins") if "type" not in parsed else None
    return isinstance(plugins, list) and any(
        isinstance(p, dict) and p.get("type") == "host-device" for p in plugins
    )


def device_matches(selector: DeviceSelector, device: nad.DeviceFacts) -> bool:
    if selector.selector == "device":
        return device.name == selector.value
    if selector.selector == "hwaddr":
        return normalize_mac(device.mac) == selector.value
    if selector.selector == "pciBusID":
        return device.pci_address.lower() == selector.value
    return False  # kernelpath: the agent does not report sysfs device paths


# --- NADs ------------------------------------------------------------------------------------


def decide_nad(
    request: AdmissionRequest,
    new: NadObject,
    *,
    old: NadObject | None = None,
    devices_by_node: Mapping[str, Sequence[nad.DeviceFacts]] | None,
    plugins_by_node: Mapping[str, nad.PluginFacts],
    multus_version: str,
    notes: Sequence[str] = (),
    fleet: FleetView | None = None,
) -> Decision:
    """`devices_by_node`: every node the NAD can land on with its devices matching the NAD's
    selector (None: no inventory to check against). Or, for a NAD that may land on every node,
    `fleet`: the devices its selector picks there, grouped (`devices_by_node` then holds each
    group's first members: fleet.inventory). Raises ClassMismatch when a class turns out not to
    be one."""
    summary = f"NAD {new.namespace}/{new.name}"
    if new.problem:
        return Decision(
            allowed=True,
            summary=summary,
            warnings=(f"NICPortal could not check {summary}: {new.problem}.",),
            judged=False,
        )
    findings = _lint(new, devices_by_node, plugins_by_node, multus_version, fleet)
    old_errors: set[tuple[str, str]] = set()
    if request.operation == "UPDATE" and old is not None and not old.problem:
        old_fleet = fleet.fresh() if fleet is not None else None
        old_errors = {
            (f.code, f.field)
            for f in _lint(old, devices_by_node, plugins_by_node, multus_version, old_fleet)
            if f.severity == nad.ERROR
        }
    unread = _Unread()
    # Devices whose state is a moment, not a property: in a pod now, or not known right now.
    passing = {
        where(d)
        for devices in (devices_by_node or {}).values()
        for d in devices
        if d.state in (OwnershipState.UNKNOWN, OwnershipState.POD)
    }
    causes: list[Cause] = []
    warnings: list[str] = list(notes)
    for finding in findings:
        more = fleet.weights.get(id(finding), 0) if fleet is not None else 0
        if finding.severity == nad.ERROR:
            if (finding.code, finding.field) in old_errors:
                warnings.append(_warning(finding, "already in the old object: "))
                unread.warnings[f"NICPortal {finding.code}"] += more
            elif finding.code == "DEVICE_IN_POD" or (
                finding.code in _PASSING_CODES and _about(finding, passing)
            ):
                warnings.append(_warning(finding))
                unread.warnings[f"NICPortal {finding.code}"] += more
            else:
                unread.causes[finding.code] += more
                causes.append(
                    Cause(
                        finding.code,
                        _FIELD_PATHS.get(finding.field, "spec.config"),
                        finding.message,
                        finding.fix,
                    )
                )
        elif finding.severity == nad.WARNING:
            warnings.append(_warning(finding))
            unread.warnings[f"NICPortal {finding.code}"] += more
    return Decision(
        allowed=not causes,
        summary=summary,
        causes=tuple(_grouped(causes, unread.causes)),
        warnings=tuple(_grouped_warnings(warnings, unread.warnings)),
        code=422,
        reason="Invalid",
        judged=is_host_device(new.config) or bool(causes),
    )


def _lint(
    obj: NadObject,
    devices_by_node: Mapping[str, Sequence[nad.DeviceFacts]] | None,
    plugins_by_node: Mapping[str, nad.PluginFacts],
    multus_version: str,
    fleet: FleetView | None = None,
) -> list[nad.Finding]:
    return nad.lint(
        namespace=obj.namespace,
        name=obj.name,
        config=obj.config,
        annotations=obj.annotations,
        devices_by_node=devices_by_node,
        plugins_by_node=plugins_by_node,
        multus_version=multus_version,
        fleet=fleet,
    )


def _about(finding: nad.Finding, labels: set[str]) -> bool:
    return any(finding.message.startswith(f"{label} is ") for label in labels)


def _warning(finding: nad.Finding, prefix: str = "") -> str:
    return f"NICPortal {finding.code}: {prefix}{finding.message}" + (
        f" Fix: {finding.fix}" if finding.fix else ""
    )


# --- pods ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Attachment:
    """One entry of the pod's networks annotation with what NICPortal knows of its NAD."""

    selection: multus.NetworkSelection
    known: bool  # the NAD is in NICPortal's inventory
    host_device: bool
    selector: DeviceSelector | None  # None: not host-device, or a device plugin chooses
    nad_team: str = ""  # the team NICPortal applied the NAD for ("" for one found in the cluster)


def decide_pod(
    *,
    namespace: str,
    pod: str,
    attachments: Sequence[Attachment],
    candidates: Sequence[str],
    unknown_nodes: Sequence[str],
    devices: Mapping[str, Sequence[nad.DeviceFacts]],
    team_namespaces: Mapping[str, Iterable[str]],
    notes: Sequence[str] = (),
    classes: Sequence[DeviceClass] | None = None,
) -> Decision:
    """`candidates`: the known nodes the pod may run on, in node-name order; `unknown_nodes`:
    nodes it is pinned to that NICPortal does not know; `devices`: per candidate node, the
    devices matching any of the attachments' selectors. Or, for a fleet-wide pod, `classes`:
    the candidates' devices matching the one selector of its attachments, grouped
    (rules/admission/fleet.py; `devices` is then unused). Raises ClassMismatch when a class
    turns out not to be one."""
    summary = f"pod {namespace}/{pod}"
    warnings = list(notes)
    causes: list[Cause] = []
    unread = _Unread()
    ns_teams = namespace_teams(namespace, team_namespaces)
    judged = False
    for attachment in attachments:
        key = attachment.selection.nad_key
        if not attachment.known:
            warnings.append(
                f"NICPortal: NAD {key} is not in its inventory (yet): its device was not checked."
            )
            continue
        if not attachment.host_device:
            continue
        judged = True
        selector = attachment.selector
        if selector is None:
            continue  # a device plugin (resourceName) picks the device: nothing to check here
        if selector.selector == "kernelpath":
            warnings.append(
                f"NICPortal: NAD {key} selects by kernelpath, which the inventory does not "
                "record: its device was not checked."
            )
            continue
        if unknown_nodes:
            warnings.append(
                f"NICPortal: {_names(unknown_nodes)} not in its inventory: NAD {key} was not "
                "checked there."
            )
        if not candidates:
            if not unknown_nodes:
                warnings.append(
                    f"NICPortal: no node in its inventory matches the pod's placement: NAD {key} "
                    "was not checked."
                )
            continue
        # Whose the pod is, by the rule the ownership verdicts use for breaches (rules/teams.py):
        # its namespace's teams, or, in a namespace of no team, its own NAD's team.
        teams = pod_teams(
            namespace=namespace, namespace_teams=ns_teams, nad=key, nad_team=attachment.nad_team
        )
        if classes is None:
            causes += _pod_causes(
                key, selector, candidates, devices, teams, namespace, warnings, ns_teams=ns_teams
            )
        else:
            causes += _pod_class_causes(
                key,
                selector,
                candidates,
                classes,
                teams,
                namespace,
                warnings,
                ns_teams=ns_teams,
                unread=unread,
            )
    return Decision(
        allowed=not causes,
        summary=summary,
        causes=tuple(_grouped(causes, unread.causes)),
        warnings=tuple(_grouped_warnings(warnings, unread.warnings)),
        code=403,
        reason="Forbidden",
        judged=judged,
    )


def _pod_causes(
    key: str,
    selector: DeviceSelector,
    candidates: Sequence[str],
    devices: Mapping[str, Sequence[nad.DeviceFacts]],
    teams: frozenset[str],
    namespace: str,
    warnings: list[str],
    *,
    ns_teams: frozenset[str],
) -> list[Cause]:
    causes: list[Cause] = []
    absent = []
    for node in candidates:
        device = next((d for d in devices.get(node, ()) if device_matches(selector, d)), None)
        if device is None:
            absent.append(node)
            continue
        found, said = _device_outcome(key, selector, device, teams, namespace, ns_teams=ns_teams)
        causes += found
        warnings += said
    return causes + _absent_outcome(key, selector, absent, candidates, warnings)


def _pod_class_causes(
    key: str,
    selector: DeviceSelector,
    candidates: Sequence[str],
    classes: Sequence[DeviceClass],
    teams: frozenset[str],
    namespace: str,
    warnings: list[str],
    *,
    ns_teams: frozenset[str],
    unread: _Unread,
) -> list[Cause]:
    """_pod_causes on device classes: the outcome of each class's read members, in node order,
    and its other members counted (rules/admission/fleet.py)."""
    outcomes = []
    matched: set[str] = set()
    first = key not in unread.keys  # the same NAD twice repeats the same warnings (deduplicated)
    unread.keys.add(key)
    for group in classes:
        read = [
            (d.node, *_device_outcome(key, selector, d, teams, namespace, ns_teams=ns_teams))
            for d in group.devices
        ]
        cause_codes, warning_codes = check_alike(
            (tuple(c.code for c in found), tuple(w.split(":", 1)[0] for w in said))
            for _node, found, said in read
        )
        add_unread(unread.causes, cause_codes, group.unread)
        if first:
            add_unread(unread.warnings, warning_codes, group.unread)
        outcomes += read
        matched.update(group.nodes)
    causes: list[Cause] = []
    for _node, found, said in sorted(outcomes, key=lambda outcome: outcome[0]):
        causes += found
        warnings += said
    absent = [node for node in candidates if node not in matched]
    return causes + _absent_outcome(key, selector, absent, candidates, warnings)


def _device_outcome(
    key: str,
    selector: DeviceSelector,
    device: nad.DeviceFacts,
    teams: frozenset[str],
    namespace: str,
    *,
    ns_teams: frozenset[str],
) -> tuple[list[Cause], list[str]]:
    """The causes and warnings of the device `selector` picks on one node."""
    causes: list[Cause] = []
    warnings: list[str] = []
    reserved_by = device.reserved_team or (
        device.holder.removeprefix("team ") if device.state == OwnershipState.RESERVED else ""
    )
    own_team = reserved_by if reserved_by in teams else ""
    for finding in device_findings(device, selector=selector.selector, team=own_team):
        if finding.code == "NO_NETDEV" and device.state == OwnershipState.POD:
            continue  # its netdev is in that pod, which DEVICE_IN_POD already says
        text = f"NAD {key}: {finding.message}"
        if finding.code == "DEVICE_RESERVED":
            if ns_teams:
                belongs = f"namespace {namespace} belongs to team {', '.join(sorted(teams))}"
            elif teams:
                belongs = (
                    f"namespace {namespace} belongs to no team in NICPortal and NAD {key} "
                    f"was applied for team {', '.join(sorted(teams))}"
                )
            else:
                belongs = f"namespace {namespace} belongs to no team in NICPortal"
            text = f"{text} The pod's {belongs}, not to team {reserved_by}."
            fix = (
                f"Ask team {reserved_by} to release it, pin the pod to a node where the "
                f"device is free, or have staff add namespace {namespace} to team "
                f"{reserved_by} (manage.py createteam {reserved_by} --namespace {namespace})."
            )
        else:
            fix = finding.fix or "Pin the pod to a node where the device is free."
        if device.state == OwnershipState.UNKNOWN:
            warnings.append(f"NICPortal {finding.code}: {text}")
        elif finding.severity == nad.ERROR:
            causes.append(Cause(finding.code, NETWORKS_FIELD, text, fix))
        elif finding.severity == nad.WARNING:
            warnings.append(f"NICPortal {finding.code}: {text}")
    return causes, warnings


def _absent_outcome(
    key: str,
    selector: DeviceSelector,
    absent: Sequence[str],
    candidates: Sequence[str],
    warnings: list[str],
) -> list[Cause]:
    wanted = f'"{selector.selector}": "{selector.value}"'
    if absent and len(absent) == len(candidates):
        return [
            Cause(
                "DEVICE_MISSING",
                NETWORKS_FIELD,
                f"NAD {key} selects {wanted}, which no node the pod may run on has "
                f"({_names(absent)}): host-device would fail with `failed to find host device: "
                "Link not found`.",
                "Pin the pod to a node that has the device, or fix the NAD.",
            )
        ]
    if absent:
        warnings.append(
            f"NICPortal DEVICE_ABSENT_ON_NODES: NAD {key} selects {wanted}, absent on "
            f"{_names(absent)}: the pod fails there if scheduled there."
        )
    return []


@dataclass
class _Unread:
    """What the unread members of device classes add to the counts of a decision's codes."""

    causes: Counter[str] = field(default_factory=Counter)
    warnings: Counter[str] = field(default_factory=Counter)
    keys: set[str] = field(default_factory=set)


def _names(nodes: Sequence[str]) -> str:
    nodes = sorted(nodes)
    shown = ", ".join(nodes[:NAMED_NODES])
    more = len(nodes) - NAMED_NODES
    return (
        f"node {shown}"
        if len(nodes) == 1
        else f"nodes {shown}" + (f" and {more} more" if more > 0 else "")
    )


def _grouped(causes: Sequence[Cause], unread: Counter[str] | None = None) -> list[Cause]:
    """At most NAMED_NODES causes per code (a fleet-wide NAD on eth0 has one per node): the
    last one kept says how many more there are (`unread`: more of each code, not listed)."""
    counts = Counter(c.code for c in causes) + (unread or Counter())
    taken: Counter[str] = Counter()
    result = []
    for cause in causes:
        taken[cause.code] += 1
        if taken[cause.code] < NAMED_NODES or counts[cause.code] == NAMED_NODES:
            result.append(cause)
        elif taken[cause.code] == NAMED_NODES:
            more = counts[cause.code] - NAMED_NODES
            result.append(replace(cause, message=f"{cause.message} (and {more} more like it)"))
    return result


def _grouped_warnings(warnings: Sequence[str], unread: Counter[str] | None = None) -> list[str]:
    """At most NAMED_NODES warnings per code, then "and N more" (`unread`: more distinct
    warnings of each code, not listed)."""
    unique = list(dict.fromkeys(warnings))
    by_code: dict[str, list[str]] = {}
    for text in unique:
        by_code.setdefault(text.split(":", 1)[0], []).append(text)
    result = []
    for code, texts in by_code.items():
        result += texts[:NAMED_NODES]
        total = len(texts) + (unread or Counter())[code]
        if total > NAMED_NODES:
            result.append(f"{code}: and {total - NAMED_NODES} more.")
    return result
