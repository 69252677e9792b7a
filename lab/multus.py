"""Multus' side of the lab kubelet: the pod annotations, read and written the way Multus does.

This is the lab's own parser, written from the Network Plumbing WG spec and Multus' behaviour,
deliberately independent of the portal's code so that each checks the other.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
DEFAULT_NETWORK = "k8s-pod-network"  # Calico's network name, the pods' eth0
MULTUS_PLUGIN = 'plugin type="multus" name="multus-cni-network"'

_SHORT_FORM = re.compile(r"^(?:(?P<ns>[^/@\s]+)/)?(?P<name>[^/@\s]+)(?:@(?P<ifname>[^/@\s]+))?$")


class AnnotationError(ValueError):
    """The networks annotation cannot be parsed (Multus fails the sandbox with this text)."""


@dataclass(frozen=True)
class Attachment:
    namespace: str
    name: str
    interface: str | None = None

    @property
    def qualified_name(self) -> str:
        return f"{self.namespace}/{self.name}"


def parse_networks(value: str, pod_namespace: str) -> list[Attachment]:
    """Both forms: `ns/name@ifname, other` and a JSON list of {name, namespace, interface}."""
    value = value.strip()
    if not value:
        return []
    if value.startswith("["):
        try:
            items = json.loads(value)
        except json.JSONDecodeError as exc:
            raise AnnotationError(
                f"failed to parse pod Network Attachment Selection: {exc}"
            ) from exc
        attachments = []
        for item in items:
            if not isinstance(item, dict) or not item.get("name"):
                raise AnnotationError(f"network selection element without a name: {item!r}")
            attachments.append(
                Attachment(
                    namespace=item.get("namespace") or pod_namespace,
                    name=item["name"],
                    interface=item.get("interface") or None,
                )
            )
        return attachments
    attachments = []
    for part in value.split(","):
        match = _SHORT_FORM.match(part.strip())
        if match is None:
            raise AnnotationError(f"parsePodNetworkObjectName: Invalid network object ({part!r})")
        attachments.append(
            Attachment(
                namespace=match["ns"] or pod_namespace,
                name=match["name"],
                interface=match["ifname"],
            )
        )
    return attachments


def interface_names(attachments: list[Attachment]) -> list[str]:
    """CNI_IFNAME for each attachment: the requested name, else net1, net2... by position."""
    return [a.interface or f"net{i}" for i, a in enumerate(attachments, start=1)]


def status_entry(
    name: str, interface: str, mac: str, ips: list[str], *, default: bool = False
) -> dict[str, Any]:
    entry: dict[str, Any] = {"name": name, "interface": interface, "ips": ips, "mac": mac}
    if default:
        entry["default"] = True
    entry["dns"] = {}
    return entry


def sandbox_failure(sandbox_id: str, multus_message: str) -> str:
    """The Event message kubelet records when Multus fails (FailedCreatePodSandBox)."""
    return (
        "Failed to create pod sandbox: rpc error: code = Unknown desc = failed to setup network"
        f' for sandbox "{sandbox_id}": {MULTUS_PLUGIN} failed (add): {multus_message}'
    )


def delegate_failure(namespace: str, pod: str, uid: str, network: str, plugin_error: str) -> str:
    """Multus' wording when one delegate (one attachment) fails ADD."""
    return (
        f"[{namespace}/{pod}/{uid}:{network}]: error adding container to network"
        f' "{network}": {plugin_error}'
    )


def plugin_error_text(stdout: str, stderr: str) -> str:
    """A CNI error result's text as libcni renders it: msg, then `; details` if any."""
    try:
        error = json.loads(stdout)
    except json.JSONDecodeError:
        return (stderr or stdout).strip() or "plugin failed without output"
    if not isinstance(error, dict) or "msg" not in error:
        return (stderr or stdout).strip()
    details = error.get("details")
    return f"{error['msg']}; {details}" if details else str(error["msg"])
