"""Link, address and route facts of one network namespace: netlink (pyroute2) plus sysfs.

``read_netlink()`` turns pyroute2 messages into plain dicts; ``assemble()`` is pure and joins them
with sysfs facts into the snapshot's ``links`` and ``pci_functions``. Keeping the join pure lets
the tests feed it fixture trees that no veth can show (PCI, SR-IOV, vfio).
"""

from __future__ import annotations

import socket

from nodeagent.sysfs import Sysfs

IFF_UP = 0x1
IFF_LOOPBACK = 0x8
RT_TABLE_MAIN = 254
RTN_UNICAST = 1

# IFLA_INFO_KIND -> the snapshot's kind. Close relatives share a kind: to the ownership engine a
# macvtap is a macvlan and an ip6gretap is a GRE tunnel.
_KIND_BY_INFO_KIND = {
    "veth": "veth",
    "bridge": "bridge",
    "bond": "bond",
    "team": "team",
    "vlan": "vlan",
    "vxlan": "vxlan",
    "macvlan": "macvlan",
    "macvtap": "macvlan",
    "ipvlan": "ipvlan",
    "ipvtap": "ipvlan",
    "tun": "tun",
    "dummy": "dummy",
    "wireguard": "wireguard",
    "geneve": "geneve",
    "ipip": "ipip",
    "ip6tnl": "ipip",
    "sit": "sit",
    "gre": "gre",
    "gretap": "gre",
    "ip6gre": "gre",
    "ip6gretap": "gre",
    "erspan": "gre",
    "ip6erspan": "gre",
    "openvswitch": "openvswitch",
}

_SCOPES = {0: "global", 200: "site", 253: "link", 254: "host", 255: "nowhere"}


def link_kind(info_kind: str | None, flags: int, has_device: bool) -> str:
    if info_kind:
        return _KIND_BY_INFO_KIND.get(info_kind, "other")
    if flags & IFF_LOOPBACK:
        return "loopback"
    # No rtnl_link_ops and a device behind it in sysfs: a real NIC (PF, VF, USB...).
    return "physical" if has_device else "other"


def _mac(value: str | None) -> str | None:
    # Loopback and L3 tunnels report an all-zero hardware address; it identifies nothing.
    if not value or set(value) <= {"0", ":"}:
        return None
    return value


def read_netlink(ipr) -> tuple[list[dict], list[dict], set[int], set[int]]:
    """Dump links, addresses and main-table default routes from an open pyroute2 IPRoute."""
    links = []
    for msg in ipr.get_links():
        linkinfo = msg.get_attr("IFLA_LINKINFO")
        proplist = msg.get_attr("IFLA_PROP_LIST")
        links.append(
            {
                "ifindex": msg["index"],
                "name": msg.get_attr("IFLA_IFNAME"),
                "flags": msg["flags"],
                "info_kind": linkinfo.get_attr("IFLA_INFO_KIND") if linkinfo else None,
                "master_ifindex": msg.get_attr("IFLA_MASTER"),
                "operstate": (msg.get_attr("IFLA_OPERSTATE") or "UNKNOWN").lower(),
                "carrier": msg.get_attr("IFLA_CARRIER"),
                "mtu": msg.get_attr("IFLA_MTU"),
                "mac": _mac(msg.get_attr("IFLA_ADDRESS")),
                "permanent_mac": _mac(msg.get_attr("IFLA_PERM_ADDRESS")),
                "altnames": proplist.get_attrs("IFLA_ALT_IFNAME") if proplist else [],
                "alias": msg.get_attr("IFLA_IFALIAS"),
            }
        )
    addresses = []
    for msg in ipr.get_addr():
        family = 4 if msg["family"] == socket.AF_INET else 6
        # For IPv4 IFA_LOCAL is the interface's own address; IFA_ADDRESS is the peer on
        # point-to-point links. IPv6 has only IFA_ADDRESS.
        address = msg.get_attr("IFA_LOCAL") or msg.get_attr("IFA_ADDRESS")
        addresses.append(
            {
                "ifindex": msg["index"],
                "family": family,
                "address": address,
                "prefixlen": msg["prefixlen"],
                "scope": _SCOPES.get(msg["scope"], str(msg["scope"])),
            }
        )
    default_v4 = _default_route_ifindexes(ipr, socket.AF_INET)
    default_v6 = _default_route_ifindexes(ipr, socket.AF_INET6)
    return links, addresses, default_v4, default_v6


