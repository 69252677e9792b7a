"""Link, address and route facts of one network namespace: netlink (rtnetlink.py) plus sysfs.

``read_netlink()`` dumps everything into plain dicts; ``assemble()`` joins them with sysfs facts
into the snapshot's ``links`` and ``pci_functions``. The join itself (``join_links``) does no
netlink I/O, so the tests can feed it fixture trees that no veth can show (PCI, SR-IOV, vfio),
and the incremental state (netstate.py) reuses it with the sysfs facts it keeps per link.
"""

from __future__ import annotations

import socket

from nodeagent.rtnetlink import RtnlDumper
from nodeagent.sysfs import Sysfs

IFF_UP = 0x1
IFF_LOOPBACK = 0x8

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


def link_kind(info_kind: str | None, flags: int, has_device: bool) -> str:
    if info_kind:
        return _KIND_BY_INFO_KIND.get(info_kind, "other")
    if flags & IFF_LOOPBACK:
        return "loopback"
    # No rtnl_link_ops and a device behind it in sysfs: a real NIC (PF, VF, USB...).
    return "physical" if has_device else "other"


def read_netlink(dumper: RtnlDumper) -> tuple[list[dict], list[dict], set[int], set[int]]:
    """Dump links, addresses (IPv4 then IPv6, as one unfiltered dump orders them) and the links
    that carry a main-table default route."""
    links = dumper.links()
    addresses = dumper.addresses(socket.AF_INET) + dumper.addresses(socket.AF_INET6)
    default_v4 = dumper.default_route_ifindexes(socket.AF_INET)
    default_v6 = dumper.default_route_ifindexes(socket.AF_INET6)
    return links, addresses, default_v4, default_v6


def address_entry(address: dict) -> dict:
    """A raw address as the snapshot lists it under its link."""
    return {key: address[key] for key in ("family", "address", "prefixlen", "scope")}


def join_links(
    raw_links: dict[int, dict],
    addresses_by_ifindex: dict[int, list[dict]],
    default_v4: set[int],
    default_v6: set[int],
    device_facts: dict[int, dict],
    sysfs: Sysfs,
) -> list[dict]:
    """The snapshot's ``links``, sorted by ifindex, from raw links keyed by ifindex, their
    address entries (address_entry) and their sysfs facts (Sysfs.link_device) by ifindex."""
    names = {link["name"] for link in raw_links.values()}
    kinds = {
        ifindex: link_kind(link["info_kind"], link["flags"], device_facts[ifindex]["has_device"])
        for ifindex, link in raw_links.items()
    }
    links = []
    for ifindex in sorted(raw_links):
        raw = raw_links[ifindex]
        device = device_facts[ifindex]
        master = raw_links.get(raw["master_ifindex"]) if raw["master_ifindex"] else None
        pf_name = pf_netdev_name(sysfs, device["pf_pci_address"], names)
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
                "vf_index": device["vf_index"],
                "wireless": device["wireless"],
                "addresses": list(addresses_by_ifindex.get(ifindex, ())),
                "default_route_v4": ifindex in default_v4,
                "default_route_v6": ifindex in default_v6,
            }
        )
    return links


def pf_netdev_name(sysfs: Sysfs, pf_pci_address: str | None, names: set[str]) -> str | None:
    """The netdev of a VF's PF among ``names`` (the links of this namespace), if it has one."""
    if not pf_pci_address:
        return None
    return next((n for n in sysfs.pci_netdev_names(pf_pci_address) if n in names), None)


def unclaimed_pci_functions(sysfs: Sysfs, names: set[str]) -> list[dict]:
    """Network PCI functions without a netdev among ``names``.

    A NIC moved into a pod or bound to vfio-pci/uio has no netdev here; keep it visible by its
    PCI address so the portal can tell "in a pod" / "userspace" from "gone". A VF also names
    its PF's netdev (``pf_name``), as links do.
    """
    functions = []
    for bdf in sysfs.pci_network_functions():
        if any(name in names for name in sysfs.pci_netdev_names(bdf)):
            continue
        function = sysfs.pci_function(bdf)
        function["pf_name"] = pf_netdev_name(sysfs, function["pf_pci_address"], names)
        functions.append(function)
    return functions


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
    device_facts = {link["ifindex"]: sysfs.link_device(link["name"]) for link in raw_links}
    addresses_by_ifindex: dict[int, list[dict]] = {}
    for address in addresses:
        addresses_by_ifindex.setdefault(address["ifindex"], []).append(address_entry(address))
    links = join_links(
        by_ifindex, addresses_by_ifindex, default_v4, default_v6, device_facts, sysfs
    )
    names = {link["name"] for link in raw_links}
    return links, unclaimed_pci_functions(sysfs, names) if pci_scan else []
