"""The device an attachment selects, judged against the node's inventory: it collides with a pod
interface name (`file exists`), it is the node's primary NIC, it is a PCI function without a
netdev, or it is absent (a renamed orphan, held by a pod, stranded, on another node, nowhere)."""

from __future__ import annotations

from collections.abc import Mapping

from inventory.rules import nad
from inventory.rules.diagnosis.breach import planned_breach
from inventory.rules.diagnosis.context import (
    Context,
    attachment,
    describe,
    free_interfaces,
    holder_is,
    matches,
    node_interfaces,
    offer_nad,
    where_text,
)
from inventory.rules.diagnosis.facts import (
    MSG_EEXIST,
    MSG_LINK_NOT_FOUND,
    MSG_NO_NETDEV,
    Diagnosis,
    Evidence,
    Fix,
    HostInterface,
    NadFacts,
)
from inventory.rules.diagnosis.recovery import (
    recovery_commands,
)
from inventory.rules.multus import NetworkSelection
from inventory.rules.nad.devices import is_primary_nic
from inventory.rules.nad.facts import PRIMARY_POD_INTERFACE
from inventory.rules.nad.versions import describe_plugin
from inventory.rules.states import OwnershipState


def judge_device(
    ctx: Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    selector: str,
    value: str,
) -> Diagnosis | None:
    node = ctx.pod.node
    where = f'"{selector}": "{value}"'
    evidence = [
        Evidence("NAD config", nad_facts.config),
        Evidence("Selector", where),
        Evidence("host-device on the node", describe_plugin(ctx.facts.plugin)),
    ]
    if not node:
        return None  # unscheduled: nothing has been tried yet, and no node to judge against
    if node not in ctx.facts.interfaces_by_node:
        return None  # the node is not inventoried: only the Event can speak
    candidates = [i for i in node_interfaces(ctx, node) if matches(selector, value, i)]
    on_node = [i for i in candidates if i.present and i.has_netdev]
    device = on_node[0] if on_node else None

    # 1. the collision: the link is moved into the pod under its host name (< v1.5.0).
    pod_names = {
        PRIMARY_POD_INTERFACE: f"the pod's {PRIMARY_POD_INTERFACE} (made by the primary CNI)"
    }
    for other in ctx.pod.networks:
        if other != selection:
            pod_names[other.interface] = (
                f"the pod's {other.interface} (attachment {attachment(other)})"
            )
    collides = selector == "device" and value in pod_names
    bug = nad.plugin_has_eexist_bug(ctx.facts.plugin)
    if collides and (ctx.says(MSG_EEXIST) or (bug is not False and device is not None)):
        return _eexist(ctx, selection, nad_facts, entry, device, value, pod_names[value], evidence)

    if device is not None:
        evidence.append(Evidence("Device on the node", describe(device)))
        if is_primary_nic(device.device_facts(ctx.facts.plugin)):
            return _primary_nic(ctx, selection, nad_facts, entry, device, evidence)
        if device.state == OwnershipState.USERSPACE and selector == "pciBusID":
            return None  # DPDK mode: host-device moves nothing and succeeds
        # Present and selectable: not this attachment's fault, unless a planned pod would take
        # another team's reserved NIC.
        return planned_breach(ctx, selection, nad_facts, device)
    pci_only = [i for i in candidates if i.present and not i.has_netdev]
    if pci_only or ctx.says(MSG_NO_NETDEV):
        return _pci_without_netdev(ctx, selection, pci_only[0] if pci_only else None, evidence)
    return _absent(ctx, selection, nad_facts, entry, selector, value, candidates, evidence)


