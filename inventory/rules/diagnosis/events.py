"""What the Event says that the facts did not explain, by its message; else healthy or pending.
The table reads as the plugin's and Multus' own words, each with its code, title and fix."""

from __future__ import annotations

from inventory.rules.diagnosis.context import (
    Context,
    attachment,
)
from inventory.rules.diagnosis.facts import (
    MSG_EEXIST,
    MSG_LINK_NOT_FOUND,
    MSG_NAD_NOT_FOUND,
    MSG_NO_NETDEV,
    MSG_NO_SELECTOR,
    OK,
    PENDING,
    Diagnosis,
    Evidence,
    Fix,
    PodFacts,
)


def by_event_or_healthy(ctx: Context) -> Diagnosis:
    pod = ctx.pod
    if ctx.failure is not None and not _running(pod):
        for text, code, title, explanation in _EVENT_RULES:
            if ctx.says(text):
                return ctx.verdict(code, title, explanation, fix=Fix(_EVENT_FIXES[code]))
        return ctx.verdict(
            "UNKNOWN_FAILURE",
            "The pod's sandbox failed for a reason NICPortal does not know",
            "The kubelet reports a sandbox failure whose message matches none of the known "
            "host-device and Multus failures; read the Event below.",
            fix=Fix(
                "Read the plugin's message; `kubectl describe pod` and the Multus logs on the "
                "node have the rest."
            ),
        )
    attachments = ", ".join(attachment(s) for s in pod.networks) or "no Multus attachment"
    if _running(pod):
        status = [
            Evidence(f"network-status {s.interface}", f"{s.name} MAC {s.mac or '-'}")
            for s in pod.network_status
            if not s.default
        ]
        return ctx.verdict(
            "HEALTHY",
            f"Pod {pod.key} is running with its networks",
            f"The pod runs on {pod.node or 'its node'} with {attachments}.",
            evidence=status,
            severity=OK,
        )
    if not pod.phase:
        return ctx.verdict(
            "HEALTHY",
            "Nothing in the NADs or the inventory stops this pod",
            f"Every attachment ({attachments}) points at a NAD that exists and at a device the "
            "node can hand to a pod.",
            severity=OK,
        )
    if not pod.node:
        explanation = "The pod is not scheduled on a node yet: no network has been tried."
    else:
        explanation = (
            f"The pod is {pod.phase or 'pending'} on {pod.node} and no sandbox failure was "
            "reported yet; the facts show nothing that would stop it. Look again in a few seconds."
        )
    return ctx.verdict(
        "PENDING_NO_EVENT",
        f"Pod {pod.key} is pending without a failure (yet)",
        explanation,
        severity=PENDING,
        fix=Fix("Wait for the kubelet: an Event appears if the sandbox fails."),
    )


def _running(pod: PodFacts) -> bool:
    return pod.phase in ("Running", "Succeeded")


_EVENT_RULES: tuple[tuple[str, str, str, str], ...] = (
    (
        MSG_NAD_NOT_FOUND,
        "NAD_MISSING",
        "A NAD the pod names does not exist",
        "Multus cannot find a NetworkAttachmentDefinition the pod's annotation names.",
    ),
    (
        MSG_NO_SELECTOR,
        "NO_SELECTOR",
        "host-device got no device to select",
        "The NAD has no device, hwaddr, kernelpath or pciBusID, and no device plugin passed a "
        "deviceID.",
    ),
    (
        MSG_NO_NETDEV,
        "PCI_WITHOUT_NETDEV",
        "The selected PCI function has no network interface",
        "The PCI function is bound to a userspace driver or to none, or it is not a NIC.",
    ),
    (
        MSG_EEXIST,
        "EEXIST_COLLISION",
        "A link of that name already exists in the pod (file exists)",
        "host-device before v1.5.0 moves the link into the pod under its host name; the pod "
        "already had a link of that name.",
    ),
    (
        MSG_LINK_NOT_FOUND,
        "DEVICE_ABSENT",
        "The selected device is not on the node",
        "host-device found no matching link on the node: wrong node, already in another pod, "
        "renamed, or stranded. The node is not in the inventory, so NICPortal cannot tell which.",
    ),
)

_EVENT_FIXES = {
    "NAD_MISSING": "Create the NAD, or correct the name or namespace in the annotation.",
    "NO_SELECTOR": 'Add one of "device", "hwaddr", "kernelpath" or "pciBusID" to the NAD.',
    "PCI_WITHOUT_NETDEV": "Bind a kernel network driver to the PCI function.",
    "EEXIST_COLLISION": "Select the device by hwaddr or pciBusID, or upgrade the CNI plugins to "
    "v1.5.0 or newer.",
    "DEVICE_ABSENT": "Check the node's interfaces (`ip -br link`) and the stranded NICs page.",
}
