"""IPAM for host-device NADs: validation of a request (every address through the ipaddress
module), the `ipam` object it becomes, and the reverse (a config's `ipam` back into a request,
so that the linter checks existing NADs with the same rules)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from typing import Any

from inventory.rules.nad.facts import Finding, IpamRequest, error, info, warning

IPAM_TYPES = ("none", "static", "host-local", "whereabouts", "dhcp")

# Which IpamRequest fields each type reads; anything else given is a mistake worth saying.
FIELDS_BY_TYPE: dict[str, tuple[str, ...]] = {
    "none": (),
    "dhcp": (),
    "static": ("addresses", "gateway", "routes"),
    "host-local": ("subnet", "range_start", "range_end", "gateway", "routes"),
    "whereabouts": ("range", "range_start", "range_end", "exclude", "gateway", "routes"),
}
_ALL_FIELDS = (
    "addresses",
    "gateway",
    "routes",
    "subnet",
    "range_start",
    "range_end",
    "range",
    "exclude",
)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def parse_route(route: str) -> tuple[str, str]:
    """ "10.2.0.0/16" or "10.2.0.0/16 via 10.1.0.1" -> (dst, gw)."""
    dst, _, gw = route.strip().partition(" via ")
    return dst.strip(), gw.strip()


def _network(value: str, *, strict: bool) -> Network | str:
    """The network, or the reason it is not one."""
    if "/" not in value:
        return "it has no prefix length (write it as a CIDR, e.g. 10.1.0.0/24)"
    try:
        return ipaddress.ip_network(value, strict=strict)
    except ValueError as exc:
        if strict:
            try:
                loose = ipaddress.ip_network(value, strict=False)
            except ValueError:
                return str(exc)
            return f"it has host bits set (did you mean {loose}?)"
        return str(exc)


def _address(value: str) -> Address | str:
    try:
        return ipaddress.ip_address(value)
    except ValueError as exc:
        return str(exc)


def validate_ipam(ipam: IpamRequest, *, node_count: int) -> list[Finding]:
    """Findings for an IPAM request; `node_count` is how many nodes the attachment spans."""
    findings: list[Finding] = []
    kind = ipam.type
    if kind not in IPAM_TYPES:
        return [
            error(
                "IPAM_TYPE_INVALID",
                "ipam.type",
                f'IPAM type "{kind}" is not one NICPortal can build.',
                f"Choose one of: {', '.join(IPAM_TYPES)}.",
            )
        ]
    allowed = FIELDS_BY_TYPE[kind]
    for name in _ALL_FIELDS:
        if getattr(ipam, name) and name not in allowed:
            findings.append(
                error(
                    "IPAM_UNUSED_FIELDS",
                    f"ipam.{name}",
                    f'"{name}" was given but IPAM type "{kind}" does not use it.',
                    f"Remove it, or choose an IPAM type that uses it"
                    f" ({', '.join(t for t, f in FIELDS_BY_TYPE.items() if name in f)}).",
                )
            )

    networks: list[Network] = []  # where a gateway may live
    if kind == "static":
        if not ipam.addresses:
            findings.append(
                error(
                    "IPAM_ADDRESS_MISSING",
                    "ipam.addresses",
                    "Static IPAM needs at least one address.",
                    "Give an address with its prefix length, e.g. 10.1.0.5/24.",
                )
            )
        for value in ipam.addresses:
            problem = None
            if "/" not in value:
                problem = "it has no prefix length"
            else:
                try:
                    interface = ipaddress.ip_interface(value)
                except ValueError as exc:
                    problem = str(exc)
                else:
                    net = interface.network
                    if (
                        net.version == 4
                        and net.prefixlen < 31
                        and interface.ip in (net.network_address, net.broadcast_address)
                    ):
                        which = "network" if interface.ip == net.network_address else "broadcast"
                        problem = f"it is the {which} address of {net}"
                    else:
                        networks.append(net)
            if problem:
                findings.append(
                    error(
                        "IPAM_ADDRESS_INVALID",
                        "ipam.addresses",
                        f'Address "{value}" is not usable: {problem}.',
                        "Write a host address with its prefix length, e.g. 10.1.0.5/24.",
                    )
                )
        if node_count > 1 and ipam.addresses:
            findings.append(
                warning(
                    "STATIC_ADDRESS_SHARED",
                    "ipam.addresses",
                    f"Static addresses are written into the NAD: the pods on all {node_count} "
                    "nodes get the same address, which collides if their NICs share a network.",
                    "Build one attachment per node with its own address, or use whereabouts.",
                )
            )
    elif kind == "host-local":
        networks += _check_pool(findings, "ipam.subnet", "subnet", ipam.subnet, ipam, strict=True)
        if node_count > 1:
            findings.append(
                warning(
                    "HOST_LOCAL_MULTI_NODE",
                    "ipam.type",
                    f"host-local allocates addresses per node, from files on each node: the "
                    f"pods on these {node_count} nodes will get the same addresses from "
                    f"{ipam.subnet or 'the subnet'}.",
                    "Give each node its own rangeStart/rangeEnd (one attachment per node), or "
                    "use whereabouts, which allocates cluster-wide.",
                )
            )
    elif kind == "whereabouts":
        # whereabouts accepts a range with host bits set ("192.168.2.225/28": start at .225).
        pool = _check_pool(findings, "ipam.range", "range", ipam.range, ipam, strict=False)
        networks += pool
        for value in ipam.exclude:
            excluded = _network(value, strict=False)
            if isinstance(excluded, str):
                findings.append(
                    error(
                        "IPAM_EXCLUDE_INVALID",
                        "ipam.exclude",
                        f'Exclude "{value}" is not a CIDR: {excluded}.',
                        "Write each excluded block as a CIDR, e.g. 10.1.0.0/28.",
                    )
                )
            elif pool and not (excluded.version == pool[0].version and excluded.subnet_of(pool[0])):
                findings.append(
                    error(
                        "IPAM_EXCLUDE_OUTSIDE",
                        "ipam.exclude",
                        f'Exclude "{value}" is not inside the range {pool[0]}.',
                        "Exclude only blocks of the range.",
                    )
                )
    elif kind == "dhcp":
        findings.append(
            warning(
                "DHCP_DAEMON",
                "ipam.type",
                "dhcp IPAM needs the CNI dhcp daemon (`/opt/cni/bin/dhcp daemon`) running on "
                "every node where the pod can land, and a DHCP server on the NIC's network.",
                "Run the dhcp daemon as a DaemonSet, or use static/whereabouts IPAM.",
            )
        )

    if ipam.gateway and kind in ("static", "host-local", "whereabouts"):
        gateway = _address(ipam.gateway)
        if isinstance(gateway, str):
            findings.append(
                error(
                    "IPAM_GATEWAY_INVALID",
                    "ipam.gateway",
                    f'Gateway "{ipam.gateway}" is not an IP address: {gateway}.',
                    "Write the gateway as a plain address, e.g. 10.1.0.1.",
                )
            )
        elif networks and not any(_contains(net, gateway) for net in networks):
            findings.append(
                error(
                    "IPAM_GATEWAY_OUTSIDE",
                    "ipam.gateway",
                    f"Gateway {gateway} is not inside "
                    f"{' or '.join(str(n) for n in networks)}: the pod could not reach it.",
                    "Use a gateway on the attachment's own subnet.",
                )
            )
    if kind in ("static", "host-local", "whereabouts"):
        findings += _check_routes(ipam.routes, networks)
    return findings


def _contains(network: Network, address: Address) -> bool:
    return network.version == address.version and address in network


def _check_pool(
    findings: list[Finding], field: str, label: str, value: str, ipam: IpamRequest, *, strict: bool
) -> list[Network]:
    if not value:
        findings.append(
            error(
                "IPAM_RANGE_MISSING",
                field,
                f'{ipam.type} IPAM needs a "{label}".',
                f"Give the {label} as a CIDR, e.g. 10.1.0.0/24.",
            )
        )
        return []
    network = _network(value, strict=strict)
    if isinstance(network, str):
        findings.append(
            error(
                "IPAM_RANGE_INVALID",
                field,
                f'{label.capitalize()} "{value}" is not a valid CIDR: {network}.',
                "Write it as a CIDR, e.g. 10.1.0.0/24.",
            )
        )
        return []
    bounds: list[Address] = []
    for name, bound in (("range_start", ipam.range_start), ("range_end", ipam.range_end)):
        if not bound:
            continue
        address = _address(bound)
        if isinstance(address, str):
            findings.append(
                error(
                    "IPAM_RANGE_INVALID",
                    f"ipam.{name}",
                    f'{name} "{bound}" is not an IP address: {address}.',
                    "Write it as a plain address, e.g. 10.1.0.100.",
                )
            )
        elif not _contains(network, address):
            findings.append(
                error(
                    "IPAM_RANGE_OUTSIDE",
                    f"ipam.{name}",
                    f"{name} {address} is not inside {label} {network}.",
                    f"Pick {name} inside {network}.",
                )
            )
        else:
            bounds.append(address)
    if len(bounds) == 2 and bounds[0] > bounds[1]:
        findings.append(
            error(
                "IPAM_RANGE_REVERSED",
                "ipam.range_end",
                f"range_end {bounds[1]} comes before range_start {bounds[0]}.",
                "Swap them.",
            )
        )
    return [network]


def _check_routes(routes: tuple[str, ...], networks: list[Network]) -> list[Finding]:
    findings: list[Finding] = []
    for route in routes:
        dst_text, gw_text = parse_route(route)
        dst = _network(dst_text, strict=True)
        if isinstance(dst, str):
            findings.append(
                error(
                    "IPAM_ROUTE_INVALID",
                    "ipam.routes",
                    f'Route "{route}": destination "{dst_text}" is not a CIDR: {dst}.',
                    'Write a route as "10.2.0.0/16" or "10.2.0.0/16 via 10.1.0.1".',
                )
            )
            continue
        if not gw_text:
            continue
        gw = _address(gw_text)
        if isinstance(gw, str) or gw.version != dst.version:
            why = gw if isinstance(gw, str) else "it is not of the destination's IP family"
            findings.append(
                error(
                    "IPAM_ROUTE_INVALID",
                    "ipam.routes",
                    f'Route "{route}": gateway "{gw_text}" is not usable: {why}.',
                    'Write a route as "10.2.0.0/16" or "10.2.0.0/16 via 10.1.0.1".',
                )
            )
        elif networks and not any(_contains(net, gw) for net in networks):
            findings.append(
                warning(
                    "IPAM_ROUTE_GATEWAY_UNREACHABLE",
                    "ipam.routes",
                    f'Route "{route}": gateway {gw} is not on the attachment\'s subnet '
                    f"({', '.join(str(n) for n in networks)}); the route will fail to install.",
                    "Use a next hop on the attachment's subnet.",
                )
            )
    return findings


def _route_objects(routes: tuple[str, ...]) -> list[dict[str, str]]:
    objects = []
    for route in routes:
        dst, gw = parse_route(route)
        objects.append({"dst": dst, "gw": gw} if gw else {"dst": dst})
    return objects


def ipam_config(ipam: IpamRequest) -> dict[str, Any] | None:
    """The `ipam` object of a valid request; None for L2 only."""
    kind = ipam.type
    if kind == "none":
        return None
    config: dict[str, Any] = {"type": kind}
    if kind == "static":
        gateway = ipaddress.ip_address(ipam.gateway) if ipam.gateway else None
        addresses = []
        for value in ipam.addresses:
            entry = {"address": value}
            if gateway is not None and _contains(ipaddress.ip_interface(value).network, gateway):
                entry["gateway"] = ipam.gateway
            addresses.append(entry)
        config["addresses"] = addresses
    elif kind == "host-local":
        pool = {"subnet": ipam.subnet}
        if ipam.range_start:
            pool["rangeStart"] = ipam.range_start
        if ipam.range_end:
            pool["rangeEnd"] = ipam.range_end
        if ipam.gateway:
            pool["gateway"] = ipam.gateway
        config["ranges"] = [[pool]]
    elif kind == "whereabouts":
        config["range"] = ipam.range
        if ipam.range_start:
            config["range_start"] = ipam.range_start
        if ipam.range_end:
            config["range_end"] = ipam.range_end
        if ipam.exclude:
            config["exclude"] = list(ipam.exclude)
        if ipam.gateway:
            config["gateway"] = ipam.gateway
    if ipam.routes and kind != "dhcp":
        config["routes"] = _route_objects(ipam.routes)
    return config


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def ipam_request_from_config(ipam: Any) -> tuple[IpamRequest | None, list[Finding]]:
    """An existing config's `ipam` object as an IpamRequest (None when there is nothing to check
    with NICPortal's rules), plus findings about its shape."""
    if ipam is None:
        return IpamRequest(), []
    if not isinstance(ipam, Mapping):
        return None, [
            error(
                "IPAM_INVALID",
                "ipam",
                f'"ipam" must be a JSON object, not {type(ipam).__name__}.',
                'Write it as {"type": "static", ...}.',
            )
        ]
    kind = ipam.get("type")
    if not kind:
        # host-device runs IPAM only when ipam.type is set: everything else in it is ignored.
        return IpamRequest(), [
            warning(
                "IPAM_TYPE_MISSING",
                "ipam.type",
                '"ipam" has no "type": host-device ignores it and the interface gets no address.',
                'Add "type" (static, host-local, whereabouts, dhcp) or remove "ipam".',
            )
        ]
    if kind not in IPAM_TYPES or kind == "none":
        return None, [
            info(
                "IPAM_NOT_CHECKED",
                "ipam.type",
                f'IPAM type "{kind}" is not one NICPortal checks.',
            )
        ]
    routes = []
    for route in ipam.get("routes") or []:
        if isinstance(route, Mapping):
            dst, gw = _text(route.get("dst")), _text(route.get("gw"))
            routes.append(f"{dst} via {gw}" if gw else dst)
    if kind == "static":
        entries = [a for a in ipam.get("addresses") or [] if isinstance(a, Mapping)]
        gateways = [_text(a.get("gateway")) for a in entries if a.get("gateway")]
        return IpamRequest(
            type=kind,
            addresses=tuple(_text(a.get("address")) for a in entries),
            gateway=gateways[0] if gateways else "",
            routes=tuple(routes),
        ), []
    if kind == "host-local":
        pool: Mapping[str, Any] = ipam
        ranges = ipam.get("ranges")
        if isinstance(ranges, list) and ranges and isinstance(ranges[0], list) and ranges[0]:
            pool = ranges[0][0] if isinstance(ranges[0][0], Mapping) else {}
        return IpamRequest(
            type=kind,
            subnet=_text(pool.get("subnet")),
            range_start=_text(pool.get("rangeStart")),
            range_end=_text(pool.get("rangeEnd")),
            gateway=_text(pool.get("gateway")),
            routes=tuple(routes),
        ), []
    if kind == "whereabouts":
        return IpamRequest(
            type=kind,
            range=_text(ipam.get("range")),
            range_start=_text(ipam.get("range_start")),
            range_end=_text(ipam.get("range_end")),
            exclude=tuple(_text(e) for e in ipam.get("exclude") or []),
            gateway=_text(ipam.get("gateway")),
            routes=tuple(routes),
        ), []
    return IpamRequest(type=kind), []
