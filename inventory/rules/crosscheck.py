"""The agent's snapshot checked against a second source: the Kubernetes API's view of the node.

No I/O. The Node object's ``status.addresses`` (InternalIP, ExternalIP) come from the kubelet and
the cloud provider, not from the agent; a NIC that holds one of them, or carries the default
route, is the node's way onto the network. Two things follow:

- **Pins.** A NIC seen holding a node address or the default route is remembered by identity
  (``LinkFacts.pinned``, stored with the verdict). A later snapshot that shows that address on no
  NIC, or no default route at all, does not make the NIC free: while the API still lists the
  address (or no other NIC carries a default route) the pin is *kept*, and the ownership rules
  keep the NIC ``system``. A snapshot that moves the address or the route to another NIC moves
  the pin with it; an address the API drops releases it.
- **Findings.** What the snapshot and the API disagree on is reported, never trusted silently:
  an InternalIP on no reported NIC, an ExternalIP or a default route that vanished from a NIC
  still pinned, an InternalIP held apart from the default route (informational: common on
  multi-homed nodes).

An ExternalIP on no NIC is no contradiction (cloud providers NAT it at the edge), so it only ever
pins a NIC that was seen holding it, and is flagged only when that NIC hides it.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # ownership imports this module: the dataclasses are only named here
    from inventory.rules.ownership import LinkFacts, NodeFacts

DEFAULT_ROUTE = "default-route"  # the pin token of a NIC seen carrying a default route

# The ownership reasons of a node's uplink: the default route, a Kubernetes node address, or a
# NIC pinned as the uplink although a snapshot no longer shows it so. read/admission.py hands the
# pattern to PostgreSQL (~*): keep it to what both read alike.
UPLINK_REASON = re.compile(r"default route|internal ?ip|external ?ip|node's uplink", re.I)


def is_uplink_reason(reason: str) -> bool:
    """Does this ``system`` reason say the link is the node's way onto the network?"""
    return bool(UPLINK_REASON.search(reason))


WARNING = "warning"
INFO = "info"
# The codes of the findings of severity WARNING (exported as metrics, zero when absent).
WARNING_CODES = ("internal_ip_on_no_nic", "external_ip_hidden", "default_route_gone")

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True, slots=True)
class Finding:
    """A contradiction between the agent's snapshot and the Kubernetes API, as the node page and
    the API show it. ``code`` is stable; ``message`` is one sentence a person reads."""

    code: str
    severity: str  # WARNING or INFO
    message: str
    # The NICs kept `system` against the snapshot because of it (pinned before): then the
    # snapshot changed to contradict what the portal saw, an event for the node's history.
    kept: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "kept": list(self.kept),
        }


@dataclass(slots=True)
class CrossCheck:
    """The cross-check of one node, built once per judgement."""

    addresses: dict[IPAddress, str] = field(default_factory=dict)  # api_addresses(node)
    # link key -> the pin tokens to store with its verdict (addresses held or kept, route)
    pins: dict[str, tuple[str, ...]] = field(default_factory=dict)
    # link key -> why it is kept system although the snapshot no longer shows it so
    kept: dict[str, str] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


# Cached: a node's addresses are compared with every link's, and a cold sweep of thousands of
# nodes parsed the same few strings tens of thousands of times.
@functools.lru_cache(maxsize=8192)
def parse_ip(text: str) -> IPAddress | None:
    """The address of "10.0.0.5", "10.0.0.5/24" or "fd00::5"; None when it is none."""
    try:
        return ipaddress.ip_interface(text.strip()).ip
    except ValueError:
        return None


def api_addresses(node: NodeFacts) -> dict[IPAddress, str]:
    """The node's IP addresses in the Kubernetes API, with their type (an address listed both as
    InternalIP and ExternalIP is an InternalIP)."""
    found: dict[IPAddress, str] = {}
    for kind, texts in (("InternalIP", node.internal_ips), ("ExternalIP", node.external_ips)):
        for text in texts:
            ip = parse_ip(text)
            if ip is not None:
                found.setdefault(ip, kind)
    return found


def held_address_clause(link: LinkFacts, wanted: dict[IPAddress, str]) -> str:
    """ "holds the node's InternalIP 10.0.0.5 (Kubernetes API)", or "" when the link's reported
    addresses hold none of the node's API addresses (`wanted`: api_addresses of the node)."""
    if not wanted:
        return ""
    for address in link.addresses:
        ip = parse_ip(address)
        if ip is not None and ip in wanted:
            return f"holds the node's {wanted[ip]} {ip} (Kubernetes API)"
    return ""


