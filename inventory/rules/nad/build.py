"""The NAD builder: a request for an interface on one or more nodes in, host-device NADs that
will work (or the reasons they would not) out.

Selector choice in `auto` mode, in this order:
1. `resource_name` set: no selector; the device plugin picks the device and Multus passes its
   PCI address as runtimeConfig.deviceID.
2. `device` (the interface name) when that name is safe on every target node (the node has a
   host-device of v1.5.0 or newer, or the name is not one the pod already has: eth0 from the
   primary CNI, the requested pod interface), no other node has an interface of that name, and
   no device is an SR-IOV VF (a VF's name changes when its VFs are re-created; its PCI address
   does not).
   One NAD then serves every target node. A NAD is namespaced, not bound to nodes: a pod using
   it on another node would take that node's interface of the same name, which may be another
   team's reserved NIC (a reservation breach).
3. Otherwise a node-specific selector per device: `pciBusID` for PCI functions (stable across
   renames and reboots) unless another node has a function at that address (identical
   servers), then `hwaddr` (a MAC names one NIC; veth and other links without a PCI address).
   `kernelpath` is never chosen automatically: it says nothing pciBusID does not. A chosen
   selector that still matches another node's interface is a `SELECTOR_MATCHES_OTHER_NODES`
   warning, as is an explicit selector that does.

Placement: a `device` NAD whose name is the same on all target nodes is one NAD, with a pod
snippet that pins pods to those nodes (nodeSelector for one, required node affinity for
several). Node-specific selectors need one NAD per node: with one target node the NAD keeps the
requested name, with several each is named `<name>-<node>` (see names.node_scoped_nad_name).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import yaml

from inventory.rules.nad import render
from inventory.rules.nad.checks import (
    SELECTORS,
    eexist_finding,
    explicit_cni_version_findings,
    multus_findings,
    name_findings,
    pod_interface_findings,
    pod_name_clauses,
)
from inventory.rules.nad.devices import device_findings, where
from inventory.rules.nad.facts import (
    ERROR,
    BuildResult,
    DeviceFacts,
    Finding,
    NadRequest,
    PluginFacts,
    RenderedNad,
    error,
    info,
    warning,
)
from inventory.rules.nad.ipam import ipam_config, validate_ipam
from inventory.rules.nad.names import (
    ifname_problem,
    is_full_bdf,
    is_resource_name,
    is_short_bdf,
    is_usable_mac,
    kernelpath_device_dir,
    kernelpath_problem,
    node_scoped_nad_name,
    normalize_mac,
)
from inventory.rules.nad.versions import (
    CNI_VERSIONS,
    SAFE_CNI_VERSION,
    eexist_explanation,
    multus_ceiling,
    plugin_has_eexist_bug,
    plugin_supported_versions,
    version_key,
)
from inventory.rules.states import OwnershipState


@dataclass(frozen=True, slots=True)
class _Choice:
    device: DeviceFacts
    selector: str | None  # None: a device plugin selects (resource_name)
    value: str


# --- the builder ---------------------------------------------------------------------------------


def build(request: NadRequest) -> BuildResult:
    """Validate a request and render its NAD(s). No I/O: every fact comes in the request."""
    findings: list[Finding] = []
    findings += name_findings(request.namespace, request.name)
    findings += multus_findings(request.multus_version)
    findings += pod_interface_findings(
        request.pod_interface, request.other_pod_interfaces, request.multus_version
    )
    if request.selector not in ("auto", *SELECTORS):
        findings.append(
            error(
                "SELECTOR_INVALID",
                "selector",
                f'Selector "{request.selector}" is not one host-device knows.',
                f"Use auto or one of {', '.join(SELECTORS)}.",
            )
        )
        return BuildResult((), "", tuple(findings))
    if request.resource_name and not is_resource_name(request.resource_name):
        findings.append(
            error(
                "RESOURCE_NAME_INVALID",
                "resource_name",
                f'"{request.resource_name}" is not a device-plugin resource name.',
                'Write it as <domain>/<resource>, e.g. "intel.com/sriov_netdevice".',
            )
        )

    devices = request.devices
    if not devices and not request.resource_name:
        findings.append(
            error(
                "NO_DEVICES",
                "devices",
                "No interface was chosen.",
                "Pick a free interface on each node where the pod may run.",
            )
        )
    seen: dict[str, DeviceFacts] = {}
    for device in devices:
        if device.node in seen:
            findings.append(
                error(
                    "MULTIPLE_DEVICES_PER_NODE",
                    "devices",
                    f"Two interfaces on node {device.node} ({seen[device.node].name} and "
                    f"{device.name}): one attachment moves one device, a list of host-devices "
                    "gives the pod a single interface (multus-cni #637).",
                    "Pick one interface per node; for two NICs in one pod build two NADs.",
                )
            )
        seen.setdefault(device.node, device)

    choices, selector_findings = _choose_selectors(request)
    findings += selector_findings
    for choice in choices:
        findings += device_findings(
            choice.device, selector=choice.selector or "pciBusID", team=request.team
        )

    cni_version, version_findings = _cni_version(request)
    findings += version_findings
    nodes = tuple(dict.fromkeys(d.node for d in devices))
    findings += validate_ipam(request.ipam, node_count=len(nodes))

    if any(f.severity == ERROR for f in findings):
        return BuildResult((), "", tuple(findings))
    nads = _render(request, choices, cni_version)
    if len(nads) == 1:
        snippet = nads[0].pod_snippet
    else:
        snippet = "---\n".join(
            f"# pods on {', '.join(nad.nodes)} use {nad.namespace}/{nad.name}\n{nad.pod_snippet}"
            for nad in nads
        )
    return BuildResult(nads, snippet, tuple(findings))


def _pod_names(request: NadRequest) -> dict[str, str]:
    return pod_name_clauses(request.pod_interface, request.other_pod_interfaces)


def _selector_value(device: DeviceFacts, selector: str) -> tuple[str, list[Finding]]:
    label = where(device)
    mac = normalize_mac(device.mac)
    alternatives = []
    if mac and is_usable_mac(mac):
        alternatives.append(f'"hwaddr": "{mac}"')
    if is_full_bdf(device.pci_address):
        alternatives.append(f'"pciBusID": "{device.pci_address.lower()}"')
    other = f"Use {' or '.join(alternatives)}, or auto." if alternatives else "Use auto."
    if selector == "device":
        problem = ifname_problem(device.name)
        if problem:
            return "", [
                error(
                    "DEVICE_NAME_INVALID",
                    "devices",
                    f'{label}: "{device.name}" is not a valid interface name: {problem}.',
                    other,
                )
            ]
        return device.name, []
    if selector == "hwaddr":
        if not device.mac:
            return "", [
                error(
                    "SELECTOR_VALUE_MISSING",
                    "selector",
                    f"{label} has no MAC address: hwaddr cannot select it.",
                    other,
                )
            ]
        if not mac or not is_usable_mac(mac):
            return "", [
                error(
                    "HWADDR_INVALID",
                    "selector",
                    f'{label}: "{device.mac}" is not a unicast MAC address host-device can match.',
                    other,
                )
            ]
        return mac, []
    if selector == "pciBusID":
        pci = device.pci_address
        if not pci:
            return "", [
                error(
                    "SELECTOR_VALUE_MISSING",
                    "selector",
                    f"{label} has no PCI address (a veth or other virtual link): pciBusID cannot "
                    "select it.",
                    other,
                )
            ]
        if is_short_bdf(pci):
            return "", [
                error(
                    "PCI_ADDRESS_SHORT",
                    "selector",
                    f'{label}: PCI address "{pci}" has no domain; host-device looks it up under '
                    "/sys/bus/pci/devices/, where every address is a full BDF "
                    "(dddd:bb:dd.f).",
                    f'Use "0000:{pci.lower()}".',
                )
            ]
        if not is_full_bdf(pci):
            return "", [
                error(
                    "PCI_ADDRESS_INVALID",
                    "selector",
                    f'{label}: "{pci}" is not a PCI address (dddd:bb:dd.f).',
                    other,
                )
            ]
        return pci.lower(), []
    # kernelpath
    path = device.kernelpath
    if not path:
        return "", [
            error(
                "SELECTOR_VALUE_MISSING",
                "selector",
                f"{label} has no sysfs device path (a virtual link): kernelpath cannot select it.",
                other,
            )
        ]
    problem = kernelpath_problem(path)
    if problem:
        code, why = problem
        return "", [
            error(
                code,
                "selector",
                f'{label}: kernelpath "{path}" cannot work: {why}.',
                other,
            )
        ]
    return kernelpath_device_dir(path), []


def _name_is_safe(device: DeviceFacts, pod_names: dict[str, str]) -> bool:
    return (
        device.has_netdev
        and device.state != OwnershipState.USERSPACE
        and not device.pf_pci_address
        and ifname_problem(device.name) is None
        and (device.name not in pod_names or plugin_has_eexist_bug(device.plugin) is False)
    )


def _choose_selectors(request: NadRequest) -> tuple[list[_Choice], list[Finding]]:
    devices = request.devices
    findings: list[Finding] = []
    if request.resource_name:
        if request.selector != "auto":
            findings.append(
                error(
                    "SELECTOR_WITH_RESOURCE_NAME",
                    "selector",
                    f"A {request.selector} selector and a resourceName together: host-device "
                    "prefers device, hwaddr and kernelpath over the deviceID the device plugin "
                    "gives, and replaces pciBusID with it, so one of the two is ignored.",
                    "Keep the resourceName and set the selector to auto (no selector).",
                )
            )
        findings.append(
            info(
                "SELECTOR_CHOSEN",
                "selector",
                f"No selector: the device plugin for {request.resource_name} picks a device and "
                "Multus passes its PCI address to host-device (runtimeConfig.deviceID).",
            )
        )
        return [_Choice(d, None, "") for d in devices], findings

    pod_names = _pod_names(request)
    choices = []
    if request.selector != "auto":
        for device in devices:
            value, problems = _selector_value(device, request.selector)
            findings += problems
            if not problems:
                findings += _matches_elsewhere(request, device, request.selector, value)
            if request.selector == "device" and not problems:
                risk = eexist_finding(
                    value,
                    node=device.node,
                    plugin=device.plugin,
                    pod_names=pod_names,
                    device=device,
                )
                if risk:
                    findings.append(risk)
            choices.append(_Choice(device, request.selector, value))
        return choices, findings

    names_elsewhere = sorted(
        {node for d in devices for node in request.elsewhere.get(("device", d.name), ())}
    )
    if devices and all(_name_is_safe(d, pod_names) for d in devices) and not names_elsewhere:
        findings.append(
            info(
                "SELECTOR_CHOSEN",
                "selector",
                "Selected by interface name (device): the name cannot collide with one in the "
                "pod on any target node, and no other node has an interface of that name.",
            )
        )
        return [_Choice(d, "device", d.name) for d in devices], findings

    for device in devices:
        mac = normalize_mac(device.mac)
        pci = device.pci_address.lower()
        usable_mac = device.has_netdev and mac is not None and is_usable_mac(mac)
        if is_full_bdf(device.pci_address) and (
            not request.elsewhere.get(("pciBusID", pci)) or not usable_mac
        ):
            selector = "pciBusID"
        elif usable_mac:
            selector = "hwaddr"
        else:
            findings.append(
                error(
                    "SELECTOR_NONE_POSSIBLE",
                    "selector",
                    f"{where(device)} can be selected neither by name (unsafe or invalid), nor "
                    "by PCI address, nor by MAC address.",
                    "Pick another interface.",
                )
            )
            continue
        value, problems = _selector_value(device, selector)
        findings += problems
        choices.append(_Choice(device, selector, value))
        why = _why_not_by_name(device, pod_names, request.elsewhere)
        if selector == "pciBusID":
            how = "; its PCI address survives renames and reboots."
        elif is_full_bdf(device.pci_address):
            how = "; its PCI address is also on another node, its MAC names this NIC only."
        else:
            how = "; it has no PCI address, and its MAC names this NIC only."
        findings.append(
            info(
                "SELECTOR_CHOSEN",
                "selector",
                f"{where(device)} is selected by {selector}: {why}{how}",
            )
        )
        findings += _matches_elsewhere(request, device, selector, value)
    return choices, findings


def _matches_elsewhere(
    request: NadRequest, device: DeviceFacts, selector: str, value: str
) -> list[Finding]:
    """A selector that would also match an interface of a node the NAD was not made for."""
    key = (selector, value.lower() if selector in ("hwaddr", "pciBusID") else value)
    nodes = request.elsewhere.get(key, ())
    if not nodes or not value:
        return []
    return [
        warning(
            "SELECTOR_MATCHES_OTHER_NODES",
            "selector",
            f'"{selector}": "{value}" (for {where(device)}) also matches an interface on '
            f"{', '.join(sorted(nodes))}: a pod that uses this NAD there takes that node's "
            "interface, which may be in use or another team's reserved NIC.",
            "Keep the pods on the NAD's nodes (the pod snippet pins them), or select by hwaddr, "
            "which names one NIC.",
        )
    ]


def _why_not_by_name(
    device: DeviceFacts,
    pod_names: dict[str, str],
    elsewhere: Mapping[tuple[str, str], tuple[str, ...]],
) -> str:
    if not device.has_netdev or device.state == OwnershipState.USERSPACE:
        return "it has no kernel interface to name"
    if device.pf_pci_address:
        # A VF's netdev name comes from udev and its driver, and changes when the VFs are
        # re-created or rebound; its PCI address is fixed by its PF and its number.
        return "it is an SR-IOV VF, whose name changes when its VFs are re-created"
    if ifname_problem(device.name):
        return "its name is not a valid interface name"
    if device.name in pod_names:
        return (
            f'the pod already has an interface named "{device.name}" and '
            f"{eexist_explanation(device.plugin)} "
            "(`failed to move link file exists`)"
        )
    others = elsewhere.get(("device", device.name), ())
    if others:
        return (
            f"{', '.join(sorted(others))} also {'has' if len(others) == 1 else 'have'} an "
            f'interface named "{device.name}", which a NAD selecting by name would take from a '
            "pod there"
        )
    return "the interface name is not safe on every target node, so each node gets its own NAD"


def _cni_version(request: NadRequest) -> tuple[str, list[Finding]]:
    plugins: dict[str, PluginFacts | None] = {}
    for device in request.devices:
        plugins.setdefault(device.node, device.plugin)
    findings = []
    for node, plugin in sorted(plugins.items()):
        if plugin_supported_versions(plugin) is None:
            findings.append(
                warning(
                    "PLUGIN_UNKNOWN",
                    "cni_version",
                    f"Nothing is known about the host-device binary on node {node} (the agent "
                    "reported none, or neither its version nor its supported cniVersions): "
                    f"NICPortal assumed cniVersion {SAFE_CNI_VERSION}, which every release "
                    "accepts, and that it may have the `file exists` bug (< v1.5.0).",
                    "Check that the agent sees the node's CNI bin dir and host-device in it.",
                )
            )
    if not plugins:
        findings.append(
            warning(
                "PLUGIN_UNKNOWN",
                "cni_version",
                "No device was given, so nothing is known about the nodes' host-device: "
                f"NICPortal assumed cniVersion {SAFE_CNI_VERSION}, which every release accepts.",
            )
        )
    if request.cni_version != "auto":
        findings += explicit_cni_version_findings(
            request.cni_version, plugins, request.multus_version
        )
        return request.cni_version, findings

    safe_key = version_key(SAFE_CNI_VERSION)
    allowed: set[str] | None = None
    for plugin in plugins.values():
        supported = plugin_supported_versions(plugin)
        accepted = (
            set(supported) if supported else {v for v in CNI_VERSIONS if version_key(v) <= safe_key}
        )
        allowed = accepted if allowed is None else allowed & accepted
    if allowed is None:
        allowed = {v for v in CNI_VERSIONS if version_key(v) <= safe_key}
    ceiling = multus_ceiling(request.multus_version) or SAFE_CNI_VERSION
    candidates = sorted(
        (v for v in allowed if version_key(v) <= version_key(ceiling)), key=version_key
    )
    if not candidates:
        findings.append(
            error(
                "CNI_VERSION_NO_COMMON",
                "cni_version",
                "No cniVersion is accepted by the host-device on every target node and by "
                f"Multus ({ceiling} at most): "
                + "; ".join(
                    f"{node}: {', '.join(plugin_supported_versions(p) or ('unknown',))}"
                    for node, p in sorted(plugins.items())
                )
                + ".",
                "Upgrade the CNI plugins on the older nodes, or build one NAD per node.",
            )
        )
        return "", findings
    chosen = candidates[-1]
    findings.append(
        info(
            "CNI_VERSION_CHOSEN",
            "cni_version",
            f"cniVersion {chosen}: the highest that host-device on every target node and "
            f"Multus{' ' + request.multus_version if request.multus_version else ''} accept.",
        )
    )
    return chosen, findings


def _render(
    request: NadRequest, choices: list[_Choice], cni_version: str
) -> tuple[RenderedNad, ...]:
    groups: list[tuple[str, list[_Choice]]]
    values = {(c.selector, c.value) for c in choices}
    if request.resource_name or (choices and len(values) == 1 and choices[0].selector == "device"):
        groups = [(request.name, choices)]
    elif len(choices) == 1:
        groups = [(request.name, choices)]
    else:
        names = [node_scoped_nad_name(request.name, c.device.node) for c in choices]
        clashes = {n for n in names if names.count(n) > 1}
        groups = [
            (
                node_scoped_nad_name(request.name, c.device.node, hashed=True)
                if name in clashes
                else name,
                [c],
            )
            for name, c in zip(names, choices, strict=True)
        ]

    ipam = ipam_config(request.ipam)
    nads = []
    for name, members in groups:
        nodes = tuple(c.device.node for c in members)
        config: dict = {"cniVersion": cni_version, "name": name, "type": "host-device"}
        if members and members[0].selector and not request.resource_name:
            config[members[0].selector] = members[0].value
        if ipam:
            config["ipam"] = ipam
        text = render.config_json(config)
        annotations: dict[str, str] = {}
        if request.resource_name:
            annotations[render.RESOURCE_NAME_ANNOTATION] = request.resource_name
        if nodes:
            annotations[render.NODES_ANNOTATION] = ",".join(nodes)
        manifest = render.manifest(
            namespace=request.namespace, name=name, config_text=text, annotations=annotations
        )
        snippet = render.pod_snippet(
            namespace=request.namespace,
            name=name,
            pod_interface=request.pod_interface,
            nodes=nodes,
            resource_name=request.resource_name,
        )
        nads.append(
            RenderedNad(
                namespace=request.namespace,
                name=name,
                nodes=nodes,
                config=config,
                config_json=text,
                manifest=manifest,
                yaml=render.to_yaml(manifest),
                annotations=annotations,
                pod_snippet=yaml.safe_dump(snippet, default_flow_style=False, sort_keys=False),
            )
        )
    return tuple(nads)