def _default_route_ifindexes(ipr, family: int) -> set[int]:
    found: set[int] = set()
    for msg in ipr.get_routes(family=family):
        table = msg.get_attr("RTA_TABLE") or msg["table"]
        if msg["dst_len"] != 0 or table != RT_TABLE_MAIN or msg["type"] != RTN_UNICAST:
            continue
        oif = msg.get_attr("RTA_OIF")
        if oif:
            found.add(oif)
        for hop in msg.get_attr("RTA_MULTIPATH") or []:
            if hop.get("oif"):
                found.add(hop["oif"])
    return found


def assemble(
    raw_links: list[dict],
    addresses: list[dict],
    default_v4: set[int],
    default_v6: set[int],
    sysfs: Sysfs,
    pci_scan: bool = True,
) -> tuple[list[dict], list[dict]]:
    """Join netlink and sysfs facts into the snapshot's ``links`` and ``pci_functions``."""
    by_ifindex = {link["ifindex"]: link for link in raw_links}
    names = {link["name"] for link in raw_links}
    device_facts = {link["ifindex"]: sysfs.link_device(link["name"]) for link in raw_links}
    kinds = {
        ifindex: link_kind(link["info_kind"], link["flags"], device_facts[ifindex]["has_device"])
        for ifindex, link in by_ifindex.items()
    }
    addresses_by_ifindex: dict[int, list[dict]] = {}
    for address in addresses:
        entry = {key: address[key] for key in ("family", "address", "prefixlen", "scope")}
        addresses_by_ifindex.setdefault(address["ifindex"], []).append(entry)

    links = []
    for ifindex in sorted(by_ifindex):
        raw = by_ifindex[ifindex]
        device = device_facts[ifindex]
        master = by_ifindex.get(raw["master_ifindex"]) if raw["master_ifindex"] else None
        pf_name = None
        if device["pf_pci_address"]:
            pf_name = next(
                (n for n in sysfs.pci_netdev_names(device["pf_pci_address"]) if n in names), None
            )
        links.append(
            {
                "ifindex": ifindex,
                "name": raw["name"],
                "altnames": list(raw["altnames"]),
                "alias": raw["alias"],
                "mac": raw["mac"],
                "permanent_mac": raw["permanent_mac"],
                "kind": kinds[ifindex],
                "master": master["name"] if master else None,
                "master_kind": kinds[master["ifindex"]] if master else None,
                "operstate": raw["operstate"],
                # Like /sys/class/net/*/carrier, which refuses to answer for a link that is
                # administratively down: its carrier bit is then meaningless.
                "carrier": bool(raw["carrier"]) if raw["flags"] & IFF_UP else None,
                "mtu": raw["mtu"],
                "speed_mbps": device["speed_mbps"],
                "driver": device["driver"],
                "pci_address": device["pci_address"],
                "vendor_id": device["vendor_id"],
                "device_id": device["device_id"],
                "numa_node": device["numa_node"],
                "sriov_total_vfs": device["sriov_total_vfs"],
                "sriov_num_vfs": device["sriov_num_vfs"],
                "pf_pci_address": device["pf_pci_address"],
                "pf_name": pf_name,
                "wireless": device["wireless"],
                "addresses": addresses_by_ifindex.get(ifindex, []),
                "default_route_v4": ifindex in default_v4,
                "default_route_v6": ifindex in default_v6,
            }
        )

    # A NIC moved into a pod or bound to vfio-pci/uio has no netdev here; keep it visible by
    # its PCI address so the portal can tell "in a pod" / "userspace" from "gone".
    pci_functions = []
    for bdf in sysfs.pci_network_functions() if pci_scan else ():
        if any(name in names for name in sysfs.pci_netdev_names(bdf)):
            continue
        pci_functions.append(sysfs.pci_function(bdf))
    return links, pci_functions
