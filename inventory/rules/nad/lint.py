"""The NAD linter: a NAD found in the cluster (or pasted) checked against the same rules the
builder follows, and against the inventory of the nodes it can land on. Codes are the builder's
wherever the meaning is the same."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from inventory.rules import bounded_json
from inventory.rules.nad import render
from inventory.rules.nad.checks import (
    SELECTORS,
    eexist_finding,
    explicit_cni_version_findings,
    name_findings,
    pod_name_clauses,
)
from inventory.rules.nad.devices import device_findings, where
from inventory.rules.nad.facts import (
    ERROR,
    PRIMARY_POD_INTERFACE,
    WARNING,
    DeviceFacts,
    Finding,
    PluginFacts,
    error,
    info,
    warning,
)
from inventory.rules.nad.fleet import FleetView
from inventory.rules.nad.ipam import ipam_request_from_config, validate_ipam
from inventory.rules.nad.names import (
    ifname_problem,
    is_full_bdf,
    is_short_bdf,
    kernelpath_device_dir,
    kernelpath_problem,
    normalize_mac,
)
from inventory.rules.nad.versions import plugin_has_eexist_bug
from inventory.rules.states import OwnershipState

NO_SELECTOR_MESSAGE = 'specify either "device", "hwaddr", "kernelpath" or "pciBusID"'
# A real CNI config nests 5 or 6 levels (conflist, plugins, ipam, routes). Anything far deeper is
# a mistake or an attack, and Python's json gives up near 1,000 levels with RecursionError.
CONFIG_MAX_DEPTH = 32


def config_too_deep() -> Finding:
    return error(
        "CONFIG_TOO_DEEP",
        "config",
        f"spec.config is nested deeper than {CONFIG_MAX_DEPTH} levels: no CNI config is, and "
        "NICPortal does not read further.",
        "Replace spec.config with a plain host-device config (the builder writes one).",
    )


def lint_failed(exc: BaseException) -> Finding:
    """The one finding of a NAD the linter itself could not read (the caller goes on with the
    other NADs)."""
    return error(
        "LINT_FAILED",
        "config",
        f"NICPortal could not lint this NAD ({type(exc).__name__}); its other findings are "
        "unknown.",
        "Check spec.config by hand, and report the NAD to NICPortal's maintainers.",
    )


def parse_config_json(text: str) -> tuple[Any, list[Finding]]:
    """json.loads with a message that names the usual copy-paste mistakes: a `#` or `//`
    comment (JSON has none), a trailing comma, single quotes. A config nested deeper than
    CONFIG_MAX_DEPTH is one finding, CONFIG_TOO_DEEP."""
    try:
        parsed = json.loads(text)
    except RecursionError:
        return None, [config_too_deep()]
    except json.JSONDecodeError as exc:
        rest = text[exc.pos :]
        pos = exc.pos + len(rest) - len(rest.lstrip())
        rest = rest.lstrip()
        line = text.count("\n", 0, pos) + 1
        column = pos - (text.rfind("\n", 0, pos) + 1) + 1
        before = text[:pos].rstrip()
        if rest.startswith(("#", "//")):
            comment = rest.splitlines()[0].strip()
            what = f"it contains a comment (`{comment[:40]}`), and JSON has no comments"
            fix = "Delete the comment; put notes in a metadata annotation instead."
        elif before.endswith(",") and rest[:1] in ("}", "]"):
            what = f"it has a trailing comma before `{rest[0]}`, which JSON does not allow"
            fix = "Delete the comma after the last item."
        elif rest.startswith("'"):
            what = "it uses single quotes; JSON strings need double quotes"
            fix = "Replace the single quotes with double quotes."
        else:
            line, column = exc.lineno, exc.colno
            what = exc.msg.lower()
            fix = "Fix the JSON (a linter such as `jq .` shows the exact spot)."
        return None, [
            error(
                "CONFIG_INVALID_JSON",
                "config",
                f"spec.config is not valid JSON: {what} (line {line}, column {column}).",
                fix,
            )
        ]
    except ValueError as exc:  # what the decoder refuses beyond syntax: 5,000-digit integers
        return None, [
            error(
                "CONFIG_INVALID_JSON",
                "config",
                f"spec.config cannot be read: {exc}.",
                "Fix the JSON (a linter such as `jq .` shows the exact spot).",
            )
        ]
    try:
        bounded_json.check(parsed, max_depth=CONFIG_MAX_DEPTH, forbidden=None)
    except bounded_json.JsonRefused:
        return None, [config_too_deep()]
    return parsed, []


def _matches(selector: str, value: str, device: DeviceFacts) -> bool:
    if selector == "device":
        return device.name == value
    if selector == "hwaddr":
        return bool(value) and normalize_mac(device.mac) == value
    if selector == "kernelpath":
        return bool(device.kernelpath) and kernelpath_device_dir(device.kernelpath) == value
    return device.pci_address.lower() == value.lower()


def _selector_syntax(selector: str, value: str) -> list[Finding]:
    where = f'"{selector}": "{value}"'
    if selector == "device":
        problem = ifname_problem(value)
        if problem:
            return [
                error(
                    "DEVICE_NAME_INVALID",
                    "selector",
                    f"{where} is not a valid interface name: {problem}.",
                    "Name the host interface as `ip link` shows it.",
                )
            ]
    elif selector == "hwaddr":
        if normalize_mac(value) is None:
            return [
                error(
                    "HWADDR_INVALID",
                    "selector",
                    f"{where} is not a MAC address: host-device fails with `failed to parse "
                    "MAC address`.",
                    "Write it as 00:11:22:33:44:55.",
                )
            ]
    elif selector == "kernelpath":
        problem = kernelpath_problem(value)
        if problem:
            code, why = problem
            return [
                error(
                    code,
                    "selector",
                    f"{where} cannot work: {why}; host-device requires an absolute path that "
                    "begins with /sys/devices/.",
                    "Use the device directory, e.g. /sys/devices/pci0000:00/0000:00:19.0, or "
                    "select by pciBusID.",
                )
            ]
        if kernelpath_device_dir(value) != value.rstrip("/"):
            return [
                error(
                    "KERNELPATH_NOT_DEVICE_DIR",
                    "selector",
                    f"{where} points at a network interface's own directory: host-device lists "
                    f"<kernelpath>/net, which does not exist there.",
                    f'Use the device directory "{kernelpath_device_dir(value)}".',
                )
            ]
    elif selector == "pciBusID":
        if is_short_bdf(value):
            return [
                error(
                    "PCI_ADDRESS_SHORT",
                    "selector",
                    f"{where} has no PCI domain: host-device fails with `lstat "
                    f"/sys/bus/pci/devices/{value}: no such file or directory`.",
                    f'Use "0000:{value.lower()}".',
                )
            ]
        if not is_full_bdf(value):
            return [
                error(
                    "PCI_ADDRESS_INVALID",
                    "selector",
                    f"{where} is not a PCI address (dddd:bb:dd.f).",
                    'Write the full address, e.g. "0000:3b:00.0".',
                )
            ]
    return []


def lint(
    *,
    namespace: str,
    name: str,
    config: str,
    annotations: Mapping[str, str] | None = None,
    devices_by_node: Mapping[str, Sequence[DeviceFacts]] | None = None,
    plugins_by_node: Mapping[str, PluginFacts] | None = None,
    multus_version: str = "",
    team: str = "",
    fleet: FleetView | None = None,
) -> list[Finding]:
    """Findings for a NAD as it is. `devices_by_node` is the inventory of every node the NAD
    could land on (restricted to the nodes in the nicportal.io/nodes annotation when present);
    None skips every inventory check. `team` is the team NICPortal applied the NAD for ("" for
    a NAD found in the cluster or pasted): its own reserved NICs are no finding.

    A finding's fix never points at something another finding says is unusable: a device that
    is the node's primary NIC, reserved, in another pod… is not offered by MAC or PCI address,
    and pods are not pinned to the nodes where it is so.

    `fleet` (a NAD that may land on every node, rules/nad/fleet.py): `devices_by_node` holds
    only the first members of each device class, the view answers for the whole fleet."""
    findings = name_findings(namespace, name)
    annotations = annotations or {}
    resource_name = str(annotations.get(render.RESOURCE_NAME_ANNOTATION) or "")

    if not (config or "").strip():
        findings.append(config_empty(name))
        return findings
    parsed, problems = parse_config_json(config)
    if problems:
        return findings + problems
    if not isinstance(parsed, dict):
        findings.append(
            error(
                "CONFIG_NOT_OBJECT",
                "config",
                f"spec.config is a JSON {type(parsed).__name__}, not an object.",
                'Write it as {"cniVersion": ..., "name": ..., "type": "host-device", ...}.',
            )
        )
        return findings

    if "type" not in parsed:
        plugins = parsed.get("plugins")
        if not isinstance(plugins, list):
            findings.append(
                error(
                    "CONFIG_NO_TYPE",
                    "config",
                    'spec.config has neither "type" nor "plugins": Multus reads a config '
                    "without a type as a conflist and finds no plugins in it (multus-cni #251).",
                    'Add "type": "host-device".',
                )
            )
            return findings
        ours = [p for p in plugins if isinstance(p, dict) and p.get("type") == "host-device"]
        if not ours:
            return findings + [_not_ours(plugins)]
        if len(ours) > 1:
            findings.append(
                error(
                    "MULTIPLE_HOST_DEVICES",
                    "config",
                    f"The plugins list holds {len(ours)} host-device entries: the pod gets one "
                    "interface, not one per device (multus-cni #637).",
                    "Make one NAD per device and list them all in the pod's networks annotation.",
                )
            )
        entry: dict[str, Any] = ours[0]
    elif parsed["type"] != "host-device":
        return findings + [_not_ours([parsed])]
    else:
        entry = parsed

    config_name = parsed.get("name")
    if config_name != name:
        findings.append(
            warning(
                "CONFIG_NAME_MISMATCH",
                "name",
                f'The config\'s "name" is {json.dumps(config_name)}, not the NAD name "{name}": '
                "IPAM plugins (host-local, whereabouts) key their allocations by it and pod "
                "network-status shows it.",
                f'Set "name": "{name}".',
            )
        )

    nodes_annotation = str(annotations.get(render.NODES_ANNOTATION) or "")
    inventory: dict[str, Sequence[DeviceFacts]] | None = None
    if devices_by_node is not None:
        inventory = dict(devices_by_node)
        if nodes_annotation:
            wanted = {n.strip() for n in nodes_annotation.split(",") if n.strip()}
            inventory = {n: d for n, d in inventory.items() if n in wanted}
    plugins = dict(plugins_by_node or {})
    if inventory is not None:
        plugins = {n: p for n, p in plugins.items() if n in inventory}

    version = parsed.get("cniVersion")
    if not version:
        findings.append(
            warning(
                "CNI_VERSION_MISSING",
                "cni_version",
                "The config has no cniVersion: plugins read it as 0.1.0 and answer in that "
                "old result format.",
                'Add "cniVersion" (NICPortal\'s builder picks the right one).',
            )
        )
    else:
        findings += (
            fleet.versions(str(version))
            if fleet is not None
            else explicit_cni_version_findings(str(version), plugins, multus_version)
        )

    findings += _capabilities(parsed, entry)

    present = [s for s in SELECTORS if entry.get(s) not in (None, "")]
    for selector in present:
        if not isinstance(entry[selector], str):
            findings.append(
                error(
                    "SELECTOR_INVALID",
                    "selector",
                    f'"{selector}" must be a string, not {json.dumps(entry[selector])}: '
                    "host-device fails to load the config.",
                    f'Quote it: "{selector}": "{entry[selector]}".',
                )
            )
            return findings
    winner = present[0] if present else None
    value = str(entry[winner]) if winner else ""
    if winner is None and not resource_name:
        findings.append(
            error(
                "NO_SELECTOR",
                "selector",
                f"The config selects no device: host-device fails with `{NO_SELECTOR_MESSAGE}`.",
                'Add exactly one of "device", "hwaddr", "kernelpath" or "pciBusID" (or a '
                "k8s.v1.cni.cncf.io/resourceName annotation for a device plugin).",
            )
        )
    if len(present) > 1:
        findings.append(
            warning(
                "SELECTOR_AMBIGUOUS",
                "selector",
                f"The config sets {', '.join(present)}: host-device silently uses only "
                f'"{winner}" (it tries device, then hwaddr, then kernelpath, then pciBusID).',
                f'Keep only "{winner}", or only the one you meant.',
            )
        )
    if winner and resource_name:
        if winner == "pciBusID":
            message = (
                f"The config sets pciBusID and the NAD has resourceName {resource_name}: "
                "host-device replaces pciBusID with the device plugin's deviceID."
            )
        else:
            message = (
                f"The config sets {winner} and the NAD has resourceName {resource_name}: "
                f"host-device uses {winner} and ignores the device the device plugin allocated."
            )
        findings.append(
            warning(
                "SELECTOR_WITH_RESOURCE_NAME",
                "selector",
                message,
                "Remove the selector and let the device plugin choose, or drop resourceName.",
            )
        )
    if winner:
        syntax = _selector_syntax(winner, value)
        findings += syntax
        if syntax:
            winner = None  # nothing on a node can match an impossible value
        elif winner == "hwaddr":
            value = normalize_mac(value) or value
        elif winner == "kernelpath":
            value = kernelpath_device_dir(value)

    matched: dict[str, DeviceFacts] = {}
    matched_count = 0  # the nodes that have the device (of the whole fleet with `fleet`)
    blocked: set[str] = set()  # nodes where the matched device cannot be handed to a pod
    if winner and inventory is not None:
        for node, devices in sorted(inventory.items()):
            for device in devices:
                if _matches(winner, value, device):
                    matched[node] = device
                    break
        device_list: list[Finding] = []
        for node, device in matched.items():
            found = _device_findings(device, winner, f"{namespace}/{name}", team)
            if any(f.severity == ERROR for f in found):
                blocked.add(node)
            if fleet is not None:
                fleet.count("devices", node, found)
            device_list += found
        if fleet is None:
            findings += _placement(winner, value, matched, inventory, blocked)
            matched_count = len(matched)
        else:
            everywhere = fleet.spread(matched)
            findings += _placement(winner, value, everywhere, fleet.nodes, fleet.spread(blocked))
            matched_count = len(everywhere)
        findings += device_list

    if winner == "device":
        pod_names = pod_name_clauses("", (PRIMARY_POD_INTERFACE,))
        pod_names.pop("", None)
        nodes = sorted(matched) if inventory is not None else sorted(plugins) or [""]
        for node in nodes:
            plugin = plugins.get(node)
            bug = plugin_has_eexist_bug(plugin)
            risk = eexist_finding(
                value,
                node=node,
                plugin=plugin,
                pod_names=pod_names,
                device=matched.get(node),
                usable=node not in blocked,
                severity=ERROR if bug else WARNING,
            )
            if fleet is not None:
                fleet.count("eexist", node, [risk] if risk else [])
            if risk:
                findings.append(risk)

    ipam_request, ipam_findings = ipam_request_from_config(entry.get("ipam"))
    findings += ipam_findings
    if ipam_request is not None and ipam_request.type != "none":
        spread = matched_count if winner == "device" and matched else 1
        findings += validate_ipam(ipam_request, node_count=spread)
    return findings


def _device_findings(device: DeviceFacts, selector: str, nad: str, team: str) -> list[Finding]:
    """What the inventory says of the device this NAD selects on one node."""
    label = where(device)
    if device.state == OwnershipState.POD:
        # A moment, not a property of the NAD: its own pods holding the device is the NAD at
        # work; another NAD's pod holding it makes this NAD's pods fail there until it is gone.
        # (No NO_NETDEV either: a PCI NIC in a pod leaves its function on the host netdev-less.)
        held = f" ({device.holder})" if device.holder else ""
        if device.pod_nad == nad:
            return [
                info(
                    "DEVICE_IN_USE",
                    "devices",
                    f"{label} is in a pod through this NAD{held}: the NAD at work. A second pod "
                    "using it on that node waits until the device is back on the host.",
                )
            ]
        through = f" through NAD {device.pod_nad}" if device.pod_nad else ""
        return [
            warning(
                "DEVICE_IN_POD",
                "devices",
                f"{label} is in a pod{through}{held}: pods using this NAD on that node fail "
                "with `failed to find host device: Link not found` until that pod is gone.",
                "Wait until that pod is gone, or point this NAD at a free interface.",
            )
        ]
    found = device_findings(device, selector=selector, team=team, strict_reservations=False)
    reserved_team = device.reserved_team or (
        device.holder.removeprefix("team ") if device.state == OwnershipState.RESERVED else ""
    )
    if team and reserved_team == team:
        found.append(
            info(
                "DEVICE_RESERVED_FOR_TEAM",
                "devices",
                f"{label} is reserved by team {team}, which this NAD was applied for: its pods "
                "may use it.",
            )
        )
    return found


def config_empty(name: str) -> Finding:
    return warning(
        "CONFIG_EMPTY",
        "config",
        "spec.config is empty: Multus uses the CNI config file on disk with this name "
        f'("{name}") on whichever node the pod lands, which cannot be verified from here.',
        "Put the config in spec.config (the builder writes one).",
    )


def _not_ours(plugins: list[Any]) -> Finding:
    types = sorted({str(p.get("type")) for p in plugins if isinstance(p, dict)}) or ["none"]
    return info(
        "NOT_HOST_DEVICE",
        "config",
        f"This NAD uses {', '.join(types)}, not host-device: NICPortal does not judge it "
        "beyond its name and JSON.",
    )


def _capabilities(parsed: dict[str, Any], entry: dict[str, Any]) -> list[Finding]:
    declared = set()
    for conf in (parsed, entry):
        caps = conf.get("capabilities")
        if isinstance(caps, dict):
            declared |= {k for k in ("mac", "ips") if caps.get(k)}
        runtime = conf.get("runtimeConfig")
        if isinstance(runtime, dict):
            declared |= {k for k in ("mac", "ips") if k in runtime}
    if not declared:
        return []
    return [
        warning(
            "CAPABILITIES_IGNORED",
            "config",
            f"The config declares {' and '.join(sorted(declared))} "
            "(capabilities/runtimeConfig), but host-device honours neither: it keeps the NIC's "
            "own MAC, and addresses come only from its ipam.",
            "Remove them; set addresses through ipam (static, whereabouts).",
        )
    ]


def _placement(
    selector: str,
    value: str,
    matched: Collection[str],
    inventory: Collection[str],
    blocked: set[str],
) -> list[Finding]:
    """`matched`: the nodes where the device is; `inventory`: every node the NAD may land on;
    `blocked`: the nodes where the device may not go to a pod."""
    if not inventory:
        return []
    if not matched:
        return [
            error(
                "DEVICE_MISSING",
                "devices",
                f'No node has an interface matching "{selector}": "{value}": pods using this '
                "NAD fail with `failed to find host device: Link not found`.",
                "Point the NAD at an interface the inventory lists, or check that the device "
                "is not stranded in a dead pod.",
            )
        ]
    absent = sorted(set(inventory).difference(matched))
    if selector == "device" and absent:
        usable = sorted(set(matched) - blocked)
        return [
            warning(
                "DEVICE_ABSENT_ON_NODES",
                "devices",
                f'"{value}" does not exist on {", ".join(absent)}: pods scheduled there fail '
                "with `failed to find host device: Link not found`.",
                f"Pin the pods to {', '.join(usable)} (node affinity)."
                if usable
                else "Point the NAD at an interface that is free on the nodes where its pods run "
                "(the other findings say why it is not usable where it exists).",
            )
        ]
    return []