def _eexist(
    ctx: Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    device: HostInterface | None,
    value: str,
    colliding: str,
    evidence: list[Evidence],
) -> Diagnosis:
    plugin_text = describe_plugin(ctx.facts.plugin)
    if device is not None:
        evidence.append(Evidence("Device on the node", describe(device)))
    primary = device is not None and is_primary_nic(device.device_facts(ctx.facts.plugin))
    if primary:
        fix_text = (
            f"Do not hand {value} to a pod at all: it is node {ctx.pod.node}'s primary NIC, and "
            "selecting it by hwaddr or pciBusID would move it out of the node, which then drops "
            "off the cluster (multus-cni #557). Point the NAD at a free NIC instead"
        )
        sentence, nad_yaml = offer_nad(ctx, selection, nad_facts, free_interfaces(ctx)[:1], "auto")
    else:
        selector = "pciBusID" if device is not None and device.pci_address else "hwaddr"
        fix_text = (
            f"Select the device by {selector} instead of its name (host-device then moves it under "
            "a name the pod does not have), or upgrade the node's CNI plugins to v1.5.0 or newer"
        )
        sentence, nad_yaml = offer_nad(
            ctx, selection, nad_facts, [device] if device else [], selector, entry=entry
        )
    if sentence:
        fix_text += f"; {sentence}"
    return ctx.verdict(
        "EEXIST_COLLISION",
        f'"device": "{value}" collides with the pod\'s own {value} (file exists)',
        f"host-device moves the link into the pod under its host name {value} before renaming "
        f"it to {selection.interface}, and {colliding} already has that name, so the kernel "
        f"refuses the move with `failed to move link file exists`. The node runs {plugin_text}; "
        "the bug was fixed in v1.5.0 (multus-cni #1209, seen with MicroK8s + Calico).",
        selection=selection,
        evidence=[*evidence, Evidence("Colliding pod interface", f"{value}: {colliding}")],
        fix=Fix(fix_text + ".", nad_yaml=nad_yaml),
    )


def _primary_nic(
    ctx: Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    device: HostInterface,
    evidence: list[Evidence],
) -> Diagnosis:
    sentence, nad_yaml = offer_nad(ctx, selection, nad_facts, free_interfaces(ctx)[:1], "auto")
    return ctx.verdict(
        "PRIMARY_NIC_REQUESTED",
        f"NAD {nad_facts.key} asks for node {ctx.pod.node}'s primary NIC {device.name}",
        f"{device.node}/{device.name} is the node's own uplink ({device.reason}). host-device "
        "would move it into the pod and the node would lose its connection to the cluster "
        "(multus-cni #557): never hand it to a pod.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            "Point the NAD at a free NIC of the node (the node page lists them)"
            + (f"; {sentence}" if sentence else "")
            + ".",
            nad_yaml=nad_yaml,
        ),
    )


def _pci_without_netdev(
    ctx: Context,
    selection: NetworkSelection,
    device: HostInterface | None,
    evidence: list[Evidence],
) -> Diagnosis:
    if device is not None:
        evidence.append(Evidence("Device on the node", describe(device)))
        driver = device.driver or "no driver"
        what = (
            f"PCI function {device.pci_address} on {device.node} has no network interface "
            f"({driver})"
        )
    else:
        what = "The PCI function the NAD selects has no network interface on the node"
    return ctx.verdict(
        "PCI_WITHOUT_NETDEV",
        "The selected PCI function has no network interface",
        f"{what}: host-device fails with `{MSG_NO_NETDEV} …`. It is bound to a userspace "
        "driver (vfio-pci, uio), to no driver at all, or it is not a NIC.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            "Bind a kernel network driver to it (see the stranded NICs page for the commands), or, "
            "for DPDK, use it through pciBusID or a device plugin."
        ),
    )


