"""The facts of one diagnosis as the rules walk them, and the small questions every rule asks
(which attachment, which interfaces of the node are free, does this NIC match the selector, how
to name it, which NAD would work instead)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from inventory.rules import nad
from inventory.rules.diagnosis.facts import (
    ERROR,
    Diagnosis,
    DiagnosisFacts,
    EventFacts,
    Evidence,
    Fix,
    HostInterface,
    NadFacts,
    PodFacts,
)
from inventory.rules.multus import NetworkSelection
from inventory.rules.nad.facts import PRIMARY_POD_INTERFACE
from inventory.rules.nad.ipam import ipam_request_from_config
from inventory.rules.nad.names import normalize_mac
from inventory.rules.states import OwnershipState


@dataclass(frozen=True, slots=True)
class Context:
    facts: DiagnosisFacts
    failure: EventFacts | None  # newest sandbox failure
    failed_network: str  # the network Multus names in it, "" if none

    @property
    def pod(self) -> PodFacts:
        return self.facts.pod

    @property
    def message(self) -> str:
        return self.failure.message if self.failure else ""

    def says(self, text: str) -> bool:
        return text.lower() in self.message.lower()

    def verdict(
        self,
        code: str,
        title: str,
        explanation: str,
        *,
        selection: NetworkSelection | None = None,
        evidence: Sequence[Evidence] = (),
        fix: Fix | None = None,
        severity: str = ERROR,
    ) -> Diagnosis:
        items = list(evidence)
        if self.failure is not None:
            items.insert(0, Evidence("Event", f"{self.failure.reason}: {self.failure.message}"))
        if self.pod.node:
            items.append(Evidence("Node", self.pod.node))
        return Diagnosis(
            code=code,
            severity=severity,
            title=title,
            explanation=explanation,
            namespace=self.pod.namespace,
            pod=self.pod.name,
            node=self.pod.node,
            attachment=attachment(selection) if selection else "",
            evidence=tuple(items),
            fix=fix,
        )


def attachment(selection: NetworkSelection) -> str:
    return f"{selection.nad_key}@{selection.interface}"


def node_interfaces(ctx: Context, node: str) -> Sequence[HostInterface]:
    return ctx.facts.interfaces_by_node.get(node, ())


def free_interfaces(ctx: Context) -> list[HostInterface]:
    return [
        i
        for i in node_interfaces(ctx, ctx.pod.node)
        if i.state == OwnershipState.FREE and i.present and i.has_netdev and not i.orphan
    ]


def matches(selector: str, value: str, interface: HostInterface) -> bool:
    if selector == "device":
        return interface.name == value
    if selector == "hwaddr":
        wanted = normalize_mac(value)
        return bool(wanted) and normalize_mac(interface.mac) == wanted
    if selector == "pciBusID":
        return bool(interface.pci_address) and interface.pci_address.lower() == value.lower()
    return False  # kernelpath: the agent reports no sysfs paths


def describe(interface: HostInterface) -> str:
    parts = [f"{interface.node}/{interface.name}"]
    if interface.mac:
        parts.append(f"MAC {interface.mac}")
    if interface.pci_address:
        parts.append(f"PCI {interface.pci_address}")
    parts.append(f"state {interface.state}")
    if interface.reason:
        parts.append(interface.reason)
    return ", ".join(parts)


def host_device_entry(config: str) -> dict | None:
    try:
        parsed = json.loads(config)
    except (ValueError, TypeError, RecursionError):  # RecursionError: nested ~1,000 deep
        return None
    if not isinstance(parsed, dict):
        return None
    if parsed.get("type") == "host-device":
        return parsed
    for plugin in parsed.get("plugins") or []:
        if isinstance(plugin, dict) and plugin.get("type") == "host-device":
            return {**plugin, "cniVersion": parsed.get("cniVersion"), "name": parsed.get("name")}
    return None


def offer_nad(
    ctx: Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    devices: Sequence[HostInterface],
    selector: str,
    *,
    entry: Mapping | None = None,
) -> tuple[str, str]:
    """(sentence, YAML) of a NAD built by nad.build for `devices`, ("", "") when none can be."""
    if not devices:
        return "", ""
    entry = entry if entry is not None else (host_device_entry(nad_facts.config) or {})
    ipam, _ = ipam_request_from_config(entry.get("ipam"))
    version = entry.get("cniVersion")
    others = tuple(
        dict.fromkeys(
            [PRIMARY_POD_INTERFACE, *(s.interface for s in ctx.pod.networks if s != selection)]
        )
    )
    request = nad.NadRequest(
        elsewhere=selectors_elsewhere(ctx, devices),
        namespace=nad_facts.namespace,
        name=nad_facts.name,
        devices=tuple(d.device_facts(ctx.facts.plugin) for d in devices),
        selector=selector,
        pod_interface=selection.interface,
        other_pod_interfaces=others,
        ipam=ipam or nad.IpamRequest(),
        cni_version=version if version in nad.CNI_VERSIONS else "auto",
        multus_version=ctx.facts.multus_version,
    )
    result = nad.build(request)
    if not result.ok or not result.nads:
        return "", ""
    names = ", ".join(f"{d.node}/{d.name}" for d in devices)
    return f"this NAD selects {names}", result.nads[0].yaml


def selectors_elsewhere(
    ctx: Context, devices: Sequence[HostInterface]
) -> dict[tuple[str, str], tuple[str, ...]]:
    """(selector, value) -> the other inventoried nodes with an interface it would match (the
    NAD builder keeps a NAD offered here from taking another node's NIC)."""
    targets = {d.node for d in devices}
    found: dict[tuple[str, str], set[str]] = {}
    for node, interfaces in ctx.facts.interfaces_by_node.items():
        if node in targets:
            continue
        for interface in interfaces:
            for device in devices:
                mac = normalize_mac(device.mac) if device.mac else None
                pci = device.pci_address.lower()
                if device.name and interface.name == device.name:
                    found.setdefault(("device", device.name), set()).add(node)
                if mac and normalize_mac(interface.mac or "") == mac:
                    found.setdefault(("hwaddr", mac), set()).add(node)
                if pci and interface.pci_address.lower() == pci:
                    found.setdefault(("pciBusID", pci), set()).add(node)
    return {key: tuple(sorted(nodes)) for key, nodes in found.items()}


def holder_is(holder: str, pod: str) -> bool:
    # ownership.py writes "pod ns/name"; a longer holder text may follow after a space.
    return holder == pod or holder.startswith(pod + " ") or holder.startswith(pod + ",")


def where_text(selector: str, value: str) -> str:
    return {
        "device": f"an interface named {value}",
        "hwaddr": f"an interface with MAC {value}",
        "pciBusID": f"PCI function {value}",
    }.get(selector, f"{selector} {value}")