def _sorted_names(links: Sequence[LinkFacts]) -> tuple[str, ...]:
    return tuple(sorted({link.name or link.key for link in links}))


def _names(links: Sequence[LinkFacts]) -> str:
    names = _sorted_names(links)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + f" and {names[-1]}"


def cross_check(node: NodeFacts, links: Sequence[LinkFacts]) -> CrossCheck:
    """Pins, kept pins and findings of a node whose links (present or not) are ``links``."""
    wanted = api_addresses(node)
    result = CrossCheck(addresses=wanted)
    if not links:
        return result  # never reported: nothing to check
    # An answered snapshot with no link at all is checked too: it hides everything.
    present = [link for link in links if link.present]
    holders: dict[IPAddress, list[LinkFacts]] = {}
    held_by: dict[int, set[str]] = {}  # id(link) -> the API addresses it holds
    for link in present:
        for address in link.addresses:
            ip = parse_ip(address)
            if ip in wanted and str(ip) not in held_by.setdefault(id(link), set()):
                held_by[id(link)].add(str(ip))
                holders.setdefault(ip, []).append(link)
    routed = [link for link in present if link.default_route_v4 or link.default_route_v6]
    routed_ids = {id(link) for link in routed}

    kept_route: list[LinkFacts] = []
    kept_address: dict[IPAddress, list[LinkFacts]] = {}
    for link in links:
        tokens = set(held_by.get(id(link), ()))
        if id(link) in routed_ids:
            tokens.add(DEFAULT_ROUTE)
        clauses = []
        for token in link.pinned:
            if token == DEFAULT_ROUTE:
                if not routed:  # no NIC carries a default route now: the last one keeps it
                    tokens.add(token)
                    kept_route.append(link)
                    clauses.append(
                        "carried the default route when last reported; the latest snapshot"
                        " shows no default route on any NIC"
                    )
                continue
            ip = parse_ip(token)
            if ip is not None and not wanted:
                # The API lists no address for the node (not yet, or a partial object): it says
                # nothing either way, so the memory is kept, without deciding anything.
                tokens.add(str(ip))
                continue
            if ip is None or ip not in wanted or ip in holders:
                continue  # dropped by the API, or held by a NIC the snapshot shows: released
            tokens.add(str(ip))
            kept_address.setdefault(ip, []).append(link)
            clauses.append(
                f"held the node's {wanted[ip]} {ip} (Kubernetes API) when last reported; the"
                " latest snapshot shows it on no NIC, though the API still lists it"
            )
        if tokens:
            result.pins[link.key] = tuple(sorted(tokens))
        if clauses:
            result.kept[link.key] = "; ".join(clauses) + ": kept as the node's"

    for ip, kind in wanted.items():
        keepers = kept_address.get(ip, [])
        # An ExternalIP on no NIC is normal (NAT at the edge): flagged only when it was seen.
        if ip in holders or (kind == "ExternalIP" and not keepers):
            continue
        message = (
            f"The Kubernetes API lists {ip} as this node's {kind}, but no NIC in the agent's"
            " latest snapshot holds it"
        )
        if keepers:
            message += f"; {_names(keepers)} held it when last reported and stays system"
        code = "internal_ip_on_no_nic" if kind == "InternalIP" else "external_ip_hidden"
        result.findings.append(Finding(code, WARNING, message + ".", _sorted_names(keepers)))
    if kept_route:
        result.findings.append(
            Finding(
                "default_route_gone",
                WARNING,
                f"The agent's latest snapshot shows no default route; {_names(kept_route)}"
                " carried it when last reported and stays system.",
                _sorted_names(kept_route),
            )
        )
    for ip, held in holders.items():
        if wanted[ip] != "InternalIP":
            continue
        same_family = [
            link
            for link in routed
            if (link.default_route_v4 if ip.version == 4 else link.default_route_v6)
        ]
        if same_family and not {link.name for link in held} & {route.name for route in same_family}:
            result.findings.append(
                Finding(
                    "internal_ip_apart_from_default_route",
                    INFO,
                    f"The InternalIP {ip} is on {_names(held)}, but the IPv{ip.version} default"
                    f" route leaves through {_names(same_family)}: both stay system. Expected"
                    " on a node with separate cluster and outside networks.",
                )
            )
    return result