def _absent(
    ctx: Context,
    selection: NetworkSelection,
    nad_facts: NadFacts,
    entry: Mapping,
    selector: str,
    value: str,
    candidates: list[HostInterface],
    evidence: list[Evidence],
) -> Diagnosis:
    node = ctx.pod.node
    not_found = (
        f"host-device finds no {value} on node {node} and fails with "
        f"`failed to find host device: {MSG_LINK_NOT_FOUND}`"
    )
    # A renamed orphan: back from a dead pod as netN, with the original name in its alias.
    if selector == "device":
        for interface in node_interfaces(ctx, node):
            if interface.present and interface.orphan and interface.alias == value:
                evidence.append(Evidence("Device on the node", describe(interface)))
                return ctx.verdict(
                    "DEVICE_ABSENT_RENAMED",
                    f"{value} is on node {node}, but renamed {interface.name}",
                    f"{not_found}. The NIC came back from a pod whose network namespace died "
                    f"without CNI DEL: it is on the host as {interface.name}, with its original "
                    f"name {value} in its alias.",
                    selection=selection,
                    evidence=evidence,
                    fix=Fix(
                        f"Rename it back on node {node} (the pod then starts on its next retry).",
                        commands=recovery_commands(
                            name=interface.name, original_name=value, orphan=True
                        ),
                    ),
                )
    gone = [i for i in candidates if not i.present]
    held = [i for i in gone if i.state == OwnershipState.POD]
    own = f"pod {ctx.pod.key}"
    if any(holder_is(i.holder, own) for i in held):
        return None  # in this very pod: the attachment worked
    if held:
        device = held[0]
        evidence.append(Evidence("Device on the node", describe(device)))
        evidence.append(Evidence("Held by", device.holder or "a pod"))
        sentence, nad_yaml = offer_nad(ctx, selection, nad_facts, free_interfaces(ctx)[:1], "auto")
        return ctx.verdict(
            "DEVICE_ABSENT_HELD_BY_POD",
            f"{value} is already in {device.holder or 'another pod'}",
            f"{not_found}: host-device moved it into {device.holder or 'another pod'} "
            f"({device.reason}). A NIC can be in one pod at a time.",
            selection=selection,
            evidence=evidence,
            fix=Fix(
                f"Delete or move {device.holder or 'that pod'} first, or point this pod at another "
                "free NIC" + (f"; {sentence}" if sentence else "") + ".",
                nad_yaml=nad_yaml,
            ),
        )
    stranded = [i for i in gone if i.state == OwnershipState.MISSING]
    if stranded:
        device = stranded[0]
        evidence.append(Evidence("Device on the node", describe(device)))
        return ctx.verdict(
            "DEVICE_ABSENT_STRANDED",
            f"{value} is stranded: gone from node {node} and no pod holds it",
            f"{not_found}. The inventory saw {device.name} on the node before; it vanished and no "
            "pod claims it, so it is most likely stuck in the network namespace of a pod that was "
            "force-deleted without CNI DEL.",
            selection=selection,
            evidence=evidence,
            fix=Fix(
                "Find the namespace holding it and move it back (stranded NICs page), or point the "
                "NAD at another free NIC.",
                commands=recovery_commands(
                    name=device.name,
                    original_name=device.name,
                    mac=device.mac,
                    pci_address=device.pci_address,
                    driver=device.driver,
                ),
            ),
        )
    elsewhere = [
        (other, i)
        for other, interfaces in sorted(ctx.facts.interfaces_by_node.items())
        if other != node
        for i in interfaces
        if matches(selector, value, i) and i.present
    ]
    if elsewhere:
        nodes = sorted({other for other, _ in elsewhere})
        for _, interface in elsewhere[:3]:
            evidence.append(Evidence("Found on", describe(interface)))
        placement = (
            f"nodeSelector kubernetes.io/hostname: {nodes[0]}"
            if len(nodes) == 1
            else "a required node affinity for " + ", ".join(nodes)
        )
        sentence, nad_yaml = offer_nad(ctx, selection, nad_facts, free_interfaces(ctx)[:1], "auto")
        return ctx.verdict(
            "DEVICE_ABSENT_WRONG_NODE",
            f"{value} is on {', '.join(nodes)}, not on {node}",
            f"{not_found}. The pod was scheduled on {node}, but {where_text(selector, value)} "
            f"exists on {', '.join(nodes)}.",
            selection=selection,
            evidence=evidence,
            fix=Fix(
                f"Pin the pod to {' or '.join(nodes)} ({placement}), or use a NAD for a free NIC "
                f"on {node}" + (f"; {sentence}" if sentence else "") + ".",
                nad_yaml=nad_yaml,
            ),
        )
    sentence, nad_yaml = offer_nad(ctx, selection, nad_facts, free_interfaces(ctx)[:1], "auto")
    return ctx.verdict(
        "DEVICE_ABSENT_EVERYWHERE",
        f"No node has {value}",
        f"{not_found}, and no node in the inventory has {where_text(selector, value)}: a "
        "misspelt name or MAC, or a NIC that was never there.",
        selection=selection,
        evidence=evidence,
        fix=Fix(
            "Point the NAD at an interface the inventory lists"
            + (f"; {sentence}" if sentence else "")
            + ".",
            nad_yaml=nad_yaml,
        ),
    )
