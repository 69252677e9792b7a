"""Parsing of the Multus pod annotations (pure: text in, frozen dataclasses out, no I/O).

`k8s.v1.cni.cncf.io/networks` is what a pod asks for; `k8s.v1.cni.cncf.io/network-status` is what
Multus reports it got (and, with host-device, the MAC that identifies the NIC on the node). Both
are free text written by people or by other programs, so every malformed input ends in a
`MultusAnnotationError` whose message says what is wrong and where, never in a crash.

The rules follow multus-cni (pkg/k8sclient: parsePodNetworkAnnotation, parsePodNetworkObjectName)
and the Network Plumbing WG spec v1.3.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

NETWORKS_ANNOTATION = "k8s.v1.cni.cncf.io/networks"
NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/network-status"
# Written by Multus v3.x (MicroK8s ships v3.9) next to, or instead of, network-status.
DEPRECATED_NETWORK_STATUS_ANNOTATION = "k8s.v1.cni.cncf.io/networks-status"

# Multus checks every unit of the short form against a DNS-1123 label.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class MultusAnnotationError(ValueError):
    """A Multus annotation that Multus itself would reject (or that we cannot read)."""


@dataclass(frozen=True, slots=True)
class NetworkSelection:
    """One entry of the `networks` annotation: which NAD, and what the pod asked of it."""

    namespace: str  # the pod's namespace when the entry names none
    name: str  # the NAD name
    interface: str  # the interface name in the pod: as requested, else Multus' `net<N>`
    mac: str = ""
    ips: tuple[str, ...] = ()
    default_route: tuple[str, ...] = ()  # gateways from "default-route"
    raw: str = ""  # the entry as written (JSON entries re-serialized with sorted keys)
    # True when the pod named no interface and `interface` is the name Multus will give it:
    # `net1` for the first entry, `net2` for the second, ... (multus getIfname: the delegate
    # index, where index 0 is the cluster default network).
    interface_defaulted: bool = False

    @property
    def nad_key(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class NetworkStatus:
    """One entry of the `network-status` annotation: what Multus attached."""

    name: str  # "ns/nad" (the cluster default network appears under its own name)
    interface: str = ""
    ips: tuple[str, ...] = ()
    mac: str = ""  # lowercased
    mtu: int | None = None
    default: bool = False
    dns: dict[str, Any] = field(default_factory=dict)
    device_info: dict[str, Any] = field(default_factory=dict)  # "device-info" as reported
    pci_address: str = ""  # device-info.pci["pci-address"] when present
    gateway: tuple[str, ...] = ()


# --- networks ------------------------------------------------------------------------------------


def parse_networks(text: str | None, *, pod_namespace: str) -> tuple[NetworkSelection, ...]:
    """Parse `k8s.v1.cni.cncf.io/networks` in either form.

    Short form: `ns/name@ifname, other` (namespace and interface optional). JSON form: a list
    of objects with `name` and optionally `namespace`, `interface`, `mac`, `ips`,
    `default-route`, `cni-args`, ... (extra keys are kept in `raw`).
    """
    if text is None or not text.strip():
        return ()
    stripped = text.strip()
    # Multus decides the form the same way: any of `[`, `{` or `"` means JSON.
    if any(char in stripped for char in '[{"'):
        return _parse_networks_json(stripped, pod_namespace)
    return _parse_networks_short(stripped, pod_namespace)


def _parse_networks_short(text: str, pod_namespace: str) -> tuple[NetworkSelection, ...]:
    selections = []
    for position, entry in enumerate(text.split(","), start=1):
        entry = entry.strip()
        if not entry:
            raise MultusAnnotationError(f"networks: entry {position} is empty (stray comma?)")
        namespace, name, interface = _parse_short_entry(entry, position)
        selections.append(
            _selection(
                position,
                namespace=namespace or pod_namespace,
                name=name,
                interface=interface,
                raw=entry,
            )
        )
    return tuple(selections)


def _parse_short_entry(entry: str, position: int) -> tuple[str, str, str]:
    where = f"networks: entry {position} {entry!r}"
    slash_parts = entry.split("/")
    if len(slash_parts) > 2:
        raise MultusAnnotationError(f"{where}: more than one '/' (expected namespace/name@ifname)")
    namespace = slash_parts[0].strip() if len(slash_parts) == 2 else ""
    rest = slash_parts[-1]
    at_parts = rest.split("@")
    if len(at_parts) > 2:
        raise MultusAnnotationError(f"{where}: more than one '@' (expected namespace/name@ifname)")
    name = at_parts[0].strip()
    interface = at_parts[1].strip() if len(at_parts) == 2 else ""
    if not name:
        raise MultusAnnotationError(f"{where}: no network name")
    if len(slash_parts) == 2 and not namespace:
        raise MultusAnnotationError(f"{where}: empty namespace before '/'")
    if len(at_parts) == 2 and not interface:
        raise MultusAnnotationError(f"{where}: empty interface name after '@'")
    for label, value in (("namespace", namespace), ("name", name), ("interface", interface)):
        if value and not _DNS1123_LABEL.match(value):
            raise MultusAnnotationError(
                f"{where}: {label} {value!r} is not a DNS-1123 label "
                "(lower case letters, digits and '-', starting and ending alphanumeric)"
            )
    return namespace, name, interface


def _parse_networks_json(text: str, pod_namespace: str) -> tuple[NetworkSelection, ...]:
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MultusAnnotationError(f"networks: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise MultusAnnotationError(
            f"networks: JSON must be a list of objects, got {_json_type(data)}"
        )
    selections = []
    for position, element in enumerate(data, start=1):
        where = f"networks: element {position}"
        if not isinstance(element, dict):
            raise MultusAnnotationError(f"{where} must be an object, got {_json_type(element)}")
        name = element.get("name")
        if name is None or name == "":
            raise MultusAnnotationError(f'{where} has no "name"')
        name = _expect_str(element, "name", where)
        namespace = _expect_str(element, "namespace", where)
        interface = _expect_str(element, "interface", where)
        mac = _expect_str(element, "mac", where)
        ips = _expect_str_list(element, "ips", where)
        default_route = _expect_str_list(element, "default-route", where)
        if "cni-args" in element and not isinstance(element["cni-args"], dict | type(None)):
            raise MultusAnnotationError(
                f'{where}: "cni-args" must be an object, got {_json_type(element["cni-args"])}'
            )
        selections.append(
            _selection(
                position,
                namespace=namespace or pod_namespace,
                name=name,
                interface=interface,
                mac=mac.lower(),
                ips=ips,
                default_route=default_route,
                raw=json.dumps(element, sort_keys=True),
            )
        )
    return tuple(selections)


def _selection(position: int, *, interface: str, **fields: Any) -> NetworkSelection:
    if interface:
        return NetworkSelection(interface=interface, **fields)
    return NetworkSelection(interface=f"net{position}", interface_defaulted=True, **fields)


# --- network-status ------------------------------------------------------------------------------


def parse_network_status(text: str | None) -> tuple[NetworkStatus, ...]:
    """Parse `k8s.v1.cni.cncf.io/network-status` (or the deprecated `networks-status`).

    Extra keys are tolerated (Multus adds some over time); a known key with the wrong type is
    rejected, because a status we misread would attribute a NIC to the wrong pod.
    """
    if text is None or not text.strip():
        return ()
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise MultusAnnotationError(f"network-status: not valid JSON: {exc}") from None
    if not isinstance(data, list):
        raise MultusAnnotationError(
            f"network-status: JSON must be a list of objects, got {_json_type(data)}"
        )
    entries = []
    for position, element in enumerate(data, start=1):
        where = f"network-status: element {position}"
        if not isinstance(element, dict):
            raise MultusAnnotationError(f"{where} must be an object, got {_json_type(element)}")
        if not element.get("name"):
            raise MultusAnnotationError(f'{where} has no "name"')
        mtu = element.get("mtu")
        # bool is an int in Python; an MTU of `true` is a wrong type, not 1.
        if mtu is not None and (not isinstance(mtu, int) or isinstance(mtu, bool)):
            raise MultusAnnotationError(f'{where}: "mtu" must be an integer, got {_json_type(mtu)}')
        default = element.get("default", False)
        if not isinstance(default, bool):
            raise MultusAnnotationError(
                f'{where}: "default" must be true or false, got {_json_type(default)}'
            )
        dns = _expect_dict(element, "dns", where)
        device_info = _expect_dict(element, "device-info", where)
        entries.append(
            NetworkStatus(
                name=_expect_str(element, "name", where),
                interface=_expect_str(element, "interface", where),
                ips=_expect_str_list(element, "ips", where),
                mac=_expect_str(element, "mac", where).lower(),
                mtu=mtu,
                default=default,
                dns=dns,
                device_info=device_info,
                pci_address=_pci_address(device_info, where),
                gateway=_expect_str_list(element, "gateway", where),
            )
        )
    return tuple(entries)


def _pci_address(device_info: dict[str, Any], where: str) -> str:
    # Device Information Spec: {"type": "pci", "version": "1.1.0", "pci": {"pci-address": ...}}
    pci = device_info.get("pci")
    if pci is None:
        return ""
    if not isinstance(pci, dict):
        raise MultusAnnotationError(
            f'{where}: "device-info.pci" must be an object, got {_json_type(pci)}'
        )
    address = pci.get("pci-address", "")
    if not isinstance(address, str):
        raise MultusAnnotationError(
            f'{where}: "device-info.pci.pci-address" must be a string, got {_json_type(address)}'
        )
    return address.lower()


# --- helpers for typed fields --------------------------------------------------------------------


def _json_type(value: object) -> str:
    match value:
        case None:
            return "null"
        case bool():
            return "a boolean"
        case int() | float():
            return "a number"
        case str():
            return "a string"
        case list():
            return "a list"
        case dict():
            return "an object"
    return type(value).__name__


def _expect_str(element: dict[str, Any], key: str, where: str) -> str:
    value = element.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MultusAnnotationError(f'{where}: "{key}" must be a string, got {_json_type(value)}')
    return value


def _expect_str_list(element: dict[str, Any], key: str, where: str) -> tuple[str, ...]:
    value = element.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        raise MultusAnnotationError(
            f'{where}: "{key}" must be a list of strings, got {_json_type(value)}'
        )
    for index, item in enumerate(value):
        if not isinstance(item, str):
            raise MultusAnnotationError(
                f'{where}: "{key}"[{index}] must be a string, got {_json_type(item)}'
            )
    return tuple(value)


def _expect_dict(element: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    value = element.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise MultusAnnotationError(f'{where}: "{key}" must be an object, got {_json_type(value)}')
    return value
